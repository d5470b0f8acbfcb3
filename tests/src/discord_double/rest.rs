//! The REST half of the double: `/api/v10/...`, with Discord's authentication, validation, error
//! bodies and rate limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::ratelimit::Verdict;
use super::world::{ChannelKind, Message, RateLimited, RestCall, snowflake, timestamp_now};
use super::{Inner, Shared, dm_channel};

/// Message flags.
const EPHEMERAL: u64 = 1 << 6;
const LOADING: u64 = 1 << 7;
const SUPPRESS_EMBEDS: u64 = 1 << 2;
const SUPPRESS_NOTIFICATIONS: u64 = 1 << 12;
/// Discord's limit on message content.
pub const MAX_CONTENT: usize = 2000;
/// Interaction tokens are valid for follow-ups this long.
const INTERACTION_TOKEN_LIFETIME: Duration = Duration::from_secs(15 * 60);

/// A refusal: status and Discord's error body.
#[derive(Debug)]
struct Reject(StatusCode, Value);

fn error(status: StatusCode, code: u32, message: &str) -> Reject {
    Reject(status, json!({"message": message, "code": code}))
}

/// 400 Invalid Form Body with Discord's nested `errors` shape for one field.
fn form_error(field: &str, code: &str, message: &str) -> Reject {
    let mut errors = json!({"_errors": [{"code": code, "message": message}]});
    for part in field.rsplit('.') {
        errors = json!({ part: errors });
    }
    Reject(
        StatusCode::BAD_REQUEST,
        json!({"message": "Invalid Form Body", "code": 50035, "errors": errors}),
    )
}

fn not_found() -> Reject {
    error(StatusCode::NOT_FOUND, 0, "404: Not Found")
}

fn snowflake_param(field: &str, s: &str) -> Result<u64, Reject> {
    s.parse::<u64>().map_err(|_| {
        form_error(
            field,
            "NUMBER_TYPE_COERCE",
            &format!("Value \"{s}\" is not snowflake."),
        )
    })
}

/// What a request is, once its path is understood.
#[derive(Debug)]
enum Route {
    Gateway,
    GatewayBot,
    CurrentUser,
    Application,
    CreateDm,
    User(u64),
    Channel(u64),
    Messages(u64),
    Message(u64, u64),
    Typing(u64),
    Member(u64, u64),
    Roles(u64),
    Commands(u64, Option<u64>),
    Callback(u64, String),
    Webhook(u64, String),
    WebhookMessage(u64, String, Option<u64>),
}

impl Route {
    fn parse(segments: &[&str]) -> Result<Route, Reject> {
        Ok(match segments {
            ["gateway"] => Route::Gateway,
            ["gateway", "bot"] => Route::GatewayBot,
            ["users", "@me"] => Route::CurrentUser,
            ["users", "@me", "channels"] => Route::CreateDm,
            ["users", u] => Route::User(snowflake_param("user_id", u)?),
            ["oauth2", "applications", "@me"] | ["applications", "@me"] => Route::Application,
            ["channels", c] => Route::Channel(snowflake_param("channel_id", c)?),
            ["channels", c, "messages"] => Route::Messages(snowflake_param("channel_id", c)?),
            ["channels", c, "messages", m] => Route::Message(
                snowflake_param("channel_id", c)?,
                snowflake_param("message_id", m)?,
            ),
            ["channels", c, "typing"] => Route::Typing(snowflake_param("channel_id", c)?),
            ["guilds", g, "members", u] => Route::Member(
                snowflake_param("guild_id", g)?,
                snowflake_param("user_id", u)?,
            ),
            ["guilds", g, "roles"] => Route::Roles(snowflake_param("guild_id", g)?),
            ["applications", a, "commands"] => {
                Route::Commands(snowflake_param("application_id", a)?, None)
            }
            ["applications", a, "guilds", g, "commands"] => Route::Commands(
                snowflake_param("application_id", a)?,
                Some(snowflake_param("guild_id", g)?),
            ),
            ["interactions", i, t, "callback"] => {
                Route::Callback(snowflake_param("interaction_id", i)?, (*t).to_string())
            }
            ["webhooks", a, t] => {
                Route::Webhook(snowflake_param("webhook_id", a)?, (*t).to_string())
            }
            ["webhooks", a, t, "messages", "@original"] => {
                Route::WebhookMessage(snowflake_param("webhook_id", a)?, (*t).to_string(), None)
            }
            ["webhooks", a, t, "messages", m] => Route::WebhookMessage(
                snowflake_param("webhook_id", a)?,
                (*t).to_string(),
                Some(snowflake_param("message_id", m)?),
            ),
            _ => return Err(not_found()),
        })
    }

    /// (route class, major parameter for the bucket, whether the bot token is required)
    fn class(&self, method: &Method) -> (&'static str, String, bool) {
        match self {
            Route::Gateway => ("gateway", String::new(), false),
            Route::GatewayBot => ("gateway_bot", String::new(), true),
            Route::CurrentUser => ("current_user", String::new(), true),
            Route::Application => ("application", String::new(), true),
            Route::CreateDm => ("create_dm", String::new(), true),
            Route::User(_) => ("get_user", String::new(), true),
            Route::Channel(c) => ("get_channel", c.to_string(), true),
            Route::Messages(c) => ("create_message", c.to_string(), true),
            Route::Message(c, _) if method == Method::PATCH => {
                ("edit_message", c.to_string(), true)
            }
            Route::Message(c, _) if method == Method::DELETE => {
                ("delete_message", c.to_string(), true)
            }
            Route::Message(c, _) => ("get_message", c.to_string(), true),
            Route::Typing(c) => ("typing", c.to_string(), true),
            Route::Member(g, _) => ("member", g.to_string(), true),
            Route::Roles(g) => ("roles", g.to_string(), true),
            Route::Commands(..) => ("commands", String::new(), true),
            // Interaction callbacks and webhooks are authenticated by their token in the path.
            Route::Callback(i, _) => ("interaction_callback", i.to_string(), false),
            Route::Webhook(_, t) | Route::WebhookMessage(_, t, _) => ("webhook", t.clone(), false),
        }
    }

    fn allows(&self, method: &Method) -> bool {
        let m = method.clone();
        match self {
            Route::Gateway
            | Route::GatewayBot
            | Route::CurrentUser
            | Route::Application
            | Route::Channel(_)
            | Route::User(_) => m == Method::GET,
            Route::CreateDm | Route::Typing(_) | Route::Callback(..) => m == Method::POST,
            Route::Messages(_) => m == Method::POST || m == Method::GET,
            Route::Message(..) | Route::WebhookMessage(..) => {
                m == Method::GET || m == Method::PATCH || m == Method::DELETE
            }
            Route::Member(..) | Route::Roles(_) => m == Method::GET,
            Route::Commands(..) => m == Method::GET || m == Method::PUT,
            Route::Webhook(..) => m == Method::POST,
        }
    }
}

/// The single REST entry point: routing, authentication, rate limits, then the handler.
pub(crate) async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_string();
    let now = Instant::now();
    let Some(rest) = path.strip_prefix("/api/v10/") else {
        return respond(
            &shared,
            &method,
            &path,
            "unknown",
            None,
            Err(not_found()),
            Vec::new(),
        );
    };
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let route = match Route::parse(&segments) {
        Ok(r) => r,
        Err(e) => return respond(&shared, &method, &path, "unknown", None, Err(e), Vec::new()),
    };
    let (class, major, needs_auth) = route.class(&method);
    if !route.allows(&method) {
        let e = error(StatusCode::METHOD_NOT_ALLOWED, 0, "405: Method Not Allowed");
        return respond(&shared, &method, &path, class, None, Err(e), Vec::new());
    }
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let token = auth.strip_prefix("Bot ");
    let (generation, authorized) = {
        let inner = shared.lock();
        let generation = token.and_then(|t| inner.token_generation(t));
        (
            generation,
            token.is_some_and(|t| inner.current_token(t).is_some()),
        )
    };
    if needs_auth && !authorized {
        let e = error(StatusCode::UNAUTHORIZED, 0, "401: Unauthorized");
        return respond(
            &shared,
            &method,
            &path,
            class,
            generation,
            Err(e),
            Vec::new(),
        );
    }

    let verdict = shared.lock().buckets.check(class, &major, now);
    let rl_headers = match verdict {
        Verdict::Allowed(h) => h.pairs(),
        Verdict::Limited {
            headers,
            retry_after,
            global,
            forced,
        } => {
            let bucket = headers
                .as_ref()
                .map(|h| h.bucket.clone())
                .unwrap_or_default();
            shared.update(|i| {
                i.world.rate_limited.push(RateLimited {
                    route: class,
                    bucket,
                    forced,
                    global,
                    at: now,
                });
            });
            let mut pairs = headers.map(|h| h.pairs()).unwrap_or_default();
            pairs.push((
                "retry-after",
                retry_after.as_secs_f64().ceil().max(1.0).to_string(),
            ));
            pairs.push((
                "x-ratelimit-scope",
                if global { "global" } else { "user" }.to_string(),
            ));
            if global {
                pairs.push(("x-ratelimit-global", "true".to_string()));
            }
            let body = json!({
                "message": "You are being rate limited.",
                "retry_after": (retry_after.as_secs_f64() * 1000.0).round() / 1000.0,
                "global": global,
            });
            return respond(
                &shared,
                &method,
                &path,
                class,
                generation,
                Err(Reject(StatusCode::TOO_MANY_REQUESTS, body)),
                pairs,
            );
        }
    };

    let json_body = if body.is_empty() {
        Ok(Value::Null)
    } else {
        serde_json::from_slice::<Value>(&body).map_err(|_| {
            error(
                StatusCode::BAD_REQUEST,
                50109,
                "The request body contains invalid JSON.",
            )
        })
    };
    let result = match json_body {
        Err(e) => Err(e),
        Ok(body) => shared.update(|i| execute(i, &method, &route, &body, now)),
    };
    respond(
        &shared, &method, &path, class, generation, result, rl_headers,
    )
}

fn respond(
    shared: &Shared,
    method: &Method,
    path: &str,
    class: &'static str,
    generation: Option<usize>,
    result: Result<(StatusCode, Option<Value>), Reject>,
    extra: Vec<(&'static str, String)>,
) -> Response {
    let (status, body) = match result {
        Ok(ok) => ok,
        Err(Reject(status, body)) => {
            if status.is_client_error()
                && status != StatusCode::UNAUTHORIZED
                && status != StatusCode::TOO_MANY_REQUESTS
            {
                tracing::warn!(%method, path, %status, %body, "Discord double refused a request");
                shared.update(|i| {
                    i.world.rejected.push((
                        format!("{method} {path}"),
                        status.as_u16(),
                        body.clone(),
                    ))
                });
            }
            (status, Some(body))
        }
    };
    shared.update(|i| {
        i.world.rest_calls.push(RestCall {
            method: method.to_string(),
            path: path.to_string(),
            route: class,
            status: status.as_u16(),
            at: Instant::now(),
            token_generation: generation,
        });
    });
    let mut response = match body {
        Some(b) => (status, axum::Json(b)).into_response(),
        None => status.into_response(),
    };
    for (name, value) in extra {
        if let Ok(v) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(name, v);
        }
    }
    response
}

type Outcome = Result<(StatusCode, Option<Value>), Reject>;

fn ok(v: Value) -> Outcome {
    Ok((StatusCode::OK, Some(v)))
}

fn no_content() -> Outcome {
    Ok((StatusCode::NO_CONTENT, None))
}

fn execute(i: &mut Inner, method: &Method, route: &Route, body: &Value, now: Instant) -> Outcome {
    let bot = i.world.bot_id();
    match route {
        Route::Gateway => ok(json!({"url": i.gateway_url})),
        Route::GatewayBot => ok(json!({
            "url": i.gateway_url,
            "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 14_400_000, "max_concurrency": 1},
        })),
        Route::CurrentUser => {
            let mut u = i
                .world
                .bot
                .as_ref()
                .map(|b| b.json())
                .unwrap_or(Value::Null);
            u["verified"] = json!(true);
            u["mfa_enabled"] = json!(false);
            u["flags"] = json!(0);
            u["email"] = Value::Null;
            ok(u)
        }
        Route::Application => {
            let owner = i
                .world
                .users
                .values()
                .find(|u| !u.bot)
                .map(|u| u.json())
                .unwrap_or_else(|| {
                    i.world
                        .bot
                        .as_ref()
                        .map(|b| b.json())
                        .unwrap_or(Value::Null)
                });
            ok(json!({
                "id": i.world.application_id.to_string(),
                "name": i.config.bot_name,
                "icon": null,
                "description": "",
                "rpc_origins": [],
                "bot_public": true,
                "bot_require_code_grant": false,
                "bot": i.world.bot.as_ref().map(|b| b.json()),
                "owner": owner,
                "summary": "",
                "verify_key": "0".repeat(64),
                "team": null,
                "flags": 0,
                "approximate_guild_count": i.world.guilds.len(),
                "redirect_uris": [],
                "interactions_endpoint_url": null,
            }))
        }
        Route::CreateDm => {
            let recipient = body["recipient_id"]
                .as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| body["recipient_id"].as_u64())
                .ok_or_else(|| {
                    form_error(
                        "recipient_id",
                        "BASE_TYPE_REQUIRED",
                        "This field is required",
                    )
                })?;
            if !i.world.users.contains_key(&recipient) {
                return Err(error(StatusCode::NOT_FOUND, 10013, "Unknown User"));
            }
            let id = dm_channel(i, recipient);
            ok(i.world.channel_json(&i.world.channels[&id]))
        }
        Route::User(u) => {
            let user = i
                .world
                .users
                .get(u)
                .ok_or_else(|| error(StatusCode::NOT_FOUND, 10013, "Unknown User"))?;
            ok(user.json())
        }
        Route::Channel(c) => {
            let ch = i
                .world
                .channels
                .get(c)
                .ok_or_else(|| error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"))?;
            ok(i.world.channel_json(ch))
        }
        Route::Messages(c) if method == Method::GET => {
            if !i.world.channels.contains_key(c) {
                return Err(error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"));
            }
            let msgs: Vec<Value> = i
                .world
                .messages
                .values()
                .rev()
                .filter(|m| m.channel_id == *c && !m.deleted)
                .take(50)
                .map(|m| i.world.message_json(m, true))
                .collect();
            ok(Value::Array(msgs))
        }
        Route::Messages(c) => {
            if !i.world.channels.contains_key(c) {
                return Err(error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"));
            }
            let parsed = MessageBody::parse(body, false)?;
            if parsed.flags & !(SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS) != 0 {
                return Err(form_error(
                    "flags",
                    "MESSAGE_FLAGS_INVALID",
                    "Invalid flags",
                ));
            }
            let id = create_message(i, *c, bot, &parsed, None)?;
            ok(i.world.message_json(&i.world.messages[&id], true))
        }
        Route::Message(c, m) if method == Method::GET => {
            let msg = i
                .world
                .messages
                .get(m)
                .filter(|x| x.channel_id == *c && !x.deleted);
            let msg = msg.ok_or_else(|| error(StatusCode::NOT_FOUND, 10008, "Unknown Message"))?;
            ok(i.world.message_json(msg, true))
        }
        Route::Message(c, m) if method == Method::PATCH => {
            let parsed = MessageBody::parse(body, true)?;
            edit_message(i, *c, *m, bot, &parsed)?;
            ok(i.world.message_json(&i.world.messages[m], true))
        }
        Route::Message(c, m) => {
            delete_message(i, *c, *m, bot)?;
            no_content()
        }
        Route::Typing(c) => {
            if !i.world.channels.contains_key(c) {
                return Err(error(StatusCode::NOT_FOUND, 10003, "Unknown Channel"));
            }
            i.world.typing.push((*c, now));
            no_content()
        }
        Route::Member(g, u) => {
            let guild = i
                .world
                .guilds
                .get(g)
                .ok_or_else(|| error(StatusCode::NOT_FOUND, 10004, "Unknown Guild"))?;
            if !guild.members.contains_key(u) {
                return Err(error(StatusCode::NOT_FOUND, 10007, "Unknown Member"));
            }
            ok(i.world.member_json(*g, *u, true))
        }
        Route::Roles(g) => {
            let guild = i
                .world
                .guilds
                .get(g)
                .ok_or_else(|| error(StatusCode::NOT_FOUND, 10004, "Unknown Guild"))?;
            ok(Value::Array(
                guild
                    .roles
                    .iter()
                    .map(|r| super::World::role_json(r, *g))
                    .collect(),
            ))
        }
        Route::Commands(app, guild) => {
            if *app != i.world.application_id {
                return Err(error(StatusCode::FORBIDDEN, 50001, "Missing Access"));
            }
            if let Some(g) = guild
                && !i.world.guilds.contains_key(g)
            {
                return Err(error(StatusCode::NOT_FOUND, 10004, "Unknown Guild"));
            }
            if method == Method::GET {
                let cmds = i
                    .world
                    .commands
                    .get(guild)
                    .map(|c| c.values().cloned().collect())
                    .unwrap_or_default();
                return ok(Value::Array(cmds));
            }
            let commands = validate_commands(body)?;
            let mut stored = std::collections::BTreeMap::new();
            let mut out = Vec::new();
            for mut c in commands {
                let name = c["name"].as_str().unwrap_or_default().to_string();
                let previous_id = i
                    .world
                    .commands
                    .get(guild)
                    .and_then(|m| m.get(&name))
                    .map(|p| p["id"].clone());
                c["id"] = previous_id.unwrap_or_else(|| json!(snowflake().to_string()));
                c["application_id"] = json!(app.to_string());
                c["version"] = json!(snowflake().to_string());
                c["type"] = c.get("type").cloned().unwrap_or(json!(1));
                if c.get("default_member_permissions").is_none() {
                    c["default_member_permissions"] = Value::Null;
                }
                c["nsfw"] = c.get("nsfw").cloned().unwrap_or(json!(false));
                if let Some(g) = guild {
                    c["guild_id"] = json!(g.to_string());
                }
                out.push(c.clone());
                stored.insert(name, c);
            }
            i.world.registrations.push(super::CommandRegistration {
                guild_id: *guild,
                commands: out.clone(),
            });
            i.world.commands.insert(*guild, stored);
            ok(Value::Array(out))
        }
        Route::Callback(id, token) => interaction_callback(i, *id, token, body, now),
        Route::Webhook(app, token) => {
            let interaction = webhook_interaction(i, *app, token, now)?;
            let parsed = MessageBody::parse(body, false)?;
            let channel = i.world.interactions[&interaction].channel_id;
            let id = create_message(i, channel, bot, &parsed, Some(interaction))?;
            ok(i.world.message_json(&i.world.messages[&id], true))
        }
        Route::WebhookMessage(app, token, message) => {
            let interaction = webhook_interaction(i, *app, token, now)?;
            let it = &i.world.interactions[&interaction];
            let target = match message {
                Some(m) => {
                    let belongs = i
                        .world
                        .messages
                        .get(m)
                        .is_some_and(|x| x.interaction_id == Some(interaction));
                    if !belongs {
                        return Err(error(StatusCode::NOT_FOUND, 10008, "Unknown Message"));
                    }
                    *m
                }
                None => it
                    .original_message
                    .or(it.message_id.filter(|_| it.kind == 3))
                    .ok_or_else(|| error(StatusCode::NOT_FOUND, 10008, "Unknown Message"))?,
            };
            let channel = i.world.messages.get(&target).map_or(0, |m| m.channel_id);
            if method == Method::GET {
                let msg = i.world.messages.get(&target).filter(|m| !m.deleted);
                let msg =
                    msg.ok_or_else(|| error(StatusCode::NOT_FOUND, 10008, "Unknown Message"))?;
                return ok(i.world.message_json(msg, true));
            }
            if method == Method::DELETE {
                delete_message(i, channel, target, bot)?;
                return no_content();
            }
            let parsed = MessageBody::parse(body, true)?;
            edit_message(i, channel, target, bot, &parsed)?;
            ok(i.world.message_json(&i.world.messages[&target], true))
        }
    }
}

/// The interaction an interaction webhook token belongs to, if the token is still valid.
fn webhook_interaction(i: &Inner, app: u64, token: &str, now: Instant) -> Result<u64, Reject> {
    let unknown = || error(StatusCode::NOT_FOUND, 10015, "Unknown Webhook");
    if app != i.world.application_id {
        return Err(unknown());
    }
    let it = i
        .world
        .interactions
        .values()
        .find(|x| x.token == token)
        .ok_or_else(unknown)?;
    if it.callbacks.is_empty() || now.duration_since(it.created_at) > INTERACTION_TOKEN_LIFETIME {
        return Err(unknown());
    }
    Ok(it.id)
}

fn interaction_callback(
    i: &mut Inner,
    id: u64,
    token: &str,
    body: &Value,
    now: Instant,
) -> Outcome {
    let bot = i.world.bot_id();
    let unknown = || error(StatusCode::NOT_FOUND, 10062, "Unknown interaction");
    let it = i
        .world
        .interactions
        .get(&id)
        .filter(|x| x.token == token)
        .cloned()
        .ok_or_else(unknown)?;
    if !it.callbacks.is_empty() {
        return Err(error(
            StatusCode::BAD_REQUEST,
            40060,
            "Interaction has already been acknowledged.",
        ));
    }
    if now.duration_since(it.created_at) > i.config.interaction_deadline {
        return Err(unknown());
    }
    let kind = body["type"]
        .as_u64()
        .ok_or_else(|| form_error("type", "BASE_TYPE_REQUIRED", "This field is required"))?;
    let data = body.get("data").cloned().unwrap_or(Value::Null);
    match kind {
        4 => {
            let parsed = MessageBody::parse(&data, false)?;
            if parsed.flags & !(EPHEMERAL | SUPPRESS_EMBEDS | SUPPRESS_NOTIFICATIONS) != 0 {
                return Err(form_error(
                    "data.flags",
                    "MESSAGE_FLAGS_INVALID",
                    "Invalid flags",
                ));
            }
            let msg = create_message(i, it.channel_id, bot, &parsed, Some(id))?;
            set_original(i, id, Some(msg), kind);
        }
        5 => {
            let flags = data["flags"].as_u64().unwrap_or(0) & EPHEMERAL;
            let parsed = MessageBody {
                flags: flags | LOADING,
                ..MessageBody::default()
            };
            let msg = insert_message(
                i,
                it.channel_id,
                bot,
                &parsed,
                Some(id),
                (Vec::new(), Vec::new(), false),
            );
            set_original(i, id, Some(msg), kind);
        }
        6 | 7 if it.kind != 3 => {
            return Err(form_error(
                "type",
                "INTERACTION_RESPONSE_TYPE_INVALID",
                "Interaction response type is invalid for this interaction",
            ));
        }
        6 => set_original(i, id, None, kind),
        7 => {
            let parsed = MessageBody::parse(&data, true)?;
            let target = it.message_id.ok_or_else(unknown)?;
            edit_message(i, it.channel_id, target, bot, &parsed)?;
            set_original(i, id, None, kind);
        }
        _ => {
            return Err(form_error(
                "type",
                "BASE_TYPE_CHOICES",
                &format!("Value must be one of (4, 5, 6, 7, 8, 9, 10, 12); got {kind}"),
            ));
        }
    }
    no_content()
}

fn set_original(i: &mut Inner, interaction: u64, message: Option<u64>, kind: u64) {
    if let Some(it) = i.world.interactions.get_mut(&interaction) {
        it.callbacks.push(kind as u8);
        if message.is_some() {
            it.original_message = message;
        }
    }
}

/// A message create/edit body, validated as Discord validates it.
#[derive(Debug, Default)]
struct MessageBody {
    /// `None`: not in the body (edits keep the old content).
    content: Option<String>,
    allowed_mentions: Option<Value>,
    reply_to: Option<(u64, bool)>,
    components: Option<Value>,
    embeds: usize,
    flags: u64,
}

impl MessageBody {
    fn parse(body: &Value, edit: bool) -> Result<MessageBody, Reject> {
        let obj = body.as_object().ok_or_else(|| {
            error(
                StatusCode::BAD_REQUEST,
                50109,
                "The request body contains invalid JSON.",
            )
        })?;
        let content = match obj.get("content") {
            None => None,
            Some(Value::Null) => Some(String::new()),
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                return Err(form_error(
                    "content",
                    "BASE_TYPE_STRING",
                    "Must be a string.",
                ));
            }
        };
        if let Some(c) = &content {
            // Discord counts UTF-16 code units (JavaScript string length).
            if c.encode_utf16().count() > MAX_CONTENT {
                return Err(form_error(
                    "content",
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 2000 or fewer in length.",
                ));
            }
        }
        let allowed_mentions = match obj.get("allowed_mentions") {
            None | Some(Value::Null) => None,
            Some(a) => Some(validate_allowed_mentions(a)?),
        };
        let reply_to = match obj.get("message_reference") {
            None | Some(Value::Null) => None,
            Some(r) if !edit => {
                let id = r["message_id"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .or_else(|| r["message_id"].as_u64())
                    .ok_or_else(|| {
                        form_error(
                            "message_reference.message_id",
                            "BASE_TYPE_REQUIRED",
                            "This field is required",
                        )
                    })?;
                Some((id, r["fail_if_not_exists"] != false))
            }
            Some(_) => None,
        };
        let components = match obj.get("components") {
            None | Some(Value::Null) => None,
            Some(c) => Some(validate_components(c)?),
        };
        let embeds = match obj.get("embeds") {
            None | Some(Value::Null) => 0,
            Some(Value::Array(e)) if e.len() <= 10 => e.len(),
            Some(_) => {
                return Err(form_error(
                    "embeds",
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 10 or fewer in length.",
                ));
            }
        };
        let flags = match obj.get("flags") {
            None | Some(Value::Null) => 0,
            Some(f) => f
                .as_u64()
                .ok_or_else(|| form_error("flags", "NUMBER_TYPE_COERCE", "Value is not int."))?,
        };
        if !edit {
            let has_content = content.as_deref().is_some_and(|c| !c.trim().is_empty());
            let has_components = components
                .as_ref()
                .and_then(Value::as_array)
                .is_some_and(|c| !c.is_empty());
            if !has_content && !has_components && embeds == 0 {
                return Err(error(
                    StatusCode::BAD_REQUEST,
                    50006,
                    "Cannot send an empty message",
                ));
            }
        }
        Ok(MessageBody {
            content,
            allowed_mentions,
            reply_to,
            components,
            embeds,
            flags,
        })
    }
}

fn validate_allowed_mentions(a: &Value) -> Result<Value, Reject> {
    let obj = a.as_object().ok_or_else(|| {
        form_error(
            "allowed_mentions",
            "DICT_TYPE_CONVERT",
            "Only dictionaries may be used in a DictType",
        )
    })?;
    let parse: Vec<&str> = match obj.get("parse") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(p)) => {
            let mut out = Vec::new();
            for v in p {
                match v.as_str() {
                    Some(s @ ("users" | "roles" | "everyone")) => out.push(s),
                    _ => {
                        return Err(form_error(
                            "allowed_mentions.parse",
                            "BASE_TYPE_CHOICES",
                            "Value must be one of ('roles', 'users', 'everyone').",
                        ));
                    }
                }
            }
            out
        }
        Some(_) => {
            return Err(form_error(
                "allowed_mentions.parse",
                "BASE_TYPE_LIST",
                "Must be a list.",
            ));
        }
    };
    for (field, kind) in [("users", "users"), ("roles", "roles")] {
        let list = obj.get(field).and_then(Value::as_array);
        if let Some(list) = list {
            if !list.is_empty() && parse.contains(&kind) {
                return Err(form_error(
                    "allowed_mentions",
                    "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE",
                    &format!("parse:[\"{kind}\"] and {kind}: [ids] are mutually exclusive."),
                ));
            }
            if list.len() > 100 {
                return Err(form_error(
                    &format!("allowed_mentions.{field}"),
                    "BASE_TYPE_MAX_LENGTH",
                    "Must be 100 or fewer in length.",
                ));
            }
        }
    }
    Ok(a.clone())
}

fn validate_components(c: &Value) -> Result<Value, Reject> {
    let rows = c
        .as_array()
        .ok_or_else(|| form_error("components", "BASE_TYPE_LIST", "Must be a list."))?;
    if rows.len() > 5 {
        return Err(form_error(
            "components",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 5 or fewer in length.",
        ));
    }
    let mut ids = std::collections::BTreeSet::new();
    for (r, row) in rows.iter().enumerate() {
        if row["type"] != 1 {
            return Err(form_error(
                &format!("components.{r}.type"),
                "UNION_TYPE_CHOICES",
                "Value of field \"type\" must be one of (1,).",
            ));
        }
        let items = row["components"].as_array().ok_or_else(|| {
            form_error(
                &format!("components.{r}.components"),
                "BASE_TYPE_REQUIRED",
                "This field is required",
            )
        })?;
        if items.is_empty() || items.len() > 5 {
            return Err(form_error(
                &format!("components.{r}.components"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 5 in length.",
            ));
        }
        for (k, b) in items.iter().enumerate() {
            let at = format!("components.{r}.components.{k}");
            if b["type"] != 2 {
                return Err(form_error(
                    &format!("{at}.type"),
                    "UNION_TYPE_CHOICES",
                    "Only buttons are supported by this double.",
                ));
            }
            let style = b["style"].as_u64().unwrap_or(0);
            let label = b["label"].as_str().unwrap_or("");
            if label.chars().count() > 80 || (label.is_empty() && b.get("emoji").is_none()) {
                return Err(form_error(
                    &format!("{at}.label"),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 80 in length.",
                ));
            }
            match style {
                1..=4 => {
                    let id = b["custom_id"].as_str().unwrap_or("");
                    if id.is_empty() || id.chars().count() > 100 {
                        return Err(form_error(
                            &format!("{at}.custom_id"),
                            "BASE_TYPE_BAD_LENGTH",
                            "Must be between 1 and 100 in length.",
                        ));
                    }
                    if !ids.insert(id.to_string()) {
                        return Err(form_error(
                            &format!("{at}.custom_id"),
                            "COMPONENT_CUSTOM_ID_DUPLICATED",
                            "Component custom id cannot be duplicated",
                        ));
                    }
                }
                5 if b["url"].is_string() => {}
                _ => {
                    return Err(form_error(
                        &format!("{at}.style"),
                        "BUTTON_COMPONENT_INVALID",
                        "Invalid button style or missing url/custom_id",
                    ));
                }
            }
        }
    }
    Ok(c.clone())
}

fn create_message(
    i: &mut Inner,
    channel: u64,
    author: u64,
    body: &MessageBody,
    interaction: Option<u64>,
) -> Result<u64, Reject> {
    let guild = i.world.channels.get(&channel).and_then(|c| c.guild_id);
    let mut reply_to = None;
    let mut replied_author = None;
    if let Some((id, fail_if_not_exists)) = body.reply_to {
        match i
            .world
            .messages
            .get(&id)
            .filter(|m| m.channel_id == channel && !m.deleted)
        {
            Some(m) => {
                reply_to = Some(id);
                replied_author = Some(m.author_id);
            }
            None if fail_if_not_exists => {
                return Err(form_error(
                    "message_reference",
                    "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                    "Unknown message",
                ));
            }
            None => {}
        }
    }
    let content = body.content.clone().unwrap_or_default();
    let pings = i.pings(
        &content,
        guild,
        body.allowed_mentions.as_ref(),
        replied_author,
    );
    let body = MessageBody {
        content: Some(content),
        allowed_mentions: body.allowed_mentions.clone(),
        reply_to: reply_to.map(|r| (r, true)),
        components: body.components.clone(),
        embeds: body.embeds,
        flags: body.flags,
    };
    Ok(insert_message(
        i,
        channel,
        author,
        &body,
        interaction,
        pings,
    ))
}

fn insert_message(
    i: &mut Inner,
    channel: u64,
    author: u64,
    body: &MessageBody,
    interaction: Option<u64>,
    (pinged_users, pinged_roles, pinged_everyone): (Vec<u64>, Vec<u64>, bool),
) -> u64 {
    let id = snowflake();
    let guild = i.world.channels.get(&channel).and_then(|c| c.guild_id);
    let m = Message {
        id,
        channel_id: channel,
        guild_id: guild,
        author_id: author,
        content: body.content.clone().unwrap_or_default(),
        edits: Vec::new(),
        deleted: false,
        reply_to: body.reply_to.map(|r| r.0),
        components: body.components.clone().unwrap_or(json!([])),
        flags: body.flags,
        pinged_users,
        pinged_roles,
        pinged_everyone,
        allowed_mentions: vec![body.allowed_mentions.clone()],
        interaction_id: interaction,
        created_at: Instant::now(),
        edited_at: Vec::new(),
        timestamp: timestamp_now(),
        edited_timestamp: None,
    };
    let ephemeral = m.flags & EPHEMERAL != 0;
    if let Some(r) = m.reply_to {
        i.world.replies.entry(r).or_default().push(id);
    }
    i.world.messages.insert(id, m);
    if let Some(c) = i.world.channels.get_mut(&channel) {
        c.last_message_id = Some(id);
    }
    if !ephemeral {
        let data = i.world.message_json(&i.world.messages[&id], true);
        i.dispatch("MESSAGE_CREATE", data);
    }
    id
}

fn edit_message(
    i: &mut Inner,
    channel: u64,
    id: u64,
    editor: u64,
    body: &MessageBody,
) -> Result<(), Reject> {
    let existing = i
        .world
        .messages
        .get(&id)
        .filter(|m| m.channel_id == channel && !m.deleted)
        .cloned();
    let existing =
        existing.ok_or_else(|| error(StatusCode::NOT_FOUND, 10008, "Unknown Message"))?;
    if existing.author_id != editor {
        return Err(error(
            StatusCode::FORBIDDEN,
            50005,
            "Cannot edit a message authored by another user",
        ));
    }
    let content = body
        .content
        .clone()
        .unwrap_or_else(|| existing.content.clone());
    let components = body
        .components
        .clone()
        .unwrap_or_else(|| existing.components.clone());
    let has_components = components.as_array().is_some_and(|c| !c.is_empty());
    let loading = existing.flags & LOADING != 0;
    if content.trim().is_empty()
        && !has_components
        && body.embeds == 0
        && !(loading && body.content.is_none())
    {
        return Err(error(
            StatusCode::BAD_REQUEST,
            50006,
            "Cannot send an empty message",
        ));
    }
    let replied_author = existing
        .reply_to
        .and_then(|r| i.world.messages.get(&r))
        .map(|m| m.author_id);
    let allowed = body
        .allowed_mentions
        .clone()
        .or_else(|| existing.allowed_mentions.first().cloned().flatten());
    let (users, roles, everyone) = i.pings(
        &content,
        existing.guild_id,
        allowed.as_ref(),
        replied_author,
    );
    let m = i
        .world
        .messages
        .get_mut(&id)
        .ok_or_else(|| error(StatusCode::NOT_FOUND, 10008, "Unknown Message"))?;
    m.content = content.clone();
    m.components = components;
    m.flags &= !LOADING;
    m.edits.push(content);
    m.edited_at.push(Instant::now());
    m.edited_timestamp = Some(timestamp_now());
    m.allowed_mentions.push(body.allowed_mentions.clone());
    for u in users {
        if !m.pinged_users.contains(&u) {
            m.pinged_users.push(u);
        }
    }
    for r in roles {
        if !m.pinged_roles.contains(&r) {
            m.pinged_roles.push(r);
        }
    }
    m.pinged_everyone |= everyone;
    let ephemeral = m.flags & EPHEMERAL != 0;
    if !ephemeral {
        let data = i.world.message_json(&i.world.messages[&id], false);
        i.dispatch("MESSAGE_UPDATE", data);
    }
    Ok(())
}

fn delete_message(i: &mut Inner, channel: u64, id: u64, actor: u64) -> Result<(), Reject> {
    let m = i
        .world
        .messages
        .get_mut(&id)
        .filter(|m| m.channel_id == channel && !m.deleted);
    let m = m.ok_or_else(|| error(StatusCode::NOT_FOUND, 10008, "Unknown Message"))?;
    if m.author_id != actor {
        return Err(error(StatusCode::FORBIDDEN, 50013, "Missing Permissions"));
    }
    m.deleted = true;
    let guild = m.guild_id;
    let mut data = json!({"id": id.to_string(), "channel_id": channel.to_string()});
    if let Some(g) = guild {
        data["guild_id"] = json!(g.to_string());
    }
    i.dispatch("MESSAGE_DELETE", data);
    Ok(())
}

/// Application command names: 1–32 lowercase letters, digits, `-` or `_`.
fn valid_command_name(name: &str) -> bool {
    let n = name.chars().count();
    (1..=32).contains(&n)
        && name
            .chars()
            .all(|c| c == '-' || c == '_' || c.is_alphanumeric())
        && name.chars().all(|c| !c.is_uppercase())
}

fn validate_command_options(options: &Value, at: &str) -> Result<(), Reject> {
    let Some(options) = options.as_array() else {
        return Ok(());
    };
    if options.len() > 25 {
        return Err(form_error(
            &format!("{at}.options"),
            "BASE_TYPE_MAX_LENGTH",
            "Must be 25 or fewer in length.",
        ));
    }
    let mut seen_optional = false;
    let mut names = std::collections::BTreeSet::new();
    for (k, o) in options.iter().enumerate() {
        let here = format!("{at}.options.{k}");
        let name = o["name"].as_str().unwrap_or("");
        if !valid_command_name(name) {
            return Err(form_error(
                &format!("{here}.name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(form_error(
                &format!("{here}.name"),
                "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS",
                "Option names must be unique",
            ));
        }
        let desc = o["description"].as_str().unwrap_or("").chars().count();
        if !(1..=100).contains(&desc) {
            return Err(form_error(
                &format!("{here}.description"),
                "BASE_TYPE_BAD_LENGTH",
                "Must be between 1 and 100 in length.",
            ));
        }
        let kind = o["type"].as_u64().unwrap_or(0);
        if !(1..=11).contains(&kind) {
            return Err(form_error(
                &format!("{here}.type"),
                "BASE_TYPE_CHOICES",
                "Value must be one of {1..11}.",
            ));
        }
        if kind == 1 || kind == 2 {
            validate_command_options(&o["options"], &here)?;
            continue;
        }
        let required = o["required"] == true;
        if required && seen_optional {
            return Err(form_error(
                &here,
                "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                "Required options must be placed before non-required options",
            ));
        }
        seen_optional |= !required;
    }
    Ok(())
}

fn validate_commands(body: &Value) -> Result<Vec<Value>, Reject> {
    let list = body
        .as_array()
        .ok_or_else(|| form_error("_root", "BASE_TYPE_LIST", "Must be a list."))?;
    if list.len() > 100 {
        return Err(form_error(
            "_root",
            "BASE_TYPE_MAX_LENGTH",
            "Must be 100 or fewer in length.",
        ));
    }
    let mut names = std::collections::BTreeSet::new();
    for (k, c) in list.iter().enumerate() {
        let name = c["name"].as_str().unwrap_or("");
        if !valid_command_name(name) {
            return Err(form_error(
                &format!("{k}.name"),
                "APPLICATION_COMMAND_INVALID_NAME",
                "Command name is invalid",
            ));
        }
        if !names.insert(name.to_string()) {
            return Err(form_error(
                &format!("{k}.name"),
                "APPLICATION_COMMAND_DUPLICATE_NAME",
                "Application command names must be unique",
            ));
        }
        let kind = c["type"].as_u64().unwrap_or(1);
        if kind == 1 {
            let desc = c["description"].as_str().unwrap_or("").chars().count();
            if !(1..=100).contains(&desc) {
                return Err(form_error(
                    &format!("{k}.description"),
                    "BASE_TYPE_BAD_LENGTH",
                    "Must be between 1 and 100 in length.",
                ));
            }
        }
        validate_command_options(&c["options"], &k.to_string())?;
    }
    Ok(list.clone())
}

/// Whether `channel` is a thread (for tests that inspect channel kinds).
#[allow(dead_code)]
pub(crate) fn is_thread(i: &Inner, channel: u64) -> bool {
    i.world
        .channels
        .get(&channel)
        .is_some_and(|c| c.kind == ChannelKind::PublicThread)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_error_nests_fields() {
        let Reject(status, body) = form_error("allowed_mentions.parse", "X", "m");
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            body["errors"]["allowed_mentions"]["parse"]["_errors"][0]["code"],
            "X"
        );
    }

    #[test]
    fn message_body_rules() {
        assert!(MessageBody::parse(&json!({"content": "hi"}), false).is_ok());
        let Reject(s, b) = MessageBody::parse(&json!({"content": "  "}), false).expect_err("empty");
        assert_eq!(
            (s, b["code"].as_u64()),
            (StatusCode::BAD_REQUEST, Some(50006))
        );
        let Reject(_, b) =
            MessageBody::parse(&json!({"content": "x".repeat(2001)}), false).expect_err("long");
        assert_eq!(b["code"], 50035);
        assert!(MessageBody::parse(&json!({"content": "x".repeat(2000)}), false).is_ok());
        // Astral characters count twice, as in JavaScript.
        assert!(MessageBody::parse(&json!({"content": "🔧".repeat(1001)}), false).is_err());
        let conflicting =
            json!({"content": "x", "allowed_mentions": {"parse": ["users"], "users": ["1"]}});
        let Reject(_, b) = MessageBody::parse(&conflicting, false).expect_err("conflict");
        assert_eq!(
            b["errors"]["allowed_mentions"]["_errors"][0]["code"],
            "MESSAGE_ALLOWED_MENTIONS_PARSE_EXCLUSIVE"
        );
        assert!(
            MessageBody::parse(
                &json!({"content": "x", "allowed_mentions": {"parse": ["nobody"]}}),
                false
            )
            .is_err()
        );
        // Edits may leave content out.
        assert!(MessageBody::parse(&json!({"components": []}), true).is_ok());
    }

    #[test]
    fn buttons_are_checked() {
        let good = json!([{"type": 1, "components": [{"type": 2, "style": 3, "label": "Approve", "custom_id": "a"}]}]);
        assert!(validate_components(&good).is_ok());
        let no_id = json!([{"type": 1, "components": [{"type": 2, "style": 1, "label": "x"}]}]);
        assert!(validate_components(&no_id).is_err());
        let dup = json!([{"type": 1, "components": [
            {"type": 2, "style": 1, "label": "x", "custom_id": "a"},
            {"type": 2, "style": 1, "label": "y", "custom_id": "a"}]}]);
        assert!(validate_components(&dup).is_err());
    }

    #[test]
    fn command_rules() {
        assert!(
            validate_commands(&json!([{"name": "chat", "description": "Chat", "options": [
            {"name": "text", "description": "t", "type": 3, "required": true}]}]))
            .is_ok()
        );
        assert!(validate_commands(&json!([{"name": "Chat", "description": "d"}])).is_err());
        assert!(validate_commands(&json!([{"name": "chat", "description": ""}])).is_err());
        assert!(
            validate_commands(&json!([{"name": "a", "description": "d", "options": [
            {"name": "x", "description": "d", "type": 3},
            {"name": "y", "description": "d", "type": 3, "required": true}]}]))
            .is_err()
        );
    }
}
