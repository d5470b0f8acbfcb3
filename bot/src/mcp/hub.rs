//! (being written) The MCP hub.
pub struct McpHub;
