//! Test doubles (Ollama, Discord) and helpers for the end-to-end tests.
#![recursion_limit = "256"]

pub mod bot_process;
pub mod discord_double;
pub mod ollama_double;
pub mod prometheus;
pub mod servers;
