//! The requests the bot makes: messages (post, edit, read), typing, interaction responses and
//! webhooks, and where a reply goes ([`Target`]).

use reqwest::Method;
use serde_json::{Value, json};

use super::budget::{Paid, Spend};
use super::{Charge, DiscordRest, RestError};

/// Where a reply goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A channel message, the first replying to `reply_to`.
    Channel { channel: u64, reply_to: Option<u64> },
    /// A slash command's interaction: the first piece fills its deferred original response, the
    /// rest are follow-ups.
    Interaction { id: u64, token: String },
}

/// The `type` of an interaction response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InteractionCallback {
    /// Answer with a message.
    Message,
    /// Show "thinking…" now; the answer fills the original response later.
    DeferredMessage,
    /// Replace the message that holds the pressed button.
    UpdateMessage,
}

impl InteractionCallback {
    fn code(self) -> u8 {
        match self {
            InteractionCallback::Message => 4,
            InteractionCallback::DeferredMessage => 5,
            InteractionCallback::UpdateMessage => 7,
        }
    }
}

/// A message the bot posted, to edit later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Posted {
    Channel { channel: u64, id: u64 },
    Original { id: u64 },
    Followup { id: u64 },
}

impl Posted {
    pub fn id(&self) -> u64 {
        match *self {
            Posted::Channel { id, .. } | Posted::Original { id } | Posted::Followup { id } => id,
        }
    }
}

/// `allowed_mentions` for everything the bot writes: model output can never ping @everyone,
/// @here, roles or users; only the person replied to is notified.
pub fn allowed_mentions(ping_replied: bool) -> Value {
    json!({"parse": [], "replied_user": ping_replied})
}

impl DiscordRest {
    /// The id of the message (or user) an answer describes; the rest of it is skipped unparsed.
    fn message_id(route: &'static str, text: Option<&str>) -> Result<u64, RestError> {
        #[derive(serde::Deserialize)]
        struct WithId<'a> {
            #[serde(borrow)]
            id: Option<std::borrow::Cow<'a, str>>,
        }
        let no_id = |reason: String| RestError::Decode { route, reason };
        let answer: WithId<'_> = serde_json::from_str(text.unwrap_or_default())
            .map_err(|e| no_id(format!("not a JSON object: {e}")))?;
        answer
            .id
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| no_id("the message has no id".into()))
    }

    /// `GET /users/@me`: the bot's user id and name (also checks the token).
    pub async fn current_user(&self) -> Result<(u64, String), RestError> {
        let v = self
            .send(
                "current_user",
                "current_user",
                Method::GET,
                "/users/@me",
                None,
                Charge::Bot(Spend::First, None),
            )
            .await?;
        let id = Self::message_id("current_user", v.as_deref())?;
        let name = super::parse_json("current_user", v)?["username"]
            .as_str()
            .unwrap_or("bot")
            .to_string();
        Ok((id, name))
    }

    pub async fn create_message(
        &self,
        channel: u64,
        body: &Value,
        paid: Option<Paid>,
    ) -> Result<u64, RestError> {
        let v = self
            .send(
                "create_message",
                &format!("create:{channel}"),
                Method::POST,
                &format!("/channels/{channel}/messages"),
                Some(body),
                Charge::Bot(Spend::First, paid),
            )
            .await?;
        Self::message_id("create_message", v.as_deref())
    }

    pub async fn edit_message(
        &self,
        channel: u64,
        id: u64,
        body: &Value,
        paid: Option<Paid>,
    ) -> Result<(), RestError> {
        self.send(
            "edit_message",
            &format!("edit:{channel}"),
            Method::PATCH,
            &format!("/channels/{channel}/messages/{id}"),
            Some(body),
            Charge::Bot(Spend::Edit, paid),
        )
        .await?;
        Ok(())
    }

    /// `GET /channels/{channel}/messages/{id}`: a message the bot reads (a reply chain).
    pub async fn get_message(&self, channel: u64, id: u64) -> Result<Value, RestError> {
        self.get(
            "get_message",
            &format!("get:{channel}"),
            &format!("/channels/{channel}/messages/{id}"),
        )
        .await
    }

    /// `GET /channels/{channel}`: whether a channel is a thread, and its parent.
    pub async fn get_channel(&self, channel: u64) -> Result<Value, RestError> {
        self.get(
            "get_channel",
            &format!("channel:{channel}"),
            &format!("/channels/{channel}"),
        )
        .await
    }

    async fn get(&self, route: &'static str, bucket: &str, path: &str) -> Result<Value, RestError> {
        self.send(
            route,
            bucket,
            Method::GET,
            path,
            None,
            Charge::Bot(Spend::First, None),
        )
        .await
        .and_then(|text| super::parse_json(route, text))
    }

    /// "typing…" for about 10 s; from the edits' share of the budget (nobody waits for it).
    pub async fn typing(&self, channel: u64) -> Result<(), RestError> {
        self.send(
            "typing",
            &format!("typing:{channel}"),
            Method::POST,
            &format!("/channels/{channel}/typing"),
            None,
            Charge::Bot(Spend::Edit, None),
        )
        .await?;
        Ok(())
    }

    /// `POST /interactions/{id}/{token}/callback`.
    pub async fn interaction_callback(
        &self,
        id: u64,
        token: &str,
        kind: InteractionCallback,
        data: Option<Value>,
    ) -> Result<(), RestError> {
        let mut body = json!({"type": kind.code()});
        if let Some(d) = data {
            body["data"] = d;
        }
        self.send(
            "interaction",
            &format!("callback:{id}"),
            Method::POST,
            &format!("/interactions/{id}/{token}/callback"),
            Some(&body),
            Charge::Exempt,
        )
        .await?;
        Ok(())
    }

    pub async fn edit_original(&self, token: &str, body: &Value) -> Result<u64, RestError> {
        let path = format!(
            "/webhooks/{}/{token}/messages/@original",
            self.application_id()
        );
        let v = self.webhook(token, Method::PATCH, &path, body).await?;
        Self::message_id("webhook", v.as_deref())
    }

    pub async fn followup(&self, token: &str, body: &Value) -> Result<u64, RestError> {
        let path = format!("/webhooks/{}/{token}", self.application_id());
        let v = self.webhook(token, Method::POST, &path, body).await?;
        Self::message_id("webhook", v.as_deref())
    }

    pub async fn edit_followup(&self, token: &str, id: u64, body: &Value) -> Result<(), RestError> {
        let path = format!("/webhooks/{}/{token}/messages/{id}", self.application_id());
        self.webhook(token, Method::PATCH, &path, body).await?;
        Ok(())
    }

    /// An interaction webhook call: one bucket per interaction token, outside the global limit.
    async fn webhook(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<Option<String>, RestError> {
        self.send(
            "webhook",
            &format!("webhook:{token}"),
            method,
            path,
            Some(body),
            Charge::Exempt,
        )
        .await
    }

    /// Posts a reply piece: the first piece of a channel reply replies to the asking message; the
    /// first piece of an interaction fills its (deferred) original response. `paid`: a place in
    /// the global budget taken already.
    pub async fn post(
        &self,
        target: &Target,
        first: bool,
        content: &str,
        components: Option<&Value>,
        paid: Option<Paid>,
    ) -> Result<Posted, RestError> {
        let mut body = json!({"content": content});
        if let Some(c) = components {
            body["components"] = c.clone();
        }
        match target {
            Target::Channel { channel, reply_to } => {
                let reply = if first { *reply_to } else { None };
                body["allowed_mentions"] = allowed_mentions(reply.is_some());
                if let Some(r) = reply {
                    body["message_reference"] =
                        json!({"message_id": r.to_string(), "fail_if_not_exists": false});
                }
                let id = self.create_message(*channel, &body, paid).await?;
                Ok(Posted::Channel {
                    channel: *channel,
                    id,
                })
            }
            Target::Interaction { token, .. } => {
                body["allowed_mentions"] = allowed_mentions(false);
                if first {
                    Ok(Posted::Original {
                        id: self.edit_original(token, &body).await?,
                    })
                } else {
                    Ok(Posted::Followup {
                        id: self.followup(token, &body).await?,
                    })
                }
            }
        }
    }

    /// Edits a posted piece.
    pub async fn edit(
        &self,
        target: &Target,
        posted: Posted,
        content: &str,
        components: Option<&Value>,
        paid: Option<Paid>,
    ) -> Result<(), RestError> {
        let mut body = json!({"content": content});
        if let Some(c) = components {
            body["components"] = c.clone();
        }
        match (target, posted) {
            (_, Posted::Channel { channel, id }) => {
                body["allowed_mentions"] = allowed_mentions(true);
                self.edit_message(channel, id, &body, paid).await
            }
            (Target::Interaction { token, .. }, Posted::Original { .. }) => {
                body["allowed_mentions"] = allowed_mentions(false);
                self.edit_original(token, &body).await.map(|_| ())
            }
            (Target::Interaction { token, .. }, Posted::Followup { id }) => {
                body["allowed_mentions"] = allowed_mentions(false);
                self.edit_followup(token, id, &body).await
            }
            (Target::Channel { .. }, _) => Err(RestError::Decode {
                route: "edit_message",
                reason: "a channel reply has no interaction message".into(),
            }),
        }
    }

    /// The bucket edits of `posted` go through (for [`DiscordRest::spacing`]).
    pub fn edit_bucket(target: &Target, posted: Posted) -> String {
        match (target, posted) {
            (_, Posted::Channel { channel, .. }) => format!("edit:{channel}"),
            (Target::Interaction { token, .. }, _) => format!("webhook:{token}"),
            (Target::Channel { channel, .. }, _) => format!("edit:{channel}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mentions_never_parse_anything() {
        assert_eq!(
            allowed_mentions(true),
            json!({"parse": [], "replied_user": true})
        );
        assert_eq!(allowed_mentions(false)["parse"], json!([]));
    }
}
