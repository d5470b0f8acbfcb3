//! `ollama-mcp-bot`: run | chat | bridge | check-config.
fn main() {}
