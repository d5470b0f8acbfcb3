//! Test doubles (Ollama, Discord) and helpers for the end-to-end tests.

pub mod prometheus;
