//! Test doubles (Ollama, Discord) and helpers for the end-to-end tests.
#![recursion_limit = "256"]

pub mod discord_double;

pub mod ollama_double;

pub mod servers;

pub mod prometheus;
