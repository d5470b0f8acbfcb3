//! (being written) The Ollama client.
pub struct OllamaClient;
