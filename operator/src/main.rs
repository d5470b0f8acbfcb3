//! `ollama-mcp-operator`: run | crd.
fn main() {}
