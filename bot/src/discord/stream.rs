//! A streamed reply: one message posted on the first tokens, then edited as tokens arrive, at the
//! pace Discord's rate-limit headers allow; split at 2000 characters without breaking code blocks;
//! a typing indicator while tools run; tool use shown as "🔧 server__tool" lines (optional); the
//! engine's notices (a cut reply, a model without tools or thinking) as footer lines.
//!
//! The model side ([`TurnObserver`]) only appends to a buffer; a pump task owns all Discord
//! traffic, so a slow or rate-limited Discord never slows the model down, and many tokens
//! arriving between two edits cost one edit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::approval::Approvals;
use super::rest::{DiscordRest, Paid, Posted, RestError, Spend, Target};
use super::split::{DISCORD_LIMIT, discord_len, split_message};
use crate::conversation::{Notice, TurnObserver};
use crate::mcp::ToolOutcome;

/// Room a split may take from a piece for the code fences it closes and reopens.
const FENCE_MARGIN: usize = 32;

/// Discord shows "typing…" for about 10 s after each typing request.
const TYPING_REFRESH: Duration = Duration::from_secs(8);

#[derive(Default)]
struct Buffer {
    text: String,
    finished: bool,
    /// The length of `text` in UTF-16 units, as Discord counts.
    units: usize,
    /// While the pump waits for its edit slot: the length from which the text may need a new
    /// piece (whose predecessor is then edited at once). Until then streamed text does not wake
    /// the pump: it takes the text as it is when its slot comes (issue 13: a wake-up per chunk).
    /// None: any change wakes it.
    wake_at: Option<usize>,
}

struct Shared {
    buffer: Mutex<Buffer>,
    changed: Notify,
    rest: Arc<DiscordRest>,
    target: Target,
    /// Channel for the typing indicator.
    channel: u64,
    tools_running: AtomicUsize,
    /// Told when no tool runs any more: ends the typing loop without polling.
    tools_idle: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Buffer> {
        self.buffer.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The task that posts and edits; it ends with the posted messages.
type Pump = JoinHandle<Result<Vec<Posted>, RestError>>;

/// Who may approve tool calls of this reply, and how.
pub struct Approver {
    pub approvals: Arc<Approvals>,
    pub user: u64,
}

/// One streamed reply; hand it to `Engine::turn` as the observer, then call [`StreamedReply::finish`].
pub struct StreamedReply {
    shared: Arc<Shared>,
    /// What the engine told besides the reply; shown as footer lines once the reply is done.
    notices: Mutex<Vec<String>>,
    pump: Mutex<Option<Pump>>,
    show_tool_calls: bool,
    approver: Option<Approver>,
}

impl StreamedReply {
    pub fn start(
        rest: Arc<DiscordRest>,
        target: Target,
        channel: u64,
        show_tool_calls: bool,
        approver: Option<Approver>,
    ) -> Self {
        let shared = Arc::new(Shared {
            buffer: Mutex::new(Buffer::default()),
            changed: Notify::new(),
            rest,
            target,
            channel,
            tools_running: AtomicUsize::new(0),
            tools_idle: Notify::new(),
        });
        let pump = tokio::spawn(pump(shared.clone()));
        Self {
            shared,
            notices: Mutex::new(Vec::new()),
            pump: Mutex::new(Some(pump)),
            show_tool_calls,
            approver,
        }
    }

    fn append(&self, f: impl FnOnce(&mut String)) {
        let wake = {
            let mut b = self.shared.lock();
            let before = b.text.len();
            f(&mut b.text);
            b.units += discord_len(b.text.get(before..).unwrap_or_default());
            b.wake_at.is_none_or(|at| b.units >= at)
        };
        if wake {
            self.shared.changed.notify_one();
        }
    }

    /// Ends the reply: `error` (a user-facing message) is appended when the turn failed. Waits
    /// until Discord shows the final text; returns the posted messages.
    pub async fn finish(&self, error: Option<&str>) -> Result<Vec<Posted>, RestError> {
        {
            let mut b = self.shared.lock();
            if let Some(e) = error {
                if !b.text.trim().is_empty() {
                    b.text.push_str("\n\n");
                }
                b.text.push_str(&format!("⚠️ {e}"));
            } else if b.text.trim().is_empty() {
                b.text
                    .push_str("(The model returned an empty reply. Try rephrasing.)");
            }
            // Discord's "-#" line: small grey text under the reply.
            for n in self
                .notices
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
            {
                b.text.push_str(&format!("\n\n-# ⚠️ {n}"));
            }
            b.finished = true;
        }
        self.shared.changed.notify_one();
        let handle = self.pump.lock().unwrap_or_else(|p| p.into_inner()).take();
        match handle {
            Some(h) => h.await.unwrap_or_else(|e| {
                Err(RestError::Network {
                    route: "stream",
                    reason: e.to_string(),
                })
            }),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for StreamedReply {
    fn drop(&mut self) {
        // A reply dropped without finish() (its task was cancelled): stop talking to Discord.
        if let Some(h) = self.pump.lock().unwrap_or_else(|p| p.into_inner()).take() {
            h.abort();
        }
        self.shared.tools_running.store(0, Ordering::Release);
        self.shared.tools_idle.notify_waiters();
    }
}

#[async_trait::async_trait]
impl TurnObserver for StreamedReply {
    async fn on_text(&self, delta: &str) {
        self.append(|t| t.push_str(delta));
    }

    async fn on_tool_call(&self, name: &str, _arguments: &Value) {
        if self.show_tool_calls {
            self.append(|t| {
                if !t.is_empty() && !t.ends_with('\n') {
                    t.push('\n');
                }
                t.push_str(&format!("🔧 {name}\n"));
            });
        }
        if self.shared.tools_running.fetch_add(1, Ordering::AcqRel) == 0 {
            tokio::spawn(typing(self.shared.clone()));
        }
    }

    async fn on_tool_result(&self, _name: &str, _outcome: &ToolOutcome) {
        let before =
            self.shared
                .tools_running
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        if before == Ok(1) {
            self.shared.tools_idle.notify_waiters();
        }
    }

    async fn on_notice(&self, notice: &Notice) {
        self.notices
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(notice.to_string());
    }

    async fn approve_tool(&self, name: &str, arguments: &Value) -> bool {
        match &self.approver {
            Some(a) => {
                a.approvals
                    .ask(
                        &self.shared.rest,
                        &self.shared.target,
                        a.user,
                        name,
                        arguments,
                    )
                    .await
            }
            None => false,
        }
    }
}

/// Keeps "typing…" up while any tool runs: one typing request at once (even for a tool that
/// ends quickly), then one every few seconds while tools still run.
async fn typing(shared: Arc<Shared>) {
    loop {
        if shared.lock().finished {
            return;
        }
        if let Err(e) = shared.rest.typing(shared.channel).await {
            tracing::debug!(error = %e, "typing indicator failed");
            return;
        }
        let refresh = tokio::time::sleep(TYPING_REFRESH);
        tokio::pin!(refresh);
        loop {
            let idle = shared.tools_idle.notified();
            tokio::pin!(idle);
            // Registered before the check, so an end of the tools in between is not missed.
            idle.as_mut().enable();
            if shared.tools_running.load(Ordering::Acquire) == 0 {
                return;
            }
            tokio::select! {
                () = &mut refresh => break,
                () = idle => {}
            }
        }
    }
}

/// Posts and edits until the buffer is finished and Discord shows all of it. Each request first
/// waits for its place in Discord's global budget and only then takes the text as it is by
/// then: under pressure a reply is edited less often, and one that completed before its first
/// POST was due goes out whole in that POST.
async fn pump(shared: Arc<Shared>) -> Result<Vec<Posted>, RestError> {
    let rest = shared.rest.clone();
    let mut posted: Vec<(Posted, String)> = Vec::new();
    let mut next_edit = Instant::now();
    let mut paid: Option<Paid> = None;
    // Interaction responses do not count toward the global limit.
    let counted = matches!(shared.target, Target::Channel { .. });
    loop {
        let notified = shared.changed.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let (text, finished, units) = {
            let mut b = shared.lock();
            b.wake_at = None;
            (b.text.clone(), b.finished, b.units)
        };
        if text.trim().is_empty() && !finished {
            notified.await;
            continue;
        }
        let pieces = split_message(&text, DISCORD_LIMIT);
        match next_step(&posted, &pieces, finished, Instant::now() >= next_edit) {
            Step::Done => return Ok(posted.into_iter().map(|(p, _)| p).collect()),
            Step::Post(i) | Step::Edit(i) if counted && paid.is_none() => {
                let spend = if i < posted.len() {
                    Spend::Edit
                } else {
                    Spend::First
                };
                paid = Some(rest.pay(spend).await);
            }
            Step::Post(i) => {
                let p = rest
                    .post(&shared.target, i == 0, &pieces[i], None, paid.take())
                    .await?;
                posted.push((p, pieces[i].clone()));
                next_edit =
                    Instant::now() + rest.spacing(&DiscordRest::edit_bucket(&shared.target, p));
            }
            Step::Edit(i) => {
                let p = posted[i].0;
                rest.edit(&shared.target, p, &pieces[i], None, paid.take())
                    .await?;
                posted[i].1 = pieces[i].clone();
                next_edit =
                    Instant::now() + rest.spacing(&DiscordRest::edit_bucket(&shared.target, p));
            }
            Step::Wait => {
                // The last piece waits for its edit slot; finishing, or text enough for a new
                // piece, ends the wait early. The margin covers the code fences a split adds.
                let room =
                    DISCORD_LIMIT.saturating_sub(pieces.last().map_or(0, |p| discord_len(p)));
                shared.lock().wake_at = Some(units + room.saturating_sub(FENCE_MARGIN));
                tokio::select! {
                    () = tokio::time::sleep_until(next_edit.into()) => {}
                    () = &mut notified => {}
                }
            }
            Step::Idle => notified.await,
        }
    }
}

/// What the pump does next.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// Post piece i (a new message).
    Post(usize),
    /// Edit piece i to its new text.
    Edit(usize),
    /// The last piece changed but its edit slot has not come.
    Wait,
    /// Discord shows everything so far; more text is coming.
    Idle,
    /// Discord shows the finished reply.
    Done,
}

/// The first piece Discord does not show as it is now. Finished pieces are edited at once; the
/// last one when its edit slot has come (or the reply is finished).
fn next_step(posted: &[(Posted, String)], pieces: &[String], finished: bool, slot: bool) -> Step {
    for (i, piece) in pieces.iter().enumerate() {
        let Some((_, shown)) = posted.get(i) else {
            return Step::Post(i);
        };
        if shown != piece {
            let last = i + 1 == pieces.len();
            return if !last || finished || slot {
                Step::Edit(i)
            } else {
                Step::Wait
            };
        }
    }
    if finished { Step::Done } else { Step::Idle }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(texts: &[&str]) -> Vec<(Posted, String)> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                (
                    Posted::Channel {
                        channel: 1,
                        id: i as u64,
                    },
                    t.to_string(),
                )
            })
            .collect()
    }

    fn pieces(texts: &[&str]) -> Vec<String> {
        texts.iter().map(|t| t.to_string()).collect()
    }

    #[test]
    fn steps_post_then_edit_at_the_pace_allowed() {
        assert_eq!(next_step(&[], &pieces(&["a"]), false, false), Step::Post(0));
        let one = shown(&["a"]);
        assert_eq!(next_step(&one, &pieces(&["a"]), false, false), Step::Idle);
        assert_eq!(next_step(&one, &pieces(&["a"]), true, false), Step::Done);
        assert_eq!(next_step(&one, &pieces(&["ab"]), false, false), Step::Wait);
        assert_eq!(
            next_step(&one, &pieces(&["ab"]), false, true),
            Step::Edit(0)
        );
        assert_eq!(
            next_step(&one, &pieces(&["ab"]), true, false),
            Step::Edit(0)
        );
        // A piece followed by another is final: its edit does not wait for the slot.
        assert_eq!(
            next_step(&one, &pieces(&["ab", "c"]), false, false),
            Step::Edit(0)
        );
        assert_eq!(
            next_step(&one, &pieces(&["a", "c"]), false, false),
            Step::Post(1)
        );
    }
}
