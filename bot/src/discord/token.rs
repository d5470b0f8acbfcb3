//! The bot token: from `DISCORD_TOKEN` or the file named by `DISCORD_TOKEN_FILE` (a mounted
//! Kubernetes Secret), never from the configuration file. A token file is watched so that a
//! rotated Secret reaches the running bot.
//!
//! [`Token`] never prints its value: `Debug` and `Display` show `Token(…redacted)`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

pub const TOKEN_ENV: &str = "DISCORD_TOKEN";
pub const TOKEN_FILE_ENV: &str = "DISCORD_TOKEN_FILE";

/// How often the token file is re-read. Kubernetes updates mounted Secrets within about a minute
/// anyway; a rare check keeps an idle bot asleep (issue 13: idle wake-ups).
pub const WATCH_INTERVAL: Duration = Duration::from_secs(10);

/// A Discord bot token. Its value leaves this type only through [`Token::expose`].
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// Accepts the token as Discord shows it, with or without a `Bot ` prefix and surrounding
    /// whitespace (files often end with a newline).
    pub fn parse(raw: &str) -> Result<Token, TokenError> {
        let t = raw.trim();
        let t = t.strip_prefix("Bot ").unwrap_or(t).trim();
        if t.is_empty() {
            return Err(TokenError::Empty);
        }
        if t.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(TokenError::Malformed);
        }
        Ok(Token(t.to_string()))
    }

    /// The raw value, for the `Authorization` header and IDENTIFY only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…redacted)")
    }
}

impl std::fmt::Display for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("…redacted")
    }
}

/// Why no usable token was found. Never contains the token.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "no Discord token: set {TOKEN_ENV}, or {TOKEN_FILE_ENV} to a file holding it (e.g. a mounted Secret)"
    )]
    Missing,
    #[error("reading the Discord token from {path} ({TOKEN_FILE_ENV}): {reason}")]
    Read { path: PathBuf, reason: String },
    #[error(
        "the Discord token is empty; copy it from the Bot page of your application in the Discord developer portal"
    )]
    Empty,
    #[error(
        "the Discord token contains spaces or control characters; copy it again from the developer portal"
    )]
    Malformed,
}

/// Where the token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    Env,
    File(PathBuf),
}

impl TokenSource {
    /// `DISCORD_TOKEN_FILE` wins over `DISCORD_TOKEN` (a mounted Secret can be rotated).
    pub fn from_env() -> Result<TokenSource, TokenError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<TokenSource, TokenError> {
        if let Some(path) = lookup(TOKEN_FILE_ENV).filter(|p| !p.trim().is_empty()) {
            return Ok(TokenSource::File(PathBuf::from(path)));
        }
        if lookup(TOKEN_ENV).is_some() {
            return Ok(TokenSource::Env);
        }
        Err(TokenError::Missing)
    }

    /// Reads the token now.
    pub fn load(&self) -> Result<Token, TokenError> {
        match self {
            TokenSource::Env => {
                Token::parse(&std::env::var(TOKEN_ENV).map_err(|_| TokenError::Missing)?)
            }
            TokenSource::File(path) => read_file(path),
        }
    }

    /// Whether the token can change while the process runs.
    pub fn rotates(&self) -> bool {
        matches!(self, TokenSource::File(_))
    }
}

fn read_file(path: &Path) -> Result<Token, TokenError> {
    let text = std::fs::read_to_string(path).map_err(|e| TokenError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    Token::parse(&text)
}

/// Watches a token file and publishes each new valid token. An unreadable or empty file (as
/// during a Secret update) is logged and skipped: the current token stays until a valid one
/// appears. Returns when every receiver is gone.
pub async fn watch_file(
    path: PathBuf,
    current: Token,
    tx: watch::Sender<Token>,
    interval: Duration,
) {
    let mut last = current;
    let mut warned = false;
    loop {
        tokio::time::sleep(interval).await;
        if tx.is_closed() {
            return;
        }
        match read_file(&path) {
            Ok(token) if token != last => {
                tracing::info!(path = %path.display(), "the Discord token file changed; reconnecting with the new token");
                last = token.clone();
                warned = false;
                if tx.send(token).is_err() {
                    return;
                }
            }
            Ok(_) => warned = false,
            Err(e) if !warned => {
                tracing::warn!(error = %e, "cannot use the Discord token file; keeping the current token");
                warned = true;
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_trims_and_never_shows_the_value() {
        let t = Token::parse("  Bot abc.def.ghi\n").expect("valid");
        assert_eq!(t.expose(), "abc.def.ghi");
        assert!(!format!("{t:?} {t}").contains("abc"));
        assert!(matches!(Token::parse(" \n"), Err(TokenError::Empty)));
        assert!(matches!(Token::parse("a b"), Err(TokenError::Malformed)));
    }

    #[test]
    fn file_wins_over_env() {
        let both = |k: &str| {
            Some(if k == TOKEN_FILE_ENV {
                "/run/secret/token".to_string()
            } else {
                "x".to_string()
            })
        };
        assert_eq!(
            TokenSource::from_lookup(both).expect("file"),
            TokenSource::File("/run/secret/token".into())
        );
        let env = |k: &str| (k == TOKEN_ENV).then(|| "x".to_string());
        assert_eq!(
            TokenSource::from_lookup(env).expect("env"),
            TokenSource::Env
        );
        assert!(matches!(
            TokenSource::from_lookup(|_| None),
            Err(TokenError::Missing)
        ));
    }

    #[test]
    fn read_errors_name_the_file_not_the_token() {
        let e = TokenSource::File("/nonexistent/token".into())
            .load()
            .expect_err("missing file");
        let msg = e.to_string();
        assert!(
            msg.contains("/nonexistent/token") && msg.contains(TOKEN_FILE_ENV),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn watcher_publishes_changes_and_skips_empty_files() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("token");
        std::fs::write(&path, "one\n").expect("write");
        let first = read_file(&path).expect("token");
        let (tx, mut rx) = watch::channel(first.clone());
        let task = tokio::spawn(watch_file(
            path.clone(),
            first,
            tx,
            Duration::from_millis(20),
        ));
        std::fs::write(&path, "").expect("truncate");
        std::fs::write(&path, "two\n").expect("write");
        tokio::time::timeout(Duration::from_secs(10), rx.changed())
            .await
            .expect("in time")
            .expect("changed");
        assert_eq!(rx.borrow().expose(), "two");
        drop(rx);
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("watcher stops")
            .expect("no panic");
    }
}
