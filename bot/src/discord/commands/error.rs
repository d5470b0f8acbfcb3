//! The commands' error: its own file so that the event handler, which shares it with poise, does
//! not import the commands module that imports the handler.

use crate::conversation::TurnError;
use crate::conversation::remember::RememberError;
use crate::discord::admission::Refusal;
use crate::discord::rest::RestError;
use crate::store::StoreError;

/// A command failure; its text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Discord(#[from] RestError),
    #[error("{0}")]
    Turn(#[from] TurnError),
    #[error("{0}")]
    Remember(#[from] RememberError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error(
        "only the bot's admins can use this command (discord.access.admin_users / admin_roles)"
    )]
    NotAdmin,
    /// Admission said no (access lists, direct messages off).
    #[error("{}", .0.message(""))]
    Refused(Refusal),
    #[error("{0}")]
    Usage(String),
}
