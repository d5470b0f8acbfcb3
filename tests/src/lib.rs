//! Test doubles (Ollama, Discord) and helpers for the end-to-end tests.
pub mod bot_process;
pub mod ollama_double;
pub mod prometheus;
pub mod servers;
