//! Fitting the prompt into the window: the system prompt and the current turn always go in (the
//! Over 450 lines: half of it is its unit tests (one per fitting and compaction case).
//! current turn's earlier tool results shortened when it alone is too big); earlier turns go in
//! while they fit `history_token_budget`. When they no longer fit, a compaction drops the oldest
//! turns down to half the budget at once, so that the next turns append to a stable prefix.
//! Token counts come from Ollama: each stored message carries an estimate calibrated by the
//! `prompt_eval_count` Ollama reported for the request it was part of.
//!
//! (Over 450 lines only because of its tests.)

use crate::llm::{ChatMessage, Role};
use crate::store::StoredMessage;

use super::group_turns;

#[derive(Clone, Copy)]
pub struct Budget {
    /// Prompt tokens that earlier turns may take.
    pub tokens: u32,
    /// Length to which tool results of earlier turns are shortened when over budget.
    pub old_tool_result_chars: usize,
    /// Latest earlier turns whose tool results stay in full while they fit.
    pub full_tool_result_turns: usize,
    /// Tokens per character for this model, as learned from Ollama's counts.
    pub tokens_per_char: f64,
}

/// Per-message overhead of the chat template (role markers), in tokens.
const MESSAGE_OVERHEAD: u32 = 4;

/// Tokens a message takes, from its characters and the model's learned ratio.
pub fn estimate_tokens(message: &ChatMessage, tokens_per_char: f64) -> u32 {
    tokens_for_chars(super::message_chars(message), tokens_per_char)
}

/// Tokens of a message of `chars` characters at `tokens_per_char`, template overhead included.
pub fn tokens_for_chars(chars: usize, tokens_per_char: f64) -> u32 {
    let tokens = (chars as f64 * tokens_per_char).ceil();
    MESSAGE_OVERHEAD
        + if tokens >= f64::from(u32::MAX) {
            u32::MAX - MESSAGE_OVERHEAD
        } else {
            tokens as u32
        }
}

/// Where reading history (newest first) can stop: after the turn whose smallest possible cost
/// takes the running total past the budget, since the trimmer would drop it and every older
/// turn. A turn's smallest cost has its tool results shortened and its tokens counted at half
/// today's ratio (the ratio drifts as Ollama's counts come in, never by half within a turn).
#[derive(Clone)]
pub struct HistoryCut {
    limit: u64,
    spent: u64,
    old_tool_result_chars: usize,
    floor_ratio: f64,
}

impl HistoryCut {
    pub fn new(budget: &Budget) -> Self {
        Self {
            limit: u64::from(budget.tokens),
            spent: 0,
            old_tool_result_chars: budget.old_tool_result_chars,
            floor_ratio: budget.tokens_per_char / 2.0,
        }
    }

    /// Counts one whole turn; false once no older turn can reach the prompt.
    pub fn more_needed<'a>(&mut self, turn: impl IntoIterator<Item = &'a StoredMessage>) -> bool {
        self.spent += turn
            .into_iter()
            .map(|m| u64::from(self.floor_tokens(m)))
            .sum::<u64>();
        self.spent <= self.limit
    }

    fn floor_tokens(&self, m: &StoredMessage) -> u32 {
        let chars = super::message_chars(&m.message);
        // A shortened result keeps at least `old_tool_result_chars` bytes, plus a note.
        let chars = if m.message.role == Role::Tool {
            chars.min(self.old_tool_result_chars)
        } else {
            chars
        };
        tokens_for_chars(chars, self.floor_ratio).min(m.tokens)
    }
}

/// A tool result cut to `max` characters (at a char boundary), saying so.
pub fn shorten(content: &str, max: usize) -> Option<String> {
    if content.chars().count() <= max {
        return None;
    }
    let cut: String = content.chars().take(max).collect();
    Some(format!(
        "{cut}… [earlier tool result shortened from {} characters]",
        content.chars().count()
    ))
}

/// Share of the budget history is cut down to by a compaction: the rest is room for the next
/// turns to append without moving the prompt's start.
const COMPACT_TO: f64 = 0.5;

/// Earlier turns, oldest first, with the tool results of all but the latest few shortened
/// (whatever the budget, so that a turn's text changes at most once, when it stops being recent).
fn kept_turns(history: &[StoredMessage], budget: &Budget) -> Vec<Kept> {
    let mut kept: Vec<Kept> = group_turns(history)
        .iter()
        .map(|t| Kept {
            turn: t.first().map_or(0, |m| m.turn),
            messages: t.iter().map(|m| m.message.clone()).collect(),
            tokens: t.iter().map(|m| m.tokens).sum(),
            shortened: false,
        })
        .collect();
    let recent = kept.len().saturating_sub(budget.full_tool_result_turns);
    for k in kept.iter_mut().take(recent) {
        k.shorten(budget);
    }
    kept
}

fn total(kept: &[Kept]) -> u64 {
    kept.iter().map(|k| u64::from(k.tokens)).sum()
}

/// The messages to send and the first turn of history they hold: the system prompt, earlier
/// turns from `start` on, then this turn's messages. When the turns from `start` no longer fit
/// the budget, a compaction moves `start` forward at once until the rest takes at most half of
/// it (past every turn when not even the latest fits that).
pub fn compose(
    system: &str,
    history: &[StoredMessage],
    start: i64,
    current: &[ChatMessage],
    budget: &Budget,
) -> (Vec<ChatMessage>, i64) {
    let from = history.partition_point(|m| m.turn < start);
    let mut kept = kept_turns(&history[from..], budget);
    let mut start = start;
    if total(&kept) > u64::from(budget.tokens) {
        let target = (f64::from(budget.tokens) * COMPACT_TO) as u64;
        let mut left = total(&kept);
        let mut drop = 0;
        while drop < kept.len() && left > target {
            left -= u64::from(kept[drop].tokens);
            drop += 1;
        }
        start = kept
            .get(drop)
            .map_or_else(|| history.last().map_or(start, |m| m.turn + 1), |k| k.turn);
        kept.drain(..drop);
    }
    (assemble(system, kept, current, budget), start)
}

/// Fits this turn's messages into `room` tokens: when they do not fit, tool results of earlier
/// rounds are shortened first, then those of the latest round share what is left. Returns the
/// tokens they take, or `Err(tokens)` when even the user's message does not fit.
pub fn fit_current(
    current: &mut [ChatMessage],
    room: u32,
    tokens_per_char: f64,
    old_tool_result_chars: usize,
) -> Result<u32, u32> {
    let count = |c: &[ChatMessage]| -> u32 {
        c.iter()
            .map(|m| estimate_tokens(m, tokens_per_char))
            .fold(0u32, u32::saturating_add)
    };
    let tokens = count(current);
    if tokens <= room {
        return Ok(tokens);
    }
    // The latest round's results: the tool messages after the last assistant message.
    let last_assistant = current
        .iter()
        .rposition(|m| m.role == Role::Assistant)
        .unwrap_or(0);
    for i in 0..last_assistant {
        if current[i].role != Role::Tool {
            continue;
        }
        if let Some(short) = shorten(&current[i].content, old_tool_result_chars) {
            current[i].content = short;
        }
        let tokens = count(current);
        if tokens <= room {
            return Ok(tokens);
        }
    }
    let latest: Vec<usize> = (last_assistant..current.len())
        .filter(|&i| current[i].role == Role::Tool)
        .collect();
    if !latest.is_empty() {
        let others: u32 = current
            .iter()
            .enumerate()
            .filter(|(i, _)| !latest.contains(i))
            .map(|(_, m)| estimate_tokens(m, tokens_per_char))
            .fold(0u32, u32::saturating_add);
        let per_result = room.saturating_sub(others) / u32::try_from(latest.len()).unwrap_or(1);
        // Characters that fit, less room for the template and the note saying it was cut.
        let chars = (f64::from(per_result.saturating_sub(MESSAGE_OVERHEAD + 24)) / tokens_per_char)
            as usize;
        for i in latest {
            if let Some(short) = shorten(&current[i].content, chars.max(1)) {
                current[i].content = short;
            }
        }
    }
    let tokens = count(current);
    if tokens <= room {
        Ok(tokens)
    } else {
        Err(current
            .first()
            .map_or(tokens, |m| estimate_tokens(m, tokens_per_char)))
    }
}

/// The messages to send: system, the history that fits, then this turn's messages.
pub fn build_prompt(
    system: &str,
    history: &[StoredMessage],
    current: &[ChatMessage],
    budget: &Budget,
) -> Vec<ChatMessage> {
    assemble(system, kept_turns(history, budget), current, budget)
}

/// The prompt from earlier turns as kept: over budget, their tool results are shortened, then
/// the oldest turns dropped until the rest fits.
fn assemble(
    system: &str,
    mut kept: Vec<Kept>,
    current: &[ChatMessage],
    budget: &Budget,
) -> Vec<ChatMessage> {
    let limit = u64::from(budget.tokens);
    if total(&kept) > limit {
        // Then, when over budget: those of every turn but the latest.
        let last = kept.len().saturating_sub(1);
        for k in kept.iter_mut().take(last) {
            k.shorten(budget);
        }
    }
    // Then drop the oldest turns until the rest fits.
    let mut start = 0;
    while start < kept.len() && total(&kept[start..]) > limit {
        if start + 1 == kept.len() {
            // The latest turn alone is too big: shorten its tool results before giving it up.
            let k = &mut kept[start];
            k.shorten(budget);
            if u64::from(k.tokens) <= limit {
                break;
            }
        }
        start += 1;
    }

    let mut out = Vec::with_capacity(
        1 + kept[start..]
            .iter()
            .map(|k| k.messages.len())
            .sum::<usize>()
            + current.len(),
    );
    if !system.trim().is_empty() {
        out.push(ChatMessage::system(system));
    }
    for k in kept.drain(start..) {
        out.extend(k.messages);
    }
    out.extend(current.iter().cloned());
    out
}

/// An earlier turn on its way into the prompt.
struct Kept {
    turn: i64,
    messages: Vec<ChatMessage>,
    tokens: u32,
    shortened: bool,
}

impl Kept {
    /// Shortens the turn's tool results (once) and counts its tokens again.
    fn shorten(&mut self, budget: &Budget) {
        if self.shortened {
            return;
        }
        self.shortened = true;
        for m in self.messages.iter_mut().filter(|m| m.role == Role::Tool) {
            if let Some(short) = shorten(&m.content, budget.old_tool_result_chars) {
                m.content = short;
            }
        }
        self.tokens = self
            .messages
            .iter()
            .map(|m| estimate_tokens(m, budget.tokens_per_char))
            .sum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::ToolCall;

    fn stored(turn: i64, message: ChatMessage) -> StoredMessage {
        let tokens = estimate_tokens(&message, 0.25);
        StoredMessage {
            turn,
            message,
            tokens,
        }
    }

    fn budget(tokens: u32) -> Budget {
        Budget {
            tokens,
            old_tool_result_chars: 20,
            full_tool_result_turns: usize::MAX,
            tokens_per_char: 0.25,
        }
    }

    fn plain_turn(turn: i64, text: &str) -> Vec<StoredMessage> {
        vec![
            stored(turn, ChatMessage::user(text)),
            stored(turn, ChatMessage::assistant(format!("re: {text}"))),
        ]
    }

    fn tool_turn(turn: i64, result: &str) -> Vec<StoredMessage> {
        let mut call = ChatMessage::assistant("");
        call.tool_calls.push(ToolCall::new(
            "fetch__fetch",
            serde_json::json!({"url": "http://x"}),
        ));
        vec![
            stored(turn, ChatMessage::user("fetch it")),
            stored(turn, call),
            stored(turn, ChatMessage::tool("fetch__fetch", result)),
            stored(turn, ChatMessage::assistant("done")),
        ]
    }

    /// What the engine does: read newest first until the cut says stop.
    fn bounded(history: &[StoredMessage], budget: &Budget) -> Vec<StoredMessage> {
        let mut cut = HistoryCut::new(budget);
        let mut turns: Vec<&[StoredMessage]> = super::group_turns(history);
        turns.reverse();
        let mut read = Vec::new();
        for turn in turns {
            read.push(turn);
            if !cut.more_needed(turn) {
                break;
            }
        }
        read.reverse();
        read.into_iter().flatten().cloned().collect()
    }

    #[test]
    fn bounded_read_builds_the_same_prompt_as_the_whole_history() {
        let mut history = Vec::new();
        for t in 1..=200 {
            if t % 3 == 0 {
                history.extend(tool_turn(t, &"result ".repeat(t as usize * 7)));
            } else {
                history.extend(plain_turn(
                    t,
                    &format!("turn {t} {}", "y".repeat(t as usize)),
                ));
            }
        }
        let now = [ChatMessage::user("now")];
        for (tokens, full_turns) in [0, 10, 100, 1_000, 6_000, 50_000, 1_000_000]
            .into_iter()
            .flat_map(|t| [(t, usize::MAX), (t, 2), (t, 0)])
        {
            let b = Budget {
                full_tool_result_turns: full_turns,
                ..budget(tokens)
            };
            let read = bounded(&history, &b);
            assert_eq!(
                build_prompt("sys", &read, &now, &b),
                build_prompt("sys", &history, &now, &b),
                "budget {tokens}, {full_turns} turns with full results"
            );
            if tokens <= 1_000 {
                assert!(
                    read.len() < history.len() / 2,
                    "budget {tokens}: read {}",
                    read.len()
                );
            }
        }
    }

    #[test]
    fn tool_results_of_older_turns_are_shortened_even_within_budget() {
        let long = "x".repeat(200);
        let history: Vec<_> = [
            tool_turn(1, &long),
            tool_turn(2, &long),
            plain_turn(3, "hi"),
        ]
        .concat();
        let b = Budget {
            full_tool_result_turns: 2,
            ..budget(1_000_000)
        };
        let out = build_prompt("sys", &history, &[ChatMessage::user("now")], &b);
        let results: Vec<&str> = out
            .iter()
            .filter(|m| m.role == Role::Tool)
            .map(|m| m.content.as_str())
            .collect();
        assert_eq!(results.len(), 2);
        assert!(
            results[0].ends_with("[earlier tool result shortened from 200 characters]"),
            "turn 1 is older than the latest two: {}",
            results[0]
        );
        assert_eq!(results[1], long, "turn 2 is one of the latest two");
        // Over budget as well: shortened once, not twice.
        let tight = Budget {
            full_tool_result_turns: 0,
            ..budget(90)
        };
        let out = build_prompt("sys", &history, &[ChatMessage::user("now")], &tight);
        for m in out.iter().filter(|m| m.role == Role::Tool) {
            assert_eq!(
                m.content.matches("shortened from").count(),
                1,
                "{}",
                m.content
            );
        }
    }

    #[test]
    fn everything_fits_unchanged() {
        let history: Vec<_> = (1..=3).flat_map(|t| plain_turn(t, "hello")).collect();
        let out = build_prompt(
            "sys",
            &history,
            &[ChatMessage::user("now")],
            &budget(10_000),
        );
        assert_eq!(out.len(), 1 + 6 + 1);
        assert_eq!(out[0].role, Role::System);
        assert_eq!(out.last().map(|m| m.content.as_str()), Some("now"));
    }

    #[test]
    fn oldest_turns_dropped_first_and_turns_stay_whole() {
        let history: Vec<_> = (1..=10)
            .flat_map(|t| plain_turn(t, &format!("message number {t:02} {}", "x".repeat(80))))
            .collect();
        let per_turn: u32 = history[..2].iter().map(|m| m.tokens).sum();
        let out = build_prompt(
            "sys",
            &history,
            &[ChatMessage::user("now")],
            &budget(per_turn * 3),
        );
        let users: Vec<_> = out
            .iter()
            .filter(|m| m.role == Role::User)
            .map(|m| m.content.clone())
            .collect();
        assert_eq!(
            users.len(),
            4,
            "three whole turns kept plus the current message"
        );
        assert!(users[0].starts_with("message number 08"));
        assert_eq!(users[3], "now");
        // Every kept user message is followed by its reply: no turn is cut in half.
        assert_eq!(out.iter().filter(|m| m.role == Role::Assistant).count(), 3);
    }

    #[test]
    fn old_tool_results_are_shortened_before_turns_are_dropped() {
        let big = "y".repeat(4000);
        let mut history = tool_turn(1, &big);
        history.extend(tool_turn(2, &big));
        let latest_turn_tokens: u32 = history[4..].iter().map(|m| m.tokens).sum();
        let out = build_prompt(
            "",
            &history,
            &[ChatMessage::user("now")],
            &budget(latest_turn_tokens + 100),
        );
        let tools: Vec<_> = out.iter().filter(|m| m.role == Role::Tool).collect();
        assert_eq!(tools.len(), 2, "both turns kept");
        assert!(
            tools[0].content.contains("shortened from 4000 characters"),
            "older result shortened"
        );
        assert_eq!(
            tools[1].content, big,
            "the latest turn's result stays whole"
        );
    }

    #[test]
    fn current_turn_is_never_trimmed() {
        let current = vec![
            ChatMessage::user("q"),
            ChatMessage::tool("a__b", "z".repeat(50_000)),
        ];
        let out = build_prompt("sys", &plain_turn(1, "old"), &current, &budget(256));
        assert_eq!(out.last().map(|m| m.content.len()), Some(50_000));
    }

    #[test]
    fn oversized_single_turn_is_dropped_when_shortening_is_not_enough() {
        let history = plain_turn(1, &"w".repeat(20_000));
        let out = build_prompt("sys", &history, &[ChatMessage::user("now")], &budget(256));
        assert_eq!(out.len(), 2);
    }

    #[test]
    fn a_compaction_halves_history_once_then_turns_append() {
        let turn = |t: i64| plain_turn(t, &format!("message {t:02} {}", "x".repeat(80)));
        let per_turn: u32 = turn(1).iter().map(|m| m.tokens).sum();
        let b = budget(per_turn * 6);
        let now = [ChatMessage::user("now")];
        let mut history: Vec<StoredMessage> = (1..=6).flat_map(turn).collect();
        let (first, start) = compose("sys", &history, i64::MIN, &now, &b);
        assert_eq!(
            (first.len(), start),
            (1 + 12 + 1, i64::MIN),
            "six turns fit"
        );
        history.extend(turn(7));
        let (second, start) = compose("sys", &history, start, &now, &b);
        assert_eq!(start, 5, "down to half the budget: turns 5 to 7");
        assert_eq!(second.len(), 1 + 6 + 1);
        // The next turns append to that prefix until the budget is full again.
        let mut previous = second;
        for t in 8..=10 {
            history.extend(turn(t));
            let (next, s) = compose("sys", &history, start, &now, &b);
            assert_eq!(s, start, "turn {t}: no compaction");
            assert!(
                next.starts_with(&previous[..previous.len() - 1]),
                "turn {t}"
            );
            previous = next;
        }
    }

    #[test]
    fn estimates_use_the_learned_ratio() {
        let m = ChatMessage::user("a".repeat(400));
        assert_eq!(estimate_tokens(&m, 0.25), 104);
        assert_eq!(estimate_tokens(&m, 0.5), 204);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use crate::llm::ToolCall;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the current turn holds, it is fitted into the room (counted again after
        /// fitting) or refused; the user's message is never changed, and a turn that fits is
        /// left as it is.
        #[test]
        fn the_current_turn_fits_or_is_refused(
            user in 1usize..4000,
            rounds in prop::collection::vec(prop::collection::vec(0usize..20_000, 1..4), 0..6),
            room in 0u32..4000,
            tokens_per_char in 0.1f64..1.0,
        ) {
            let mut current = vec![ChatMessage::user("u".repeat(user))];
            for results in &rounds {
                let mut call = ChatMessage::assistant("");
                call.tool_calls = results
                    .iter()
                    .map(|_| ToolCall::new("kv__get", serde_json::json!({"key": "k"})))
                    .collect();
                current.push(call);
                for &chars in results {
                    current.push(ChatMessage::tool("kv__get", "r".repeat(chars)));
                }
            }
            let before = current.clone();
            let count = |c: &[ChatMessage]| -> u32 {
                c.iter().map(|m| estimate_tokens(m, tokens_per_char)).sum()
            };
            match fit_current(&mut current, room, tokens_per_char, 400) {
                Ok(tokens) => {
                    prop_assert_eq!(tokens, count(&current));
                    prop_assert!(tokens <= room);
                    if count(&before) <= room {
                        prop_assert_eq!(&current, &before);
                    }
                }
                Err(_) => prop_assert!(count(&before) > room),
            }
            prop_assert_eq!(&current[0], &before[0]);
        }
    }
}
