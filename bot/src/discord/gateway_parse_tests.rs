//! The patched serenity parses message events straight from the gateway's text
//! (`vendor/serenity/PATCHES.md`): it must give what serenity's general path gives, and take
//! the payloads Discord sends (else every message silently pays for the slow path again).

use poise::serenity_prelude as serenity;
use serenity::gateway::parse_message_event;
use serenity::model::event::GatewayEvent;

/// A guild message as Discord sends it (docs: Message Create), replying to another message and
/// mentioning the bot, with member, attachment, embed and flags.
const MESSAGE_CREATE: &str = r#"{"t":"MESSAGE_CREATE","s":42,"op":0,"d":{
  "type":19,"tts":false,"timestamp":"2026-12-07T05:00:00.000000+00:00","pinned":false,
  "nonce":"1313131313","mentions":[{"username":"bot","public_flags":0,"id":"900","global_name":null,
  "discriminator":"0","bot":true,"avatar":null,"member":{"roles":[],"joined_at":"2026-01-01T00:00:00.000000+00:00","deaf":false,"mute":false,"flags":0}}],
  "mention_roles":["77"],"mention_everyone":false,
  "member":{"roles":["77","78"],"premium_since":null,"pending":false,"nick":"Ann","mute":false,
    "joined_at":"2026-01-02T00:00:00.000000+00:00","flags":0,"deaf":false,"communication_disabled_until":null,"avatar":null},
  "id":"1200","flags":0,"embeds":[{"type":"rich","title":"t","description":"d \u00e9\"q\""}],
  "edited_timestamp":null,"content":"<@900> what is \"this\"? \u00e9 \ud83d\ude00",
  "components":[],"channel_id":"300","author":{"username":"ann","public_flags":0,"id":"500",
    "global_name":"Ann","discriminator":"0","avatar":null},
  "attachments":[{"id":"1","filename":"a.txt","size":3,"url":"https://cdn.example/a.txt","proxy_url":"https://cdn.example/a.txt"}],
  "guild_id":"100",
  "message_reference":{"type":0,"channel_id":"300","message_id":"1100","guild_id":"100"},
  "referenced_message":{"type":0,"tts":false,"timestamp":"2026-12-07T04:59:00.000000+00:00",
    "pinned":false,"mentions":[],"mention_roles":[],"mention_everyone":false,"id":"1100","flags":0,
    "embeds":[],"edited_timestamp":null,"content":"earlier","components":[],"channel_id":"300",
    "author":{"username":"bot","id":"900","discriminator":"0","avatar":null,"bot":true},"attachments":[]}
}}"#;

/// An edit of the bot's own reply, as Discord sends it to the bot.
const MESSAGE_UPDATE: &str = r#"{"op":0,"s":43,"t":"MESSAGE_UPDATE","d":{
  "type":0,"tts":false,"timestamp":"2026-12-07T05:00:01.000000+00:00","pinned":false,
  "mentions":[],"mention_roles":[],"mention_everyone":false,"id":"1201","flags":0,"embeds":[],
  "edited_timestamp":"2026-12-07T05:00:02.000000+00:00","content":"the answer, so far",
  "components":[],"channel_id":"300","guild_id":"100",
  "author":{"username":"bot","id":"900","discriminator":"0","avatar":null,"bot":true},
  "attachments":[]
}}"#;

fn general(text: &str) -> GatewayEvent {
    serenity::json::from_str(text).expect("serenity's own parse")
}

#[test]
fn message_events_parse_straight_and_the_same() {
    for (name, text) in [
        ("MESSAGE_CREATE", MESSAGE_CREATE),
        ("MESSAGE_UPDATE", MESSAGE_UPDATE),
    ] {
        let fast = parse_message_event(text)
            .unwrap_or_else(|| panic!("{name}: the fast path did not take it"));
        assert_eq!(
            format!("{fast:?}"),
            format!("{:?}", general(text)),
            "{name}: fast and general parse differ"
        );
    }
    let GatewayEvent::Dispatch(42, serenity::Event::MessageCreate(m)) =
        parse_message_event(MESSAGE_CREATE).expect("parsed")
    else {
        panic!("not a message creation");
    };
    assert_eq!(m.message.content, "<@900> what is \"this\"? é 😀");
    assert_eq!(
        m.message.referenced_message.map(|r| r.content),
        Some("earlier".into())
    );
}

#[test]
fn other_events_and_bad_payloads_take_the_general_path() {
    for text in [
        // Other events and opcodes.
        r#"{"t":"TYPING_START","s":1,"op":0,"d":{"channel_id":"300","user_id":"500","timestamp":1}}"#,
        r#"{"t":null,"s":null,"op":11,"d":null}"#,
        r#"{"t":null,"s":null,"op":10,"d":{"heartbeat_interval":41250}}"#,
        // A message event that does not parse: left to the general path, which reports it.
        r#"{"t":"MESSAGE_CREATE","s":2,"op":0,"d":{"id":"x"}}"#,
        "not json",
    ] {
        assert!(parse_message_event(text).is_none(), "{text}");
    }
}
