//! Which model a session uses, which models users may pick, and what each model can do
//! (`/api/show`, asked once per model).

use tracing::debug;

use super::notice::Notice;
use super::{Engine, TurnError, TurnObserver, lock};
use crate::llm::{LlmError, ModelDetails};

/// What a model can do and how much context it gets, from `/api/show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelProfile {
    pub tools: bool,
    pub thinking: bool,
    /// `<arch>.context_length`: Ollama caps `num_ctx` at it.
    pub context_length: Option<u64>,
    /// The model's own `num_ctx` parameter.
    pub num_ctx: Option<u32>,
}

impl ModelProfile {
    /// A server that does not list capabilities (before Ollama 0.6) is trusted with tools and
    /// never asked to think.
    fn from_details(details: &ModelDetails) -> Self {
        let listed = !details.capabilities.is_empty();
        Self {
            tools: !listed || details.supports("tools"),
            thinking: details.supports("thinking"),
            context_length: details.context_length,
            num_ctx: details.num_ctx,
        }
    }

    /// When `/api/show` could not be asked: tools offered, no thinking, Ollama's defaults.
    fn unknown() -> Self {
        Self {
            tools: true,
            thinking: false,
            context_length: None,
            num_ctx: None,
        }
    }
}

impl Engine {
    /// The model a session uses: its own choice, else `fallback` (a place's default), else the configured one.
    pub async fn session_model(
        &self,
        session: &str,
        fallback: Option<&str>,
    ) -> Result<String, TurnError> {
        Ok(match self.inner.store.session_model(session).await? {
            Some(m) => m,
            None => fallback.unwrap_or(&self.inner.ollama.model).to_string(),
        })
    }

    /// Switches a session's model, if it is allowed and the server has it.
    pub async fn set_session_model(&self, session: &str, model: &str) -> Result<(), TurnError> {
        self.check_model_allowed(model)?;
        let available = self.inner.model.list_models().await?;
        if !available.iter().any(|m| same_model(&m.name, model)) {
            return Err(LlmError::ModelNotFound {
                model: model.to_string(),
            }
            .into());
        }
        self.inner
            .store
            .set_session_model(session, Some(model))
            .await?;
        Ok(())
    }

    /// Models users may pick: the allowed list that the server has (or all it has, when no list).
    pub async fn available_models(&self) -> Result<Vec<String>, TurnError> {
        let on_server = self.inner.model.list_models().await?;
        let allowed = &self.inner.ollama.models;
        Ok(if allowed.is_empty() {
            on_server.into_iter().map(|m| m.name).collect()
        } else {
            allowed
                .iter()
                .filter(|a| on_server.iter().any(|m| same_model(&m.name, a)))
                .cloned()
                .collect()
        })
    }

    pub fn check_model_allowed(&self, model: &str) -> Result<(), TurnError> {
        let allowed = &self.inner.ollama.models;
        if allowed.is_empty() || allowed.iter().any(|a| same_model(a, model)) {
            Ok(())
        } else {
            Err(TurnError::ModelNotAllowed {
                model: model.to_string(),
                allowed: allowed.clone(),
            })
        }
    }

    /// What `model` can do, asked of Ollama once and remembered. A model the server does not
    /// have is an error; any other failure gives [`ModelProfile::unknown`] (not remembered), and
    /// the chat request itself then says what is wrong.
    pub async fn model_profile(&self, model: &str) -> Result<ModelProfile, TurnError> {
        if let Some(p) = lock(&self.inner.profiles).get(model) {
            return Ok(p.clone());
        }
        match self.inner.model.show(model).await {
            Ok(details) => {
                let profile = ModelProfile::from_details(&details);
                lock(&self.inner.profiles).insert(model.to_string(), profile.clone());
                Ok(profile)
            }
            Err(e @ LlmError::ModelNotFound { .. }) => Err(e.into()),
            Err(e) => {
                debug!(model, error = %e, "cannot ask /api/show; using defaults");
                Ok(ModelProfile::unknown())
            }
        }
    }

    /// Remembers that Ollama refused tools for `model` although `/api/show` did not say so.
    pub(super) fn mark_without_tools(&self, model: &str) {
        lock(&self.inner.profiles)
            .entry(model.to_string())
            .or_insert_with(ModelProfile::unknown)
            .tools = false;
    }

    /// What `session` has not yet been told about `model`: it cannot use tools (while tools are
    /// configured), or cannot think (while thinking is on). Each is said once per session.
    pub async fn model_notices(&self, session: &str, model: &str) -> Vec<Notice> {
        let Ok(profile) = self.model_profile(model).await else {
            return Vec::new();
        };
        let mut due = Vec::new();
        if !profile.tools && !self.inner.tools.tools().is_empty() {
            due.push(Notice::NoTools {
                model: model.to_string(),
                capable: Vec::new(),
            });
        }
        if self.inner.ollama.think && !profile.thinking {
            due.push(Notice::CannotThink {
                model: model.to_string(),
            });
        }
        due.retain(|n| {
            lock(&self.inner.sessions)
                .entry(session.to_string())
                .or_default()
                .said
                .insert(notice_key(model, n))
        });
        for notice in &mut due {
            if let Notice::NoTools { capable, .. } = notice {
                *capable = self.tool_capable_models().await;
            }
        }
        due
    }

    /// Notices of this turn, told to the observer as soon as they are known.
    pub(super) async fn notices(
        &self,
        session: &str,
        model: &str,
        observer: &dyn TurnObserver,
    ) -> Vec<Notice> {
        let notices = self.model_notices(session, model).await;
        for n in &notices {
            observer.on_notice(n).await;
        }
        notices
    }

    /// Allowed models on the server that can use tools (at most a handful are asked).
    async fn tool_capable_models(&self) -> Vec<String> {
        const MAX_ASKED: usize = 12;
        let Ok(models) = self.available_models().await else {
            return Vec::new();
        };
        let mut capable = Vec::new();
        for m in models.into_iter().take(MAX_ASKED) {
            if self.model_profile(&m).await.is_ok_and(|p| p.tools) {
                capable.push(m);
            }
        }
        capable
    }
}

fn notice_key(model: &str, notice: &Notice) -> String {
    let kind = match notice {
        Notice::ReplyCut(_) => "cut",
        Notice::NoTools { .. } => "tools",
        Notice::CannotThink { .. } => "think",
    };
    format!("{model}\u{0}{kind}")
}

/// `llama3.2` and `llama3.2:latest` name the same model.
pub fn same_model(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.strip_suffix(":latest").unwrap_or(s).to_string();
    norm(a) == norm(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_tag_is_the_same_model() {
        assert!(same_model("llama3.2", "llama3.2:latest"));
        assert!(!same_model("llama3.2", "llama3.1"));
    }
}
