//! The gateway half of the double: one WebSocket per connection, speaking Discord's gateway
//! protocol v10 in JSON (HELLO, IDENTIFY, READY, heartbeats, dispatches, RESUME, RECONNECT).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::world::{Identify, intents, snowflake};
use super::{Conn, Inner, Outbound, Session, Shared};

/// Intent bits Discord defines (0..=25); anything above is invalid.
const KNOWN_INTENTS: u64 = (1 << 26) - 1;

pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    Query(query): Query<HashMap<String, String>>,
    State(shared): State<Arc<Shared>>,
) -> Response {
    // Discord closes with 4012 for a missing or unsupported API version and 4002 for an encoding
    // it cannot speak; the client sees that only after the upgrade.
    let refusal = match (
        query.get("v").map(String::as_str),
        query.get("encoding").map(String::as_str),
    ) {
        (Some("10"), None | Some("json")) => None,
        (Some("10"), Some(_)) => Some((4002, "Error while decoding payload.")),
        _ => Some((4012, "Invalid API version")),
    };
    let refusal = refusal.or_else(|| {
        query
            .contains_key("compress")
            .then_some((4002, "Error while decoding payload."))
    });
    ws.on_upgrade(move |socket| connection(socket, shared, refusal))
}

async fn connection(
    mut socket: WebSocket,
    shared: Arc<Shared>,
    refusal: Option<(u16, &'static str)>,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (conn_id, interval) = shared.update(|i| {
        i.world.connections += 1;
        i.next_conn += 1;
        (i.next_conn, i.config.heartbeat_interval)
    });
    if let Some((code, reason)) = refusal {
        let _ = socket
            .send(WsMessage::Close(Some(CloseFrame {
                code,
                reason: reason.into(),
            })))
            .await;
        return;
    }
    let hello = json!({"op": 10, "d": {"heartbeat_interval": interval.as_millis() as u64}, "s": null, "t": null});
    if socket
        .send(WsMessage::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    let mut authenticated = false;
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(WsMessage::Close(frame))) => {
                    let code = frame.map_or(1005, |f| f.code);
                    shared.update(|i| i.world.client_closes.push(code));
                    break;
                }
                None | Some(Err(_)) => break,
                Some(Ok(WsMessage::Text(text))) => {
                    let result = shared.update(|i| on_frame(i, conn_id, &tx, text.as_str(), &mut authenticated));
                    if let Err((code, reason)) = result {
                        let _ = socket.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                        break;
                    }
                }
                Some(Ok(WsMessage::Binary(_))) => {
                    let frame = CloseFrame { code: 4002, reason: "Error while decoding payload.".into() };
                    let _ = socket.send(WsMessage::Close(Some(frame))).await;
                    break;
                }
                Some(Ok(_)) => {}
            },
            out = rx.recv() => match out {
                Some(Outbound::Text(text)) => {
                    if socket.send(WsMessage::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    let _ = socket.send(WsMessage::Close(Some(CloseFrame { code, reason: reason.into() }))).await;
                    break;
                }
                // Dropping the socket without a close frame: the client sees a network failure.
                Some(Outbound::Drop) | None => break,
            }
        }
    }
    shared.update(|i| {
        if let Some(s) = i.session.as_mut()
            && s.live.as_ref().is_some_and(|c| c.id == conn_id)
        {
            s.live = None;
            i.world.attached = false;
        }
    });
}

type Close = (u16, &'static str);

fn send(tx: &mpsc::UnboundedSender<Outbound>, frame: Value) {
    let _ = tx.send(Outbound::Text(frame.to_string()));
}

fn token_of(d: &Value) -> &str {
    let t = d["token"].as_str().unwrap_or("");
    t.strip_prefix("Bot ").unwrap_or(t)
}

fn on_frame(
    i: &mut Inner,
    conn_id: u64,
    tx: &mpsc::UnboundedSender<Outbound>,
    text: &str,
    authenticated: &mut bool,
) -> Result<(), Close> {
    let frame: Value =
        serde_json::from_str(text).map_err(|_| (4002, "Error while decoding payload."))?;
    let op = frame["op"]
        .as_u64()
        .ok_or((4002, "Error while decoding payload."))?;
    let d = &frame["d"];
    match op {
        1 => {
            i.world.heartbeats += 1;
            send(tx, json!({"op": 11, "d": null, "s": null, "t": null}));
        }
        2 => {
            if *authenticated {
                return Err((4005, "Already authenticated."));
            }
            let generation = i.current_token(token_of(d));
            let intents = d["intents"].as_u64().unwrap_or(0);
            i.world.identifies.push(Identify {
                intents,
                token_generation: generation,
                at: Instant::now(),
            });
            if generation.is_none() {
                return Err((4004, "Authentication failed."));
            }
            if d.get("intents").is_none() || intents & !KNOWN_INTENTS != 0 {
                return Err((4013, "Invalid intent(s)."));
            }
            if intents & intents::PRIVILEGED & !i.config.privileged_intents != 0 {
                return Err((4014, "Disallowed intent(s)."));
            }
            if let Some(shard) = d.get("shard").and_then(Value::as_array) {
                let (id, total) = (
                    shard.first().and_then(Value::as_u64),
                    shard.get(1).and_then(Value::as_u64),
                );
                if !matches!((id, total), (Some(a), Some(b)) if a < b) {
                    return Err((4010, "Invalid shard."));
                }
            }
            *authenticated = true;
            i.session = Some(Session {
                id: format!("{:032x}", snowflake()),
                seq: 0,
                intents,
                log: Default::default(),
                live: Some(Conn {
                    id: conn_id,
                    tx: tx.clone(),
                }),
            });
            i.world.attached = true;
            let ready = ready_json(i);
            i.dispatch("READY", ready);
            let guilds: Vec<Value> = i
                .world
                .guilds
                .values()
                .map(|g| i.world.guild_create_json(g))
                .collect();
            for g in guilds {
                i.dispatch("GUILD_CREATE", g);
            }
        }
        6 => {
            if *authenticated {
                return Err((4005, "Already authenticated."));
            }
            if i.current_token(token_of(d)).is_none() {
                return Err((4004, "Authentication failed."));
            }
            let session_id = d["session_id"].as_str().unwrap_or("");
            let client_seq = d["seq"].as_u64().unwrap_or(0);
            let redeliver = std::mem::take(&mut i.redeliver_on_resume) as usize;
            let Some(session) = i.session.as_mut().filter(|s| s.id == session_id) else {
                send(tx, json!({"op": 9, "d": false, "s": null, "t": null}));
                return Ok(());
            };
            *authenticated = true;
            // Detach any older connection, then replay what the client missed.
            session.live = Some(Conn {
                id: conn_id,
                tx: tx.clone(),
            });
            i.world.attached = true;
            let seen: Vec<&(u64, Value)> = session
                .log
                .iter()
                .filter(|(s, _)| *s <= client_seq)
                .collect();
            for (_, f) in seen.iter().skip(seen.len().saturating_sub(redeliver)) {
                send(tx, f.clone());
            }
            for (_, f) in session.log.iter().filter(|(s, _)| *s > client_seq) {
                send(tx, f.clone());
            }
            i.world.resumes += 1;
            i.dispatch("RESUMED", json!({}));
        }
        3 | 4 | 8 | 31 => {
            if !*authenticated {
                return Err((4003, "Not authenticated."));
            }
        }
        _ => return Err((4001, "Unknown opcode.")),
    }
    Ok(())
}

fn ready_json(i: &Inner) -> Value {
    let mut user = i
        .world
        .bot
        .as_ref()
        .map(|b| b.json())
        .unwrap_or(Value::Null);
    user["verified"] = json!(true);
    user["mfa_enabled"] = json!(false);
    user["flags"] = json!(0);
    user["email"] = Value::Null;
    let session = i.session.as_ref().map(|s| s.id.clone()).unwrap_or_default();
    json!({
        "v": 10,
        "user": user,
        "guilds": i.world.guilds.keys().map(|g| json!({"id": g.to_string(), "unavailable": true})).collect::<Vec<_>>(),
        "session_id": session,
        "resume_gateway_url": i.gateway_url,
        "shard": [0, 1],
        "application": {"id": i.world.application_id.to_string(), "flags": 0},
        "private_channels": [],
        "relationships": [],
        "presences": [],
        "guild_join_requests": [],
        "geo_ordered_rtc_regions": [],
        "session_type": "normal",
        "auth": {},
        "user_settings": {},
    })
}
