//! ollama-mcp-operator: reconciles `BotDeployment` resources into running bots.
