//! ollama-mcp-bot: a Discord bot and terminal assistant that chats through Ollama models and
//! calls tools on MCP servers.
//!
//! Without the default `runtime` feature only [`config`], [`model_info`] and [`status`] are
//! compiled: the operator renders the bot's configuration, reads `/api/show` as the bot does, and
//! reads the bot's `GET /status` with them.

pub mod config;
pub mod model_info;
pub mod status;

#[cfg(feature = "runtime")]
pub mod bridge;
#[cfg(feature = "runtime")]
pub mod conversation;
#[cfg(feature = "runtime")]
pub mod discord;
#[cfg(feature = "runtime")]
pub mod llm;
#[cfg(feature = "runtime")]
pub mod mcp;
#[cfg(feature = "runtime")]
pub mod metrics;
// Needs only tokio, which `telemetry` brings: the operator uses it too.
#[cfg(feature = "telemetry")]
pub mod shutdown;
#[cfg(feature = "runtime")]
pub mod store;
#[cfg(feature = "telemetry")]
pub mod telemetry;
#[cfg(feature = "runtime")]
pub mod terminal;
#[cfg(feature = "runtime")]
pub mod tool;
