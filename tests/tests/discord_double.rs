//! Self-tests of the Discord double: it must speak Discord's protocol (every payload deserializes
//! into serenity's models, which mirror Discord's) and refuse what Discord refuses.
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use ollama_mcp_tests::discord_double::{DiscordDouble, DoubleConfig, Limit, UserMessage, intents};
use serde_json::{Value, json};
use serenity::model::event::GatewayEvent;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const TOKEN: &str = "MTA.double.token";
const WAIT: Duration = Duration::from_secs(10);

fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = client().request(method, url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bot {t}"));
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request to the double");
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.expect("body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("JSON body")
    };
    (status, headers, body)
}

fn api(d: &DiscordDouble, path: &str) -> String {
    format!("{}/api/v10{path}", d.api_base())
}

struct Gateway {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Gateway {
    async fn connect(d: &DiscordDouble) -> Gateway {
        let (ws, _) = tokio_tungstenite::connect_async(format!("{}?v=10", d.gateway_url()))
            .await
            .expect("connect");
        Gateway { ws }
    }

    /// The next frame, checked against serenity's gateway model; Err(close code) on close.
    async fn next(&mut self) -> Result<Value, u16> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time");
            match msg {
                Some(Ok(WsMessage::Text(t))) => {
                    let event: Result<GatewayEvent, _> = serde_json::from_str(t.as_str());
                    if let Err(e) = event {
                        panic!("serenity cannot read the double's frame: {e}\n{t}");
                    }
                    return Ok(serde_json::from_str(t.as_str()).unwrap());
                }
                Some(Ok(WsMessage::Close(Some(f)))) => return Err(u16::from(f.code)),
                Some(Ok(WsMessage::Close(None))) | None => return Err(0),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("websocket error: {e}"),
            }
        }
    }

    async fn send(&mut self, v: Value) {
        self.ws
            .send(WsMessage::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    async fn dispatch(&mut self, name: &str) -> Value {
        loop {
            let f = self
                .next()
                .await
                .unwrap_or_else(|c| panic!("closed {c} while waiting for {name}"));
            if f["t"] == name {
                return f;
            }
        }
    }

    async fn identify(d: &DiscordDouble, intents: u64) -> (Gateway, Value) {
        let mut g = Gateway::connect(d).await;
        let hello = g.next().await.unwrap();
        assert_eq!(hello["op"], 10);
        assert!(hello["d"]["heartbeat_interval"].as_u64().unwrap() > 0);
        g.send(
            json!({"op": 2, "d": {"token": format!("Bot {TOKEN}"), "intents": intents,
            "properties": {"os": "linux", "browser": "t", "device": "t"}, "shard": [0, 1]}}),
        )
        .await;
        let ready = g.dispatch("READY").await;
        (g, ready)
    }
}

const ALL: u64 =
    intents::GUILDS | intents::GUILD_MESSAGES | intents::DIRECT_MESSAGES | intents::MESSAGE_CONTENT;

#[tokio::test]
async fn rest_requires_the_bot_token() {
    let d = DiscordDouble::start(TOKEN).await;
    let (status, _, body) = call(reqwest::Method::GET, api(&d, "/users/@me"), None, None).await;
    assert_eq!(status, 401);
    assert_eq!(body, json!({"message": "401: Unauthorized", "code": 0}));
    let (status, _, _) = call(
        reqwest::Method::GET,
        api(&d, "/users/@me"),
        Some("wrong"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _, body) = call(
        reqwest::Method::GET,
        api(&d, "/users/@me"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let me: serenity::model::user::CurrentUser = serde_json::from_value(body).expect("CurrentUser");
    assert_eq!(me.id.get(), d.bot_id());
    let (_, _, body) = call(
        reqwest::Method::GET,
        api(&d, "/oauth2/applications/@me"),
        Some(TOKEN),
        None,
    )
    .await;
    let app: serenity::model::application::CurrentApplicationInfo =
        serde_json::from_value(body).expect("app info");
    assert_eq!(app.id.get(), d.application_id());
    // The gateway URL needs no token, as on Discord.
    let (status, _, body) = call(reqwest::Method::GET, api(&d, "/gateway"), None, None).await;
    assert_eq!(
        (status, body["url"].as_str()),
        (200, Some(d.gateway_url().as_str()))
    );
    let (_, _, body) = call(
        reqwest::Method::GET,
        api(&d, "/gateway/bot"),
        Some(TOKEN),
        None,
    )
    .await;
    let _: serenity::model::gateway::BotGateway = serde_json::from_value(body).expect("BotGateway");
    // After a token reset only the new token works.
    d.rotate_token("new-token");
    assert_eq!(
        call(
            reqwest::Method::GET,
            api(&d, "/users/@me"),
            Some(TOKEN),
            None
        )
        .await
        .0,
        401
    );
    assert_eq!(
        call(
            reqwest::Method::GET,
            api(&d, "/users/@me"),
            Some("new-token"),
            None
        )
        .await
        .0,
        200
    );
}

#[tokio::test]
async fn unknown_routes_and_methods_get_discord_errors() {
    let d = DiscordDouble::start(TOKEN).await;
    let (status, _, body) = call(reqwest::Method::GET, api(&d, "/nope"), Some(TOKEN), None).await;
    assert_eq!(
        (status, body),
        (404, json!({"message": "404: Not Found", "code": 0}))
    );
    let (status, _, body) = call(
        reqwest::Method::GET,
        format!("{}/api/v9/users/@me", d.api_base()),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(0)));
    let (status, _, body) = call(
        reqwest::Method::DELETE,
        api(&d, "/users/@me"),
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, body),
        (
            405,
            json!({"message": "405: Method Not Allowed", "code": 0})
        )
    );
    let (status, _, body) = call(
        reqwest::Method::POST,
        api(&d, "/channels/abc/messages"),
        Some(TOKEN),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));
    let (status, _, body) = call(
        reqwest::Method::POST,
        api(&d, "/channels/1/messages"),
        Some(TOKEN),
        Some(json!({"content": "x"})),
    )
    .await;
    assert_eq!(
        (status, body),
        (404, json!({"message": "Unknown Channel", "code": 10003}))
    );
}

#[tokio::test]
async fn messages_are_validated_like_discord() {
    let d = DiscordDouble::start(TOKEN).await;
    let g = d.add_guild("g");
    let ch = d.add_text_channel(g, "general");
    let alice = d.add_user("alice");
    d.add_member(g, alice, &[]);
    // Refused requests count against the bucket too, as on Discord: leave room for all of them.
    d.set_limit("create_message", Limit::new(50, Duration::from_secs(5)));
    let url = api(&d, &format!("/channels/{ch}/messages"));
    let post = |body: Value| call(reqwest::Method::POST, url.clone(), Some(TOKEN), Some(body));

    let (status, _, body) = post(json!({"content": "x".repeat(2001)})).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], 50035);
    assert_eq!(body["message"], "Invalid Form Body");
    assert_eq!(
        body["errors"]["content"]["_errors"][0]["code"],
        "BASE_TYPE_MAX_LENGTH"
    );
    let (status, _, body) = post(json!({"content": ""})).await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"message": "Cannot send an empty message", "code": 50006})
        )
    );
    let (status, _, body) = post(json!({"content": " \n "})).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50006)));
    let (status, _, body) =
        post(json!({"content": "hi", "allowed_mentions": {"parse": ["users"], "users": [alice.to_string()]}})).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));
    let (status, _, body) =
        post(json!({"content": "hi", "message_reference": {"message_id": "12345"}})).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(50035)));
    let (status, _, body) = post(json!({"content": "x".repeat(2000)})).await;
    assert_eq!(status, 200);
    let m: serenity::model::channel::Message = serde_json::from_value(body).expect("Message");
    assert_eq!(m.content.len(), 2000);

    // Edits: only the author's messages, never to empty.
    let user_msg = d.user_says(alice, ch, "hello");
    let edit = |id: u64, body: Value| {
        call(
            reqwest::Method::PATCH,
            api(&d, &format!("/channels/{ch}/messages/{id}")),
            Some(TOKEN),
            Some(body),
        )
    };
    let (status, _, body) = edit(user_msg, json!({"content": "hacked"})).await;
    assert_eq!((status, body["code"].as_u64()), (403, Some(50005)));
    let (status, _, _) = edit(m.id.get(), json!({"content": ""})).await;
    assert_eq!(status, 400);
    let (status, _, body) = edit(m.id.get(), json!({"content": "edited"})).await;
    assert_eq!(status, 200);
    let edited: serenity::model::channel::Message = serde_json::from_value(body).expect("Message");
    assert!(edited.edited_timestamp.is_some());
    d.with(|w| {
        assert_eq!(w.messages[&m.id.get()].edits, vec!["edited".to_string()]);
        assert!(w.rejected.len() >= 6);
    });
}

#[tokio::test]
async fn allowed_mentions_decide_who_is_pinged() {
    let d = DiscordDouble::start(TOKEN).await;
    let g = d.add_guild("g");
    let ch = d.add_text_channel(g, "general");
    let (alice, bob) = (d.add_user("alice"), d.add_user("bob"));
    let role = d.add_role(g, "mods");
    d.add_member(g, alice, &[]);
    d.add_member(g, bob, &[role]);
    let asked = d.user_says(alice, ch, "question");
    let text = format!("@everyone <@{bob}> <@&{role}> answer");
    let url = api(&d, &format!("/channels/{ch}/messages"));
    // Without allowed_mentions everything pings.
    let (_, _, loud) = call(
        reqwest::Method::POST,
        url.clone(),
        Some(TOKEN),
        Some(json!({"content": text})),
    )
    .await;
    assert_eq!(loud["mention_everyone"], true);
    // Restricted: only the replied user.
    let quiet = json!({"content": text, "message_reference": {"message_id": asked.to_string()},
        "allowed_mentions": {"parse": [], "replied_user": true}});
    let (status, _, body) = call(reqwest::Method::POST, url, Some(TOKEN), Some(quiet)).await;
    assert_eq!(status, 200);
    let id: u64 = body["id"].as_str().unwrap().parse().unwrap();
    d.with(|w| {
        let m = &w.messages[&id];
        assert_eq!(m.pinged_users, vec![alice]);
        assert!(m.pinged_roles.is_empty());
        assert!(!m.pinged_everyone);
        assert_eq!(m.reply_to, Some(asked));
    });
}

#[tokio::test]
async fn rate_limit_headers_and_429() {
    let mut config = DoubleConfig::new(TOKEN);
    config
        .limits
        .insert("create_message", Limit::new(2, Duration::from_secs(30)));
    let d = DiscordDouble::start_with(config).await;
    let g = d.add_guild("g");
    let (a, b) = (d.add_text_channel(g, "a"), d.add_text_channel(g, "b"));
    let post = |ch: u64| {
        call(
            reqwest::Method::POST,
            api(&d, &format!("/channels/{ch}/messages")),
            Some(TOKEN),
            Some(json!({"content": "x"})),
        )
    };
    let (status, h, _) = post(a).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-ratelimit-limit"], "2");
    assert_eq!(h["x-ratelimit-remaining"], "1");
    let reset_after: f64 = h["x-ratelimit-reset-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset_after > 0.0 && reset_after <= 30.0);
    assert!(h.contains_key("x-ratelimit-bucket") && h.contains_key("x-ratelimit-reset"));
    assert_eq!(post(a).await.1["x-ratelimit-remaining"], "0");
    let (status, h, body) = post(a).await;
    assert_eq!(status, 429);
    assert_eq!(body["message"], "You are being rate limited.");
    assert_eq!(body["global"], false);
    assert!(body["retry_after"].as_f64().unwrap() > 0.0);
    assert!(h.contains_key("retry-after"));
    // Another channel is another bucket.
    assert_eq!(post(b).await.0, 200);
    // Forced 429s.
    d.force_429("create_message", 1, Duration::from_millis(250));
    let (status, _, body) = post(b).await;
    assert_eq!((status, body["retry_after"].as_f64()), (429, Some(0.25)));
    d.with(|w| {
        assert_eq!(w.exceeded().len(), 1);
        assert_eq!(w.rate_limited.len(), 2);
    });
}

#[tokio::test]
async fn gateway_identify_ready_heartbeat_and_dispatches() {
    let d = DiscordDouble::start(TOKEN).await;
    let g = d.add_guild("guild");
    let ch = d.add_text_channel(g, "general");
    let alice = d.add_user("alice");
    d.add_member(g, alice, &[]);
    let (mut gw, ready) = Gateway::identify(&d, ALL).await;
    assert_eq!(ready["s"], 1);
    assert_eq!(ready["d"]["user"]["id"], d.bot_id().to_string());
    let guild = gw.dispatch("GUILD_CREATE").await;
    assert_eq!(guild["s"], 2);
    assert_eq!(guild["d"]["id"], g.to_string());
    // Without GUILD_PRESENCES, Discord sends only the bot's own member (and voice members).
    let members: Vec<&str> = guild["d"]["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["user"]["id"].as_str())
        .collect();
    assert_eq!(members, [d.bot_id().to_string()]);
    assert_eq!(guild["d"]["member_count"], 2);
    gw.send(json!({"op": 1, "d": 2})).await;
    assert_eq!(gw.next().await.unwrap()["op"], 11);

    let thread = d.add_thread(g, ch, "topic");
    let t = gw.dispatch("THREAD_CREATE").await;
    assert_eq!(t["d"]["id"], thread.to_string());
    let msg = d.user_says(alice, ch, &format!("hi <@{}>", d.bot_id()));
    let m = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!(m["d"]["id"], msg.to_string());
    assert_eq!(m["d"]["mentions"][0]["id"], d.bot_id().to_string());
    assert_eq!(m["d"]["member"]["roles"], json!([]));
    let reply = d.user_replies(alice, ch, msg, "again");
    let r = gw.dispatch("MESSAGE_CREATE").await;
    assert_eq!(r["d"]["referenced_message"]["id"], msg.to_string());
    assert_eq!(r["d"]["id"], reply.to_string());
    let dm = d.dm_channel(alice);
    d.user_says(alice, dm, "private");
    let m = gw.dispatch("MESSAGE_CREATE").await;
    assert!(m["d"].get("guild_id").is_none());
    let seqs: Vec<u64> = d.with(|w| w.dispatched.iter().map(|(s, _)| *s).collect());
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "sequence numbers count up by one"
    );
}

#[tokio::test]
async fn gateway_refuses_bad_token_and_intents() {
    let d = DiscordDouble::start(TOKEN).await;
    let mut gw = Gateway::connect(&d).await;
    gw.next().await.unwrap();
    gw.send(json!({"op": 2, "d": {"token": "Bot wrong", "intents": 513, "properties": {}}}))
        .await;
    assert_eq!(gw.next().await, Err(4004));

    let mut config = DoubleConfig::new(TOKEN);
    config.privileged_intents = 0;
    let d = DiscordDouble::start_with(config).await;
    let mut gw = Gateway::connect(&d).await;
    gw.next().await.unwrap();
    gw.send(json!({"op": 2, "d": {"token": TOKEN, "intents": ALL, "properties": {}}}))
        .await;
    assert_eq!(gw.next().await, Err(4014));

    let mut gw = Gateway::connect(&d).await;
    gw.next().await.unwrap();
    gw.send(json!({"op": 42, "d": null})).await;
    assert_eq!(gw.next().await, Err(4001));

    let (mut ws, _) = tokio_tungstenite::connect_async(d.gateway_url())
        .await
        .expect("connect");
    match ws.next().await {
        Some(Ok(WsMessage::Close(Some(f)))) => assert_eq!(u16::from(f.code), 4012),
        other => panic!("expected close 4012 without ?v=10, got {other:?}"),
    }
}

#[tokio::test]
async fn message_content_needs_the_intent() {
    let d = DiscordDouble::start(TOKEN).await;
    let g = d.add_guild("g");
    let ch = d.add_text_channel(g, "general");
    let alice = d.add_user("alice");
    d.add_member(g, alice, &[]);
    let (mut gw, _) = Gateway::identify(&d, intents::GUILDS | intents::GUILD_MESSAGES).await;
    d.user_says(alice, ch, "hey bot, secret words");
    assert_eq!(gw.dispatch("MESSAGE_CREATE").await["d"]["content"], "");
    d.user_says(alice, ch, &format!("<@{}> visible", d.bot_id()));
    assert_eq!(
        gw.dispatch("MESSAGE_CREATE").await["d"]["content"],
        format!("<@{}> visible", d.bot_id())
    );
}

#[tokio::test]
async fn resume_replays_missed_events() {
    let d = DiscordDouble::start(TOKEN).await;
    let g = d.add_guild("g");
    let ch = d.add_text_channel(g, "general");
    let alice = d.add_user("alice");
    d.add_member(g, alice, &[]);
    let (mut gw, ready) = Gateway::identify(&d, ALL).await;
    let session = ready["d"]["session_id"].as_str().unwrap().to_string();
    let last = gw.dispatch("GUILD_CREATE").await["s"].as_u64().unwrap();
    d.force_reconnect();
    assert_eq!(gw.next().await.unwrap()["op"], 7);
    drop(gw);
    d.wait_for("the connection to detach", WAIT, |w| {
        (!w.attached).then_some(())
    })
    .await;
    let missed = d.user_says(alice, ch, "while away");

    let mut gw = Gateway::connect(&d).await;
    gw.next().await.unwrap();
    gw.send(json!({"op": 6, "d": {"token": TOKEN, "session_id": session, "seq": last}}))
        .await;
    let replayed = gw.next().await.unwrap();
    assert_eq!(
        (replayed["t"].as_str(), replayed["d"]["id"].as_str()),
        (Some("MESSAGE_CREATE"), Some(missed.to_string().as_str()))
    );
    assert_eq!(replayed["s"], last + 1);
    assert_eq!(gw.next().await.unwrap()["t"], "RESUMED");

    // A RESUME of an unknown session is refused with op 9.
    let mut gw2 = Gateway::connect(&d).await;
    gw2.next().await.unwrap();
    gw2.send(json!({"op": 6, "d": {"token": TOKEN, "session_id": "nope", "seq": 1}}))
        .await;
    assert_eq!(
        gw2.next().await.unwrap(),
        json!({"op": 9, "d": false, "s": null, "t": null})
    );
}

#[tokio::test]
async fn interactions_need_registered_commands_and_one_response() {
    let d = DiscordDouble::start(TOKEN).await;
    let g = d.add_guild("g");
    let ch = d.add_text_channel(g, "general");
    let alice = d.add_user("alice");
    d.add_member(g, alice, &[]);
    let (mut gw, _) = Gateway::identify(&d, ALL).await;
    let commands = json!([
        {"name": "chat", "description": "Chat", "options": [{"name": "text", "description": "What to say", "type": 3, "required": true}]},
        {"name": "trigger", "description": "Triggers", "options": [
            {"name": "add", "description": "Add", "type": 1, "options": [{"name": "word", "description": "w", "type": 3, "required": true}]}]},
        {"name": "deny", "description": "Deny", "options": [
            {"name": "user", "description": "A user", "type": 1, "options": [{"name": "who", "description": "w", "type": 6, "required": true}]},
            {"name": "role", "description": "A role", "type": 1, "options": [{"name": "which", "description": "w", "type": 8, "required": true}]}]}
    ]);
    let (status, _, body) = call(
        reqwest::Method::PUT,
        api(
            &d,
            &format!("/applications/{}/commands", d.application_id()),
        ),
        Some(TOKEN),
        Some(commands),
    )
    .await;
    assert_eq!(status, 200);
    let _: Vec<serenity::model::application::Command> =
        serde_json::from_value(body).expect("Command list");

    let id = d.slash(alice, ch, &["chat"], json!({"text": "hello"}));
    let ev = gw.dispatch("INTERACTION_CREATE").await;
    assert_eq!(
        ev["d"]["data"]["options"][0],
        json!({"name": "text", "type": 3, "value": "hello"})
    );
    let token = ev["d"]["token"].as_str().unwrap().to_string();
    d.slash(alice, ch, &["trigger", "add"], json!({"word": "hey"}));
    let sub = gw.dispatch("INTERACTION_CREATE").await;
    assert_eq!(sub["d"]["data"]["options"][0]["options"][0]["value"], "hey");
    // User and role options come with `resolved` data.
    let role = d.add_role(g, "mods");
    d.slash(
        alice,
        ch,
        &["deny", "user"],
        json!({"who": alice.to_string()}),
    );
    let ev = gw.dispatch("INTERACTION_CREATE").await;
    assert_eq!(
        ev["d"]["data"]["resolved"]["users"][alice.to_string()]["username"],
        "alice"
    );
    d.slash(
        alice,
        ch,
        &["deny", "role"],
        json!({"which": role.to_string()}),
    );
    let ev = gw.dispatch("INTERACTION_CREATE").await;
    assert_eq!(
        ev["d"]["data"]["resolved"]["roles"][role.to_string()]["name"],
        "mods"
    );

    let cb = api(&d, &format!("/interactions/{id}/{token}/callback"));
    let (status, _, _) = call(
        reqwest::Method::POST,
        cb.clone(),
        None,
        Some(json!({"type": 5})),
    )
    .await;
    assert_eq!(status, 204);
    let (status, _, body) = call(reqwest::Method::POST, cb, None, Some(json!({"type": 5}))).await;
    assert_eq!((status, body["code"].as_u64()), (400, Some(40060)));
    let original = api(
        &d,
        &format!(
            "/webhooks/{}/{token}/messages/@original",
            d.application_id()
        ),
    );
    let (status, _, body) = call(reqwest::Method::PATCH, original, None, Some(json!({"content": "done",
        "components": [{"type": 1, "components": [{"type": 2, "style": 3, "label": "Approve", "custom_id": "approve:1"}]}]}))).await;
    assert_eq!(status, 200, "{body}");
    let msg: serenity::model::channel::Message = serde_json::from_value(body).expect("Message");
    assert_eq!(msg.content, "done");
    let (status, _, _) = call(
        reqwest::Method::POST,
        api(&d, &format!("/webhooks/{}/{token}", d.application_id())),
        None,
        Some(json!({"content": "more"})),
    )
    .await;
    assert_eq!(status, 200);

    // Buttons: only on the message that has them.
    let press = d.press_button(alice, msg.id.get(), "approve:1");
    let ev = gw.dispatch("INTERACTION_CREATE").await;
    assert_eq!(ev["d"]["data"]["custom_id"], "approve:1");
    let ptoken = ev["d"]["token"].as_str().unwrap();
    let (status, _, _) = call(
        reqwest::Method::POST,
        api(&d, &format!("/interactions/{press}/{ptoken}/callback")),
        None,
        Some(json!({"type": 7, "data": {"content": "approved", "components": []}})),
    )
    .await;
    assert_eq!(status, 204);
    d.with(|w| {
        assert_eq!(w.messages[&msg.id.get()].content, "approved");
        assert!(w.messages[&msg.id.get()].button_ids().is_empty());
    });
}

#[tokio::test]
async fn late_interaction_responses_are_refused() {
    let mut config = DoubleConfig::new(TOKEN);
    config.interaction_deadline = Duration::from_millis(50);
    let d = DiscordDouble::start_with(config).await;
    let g = d.add_guild("g");
    let ch = d.add_text_channel(g, "general");
    let alice = d.add_user("alice");
    let (mut gw, _) = Gateway::identify(&d, ALL).await;
    call(
        reqwest::Method::PUT,
        api(
            &d,
            &format!("/applications/{}/guilds/{g}/commands", d.application_id()),
        ),
        Some(TOKEN),
        Some(json!([{"name": "help", "description": "Help"}])),
    )
    .await;
    let id = d.slash(alice, ch, &["help"], json!({}));
    let token = gw.dispatch("INTERACTION_CREATE").await["d"]["token"]
        .as_str()
        .unwrap()
        .to_string();
    tokio::time::sleep(Duration::from_millis(120)).await;
    let (status, _, body) = call(
        reqwest::Method::POST,
        api(&d, &format!("/interactions/{id}/{token}/callback")),
        None,
        Some(json!({"type": 4, "data": {"content": "late"}})),
    )
    .await;
    assert_eq!((status, body["code"].as_u64()), (404, Some(10062)));
}

#[tokio::test]
async fn users_in_the_world_can_send_replies_without_ping() {
    let d = DiscordDouble::start(TOKEN).await;
    let g = d.add_guild("g");
    let ch = d.add_text_channel(g, "general");
    let alice = d.add_user("alice");
    let bob = d.add_user("bob");
    let first = d.user_says(alice, ch, "hello");
    let reply = d.send(
        UserMessage::new(bob, ch, "re")
            .reply_to(first)
            .without_ping(),
    );
    d.with(|w| assert!(w.messages[&reply].pinged_users.is_empty()));
    let pinging = d.user_replies(bob, ch, first, "re2");
    d.with(|w| assert_eq!(w.messages[&pinging].pinged_users, vec![alice]));
}
