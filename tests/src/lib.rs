//! Test doubles (Ollama, Discord) and helpers for the end-to-end tests.
pub mod ollama_double;

pub mod servers;

pub mod prometheus;
