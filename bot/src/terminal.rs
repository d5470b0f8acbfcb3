//! `ollama-mcp-bot chat`: the engine in a terminal.
//!
//! Replies go to stdout, everything else (prompts, tool traces, errors, logs) to stderr, so that
//! `echo question | ollama-mcp-bot chat > answer.txt` captures exactly the answers. On a terminal
//! replies stream as they are generated; from a pipe each line is one message and each complete
//! reply is one block of output followed by a newline.
#![allow(clippy::print_stdout, clippy::print_stderr)] // this module's job is talking to the terminal

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines, Stdin};

use crate::conversation::{Engine, Notice, TurnObserver, TurnRequest};
use crate::mcp::{McpHub, ServerState, ToolOutcome};

pub struct ChatOptions {
    pub session: String,
    pub model: Option<String>,
    /// Run tools that need approval without asking (`--approve-all`).
    pub approve_all: bool,
}

/// How long a tool approval question waits for an answer before it counts as "no".
const APPROVAL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Standard input, shared by the prompt loop and approval questions (one reader at a time). An
/// async mutex on purpose: the reader itself is awaited while held, and the prompt loop never
/// reads while a turn (and so a question) runs.
type Input = Arc<tokio::sync::Mutex<Lines<BufReader<Stdin>>>>;

/// Prints tool traces to stderr and, on a terminal, streams text to stdout.
struct TerminalObserver {
    stream: bool,
    wrote_text: AtomicBool,
    approve_all: bool,
    input: Input,
}

#[async_trait::async_trait]
impl TurnObserver for TerminalObserver {
    async fn on_text(&self, delta: &str) {
        if self.stream {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(delta.as_bytes());
            let _ = out.flush();
            self.wrote_text.store(true, Ordering::Relaxed);
        }
    }

    async fn on_tool_call(&self, name: &str, arguments: &Value) {
        let args = shorten(&arguments.to_string());
        if self.wrote_text.swap(false, Ordering::Relaxed) {
            println!();
        }
        eprintln!("🔧 {name} {args}");
    }

    async fn on_notice(&self, notice: &Notice) {
        if self.wrote_text.swap(false, Ordering::Relaxed) {
            println!();
        }
        eprintln!("note: {notice}");
    }

    async fn on_tool_result(&self, name: &str, outcome: &ToolOutcome) {
        let ms = outcome.duration.as_millis();
        if outcome.is_error() {
            let first = outcome.content.lines().next().unwrap_or("");
            eprintln!("   ✗ {name} ({}, {ms} ms): {first}", outcome.kind.as_str());
        } else {
            eprintln!(
                "   ✓ {name} ({ms} ms, {} chars)",
                outcome.content.chars().count()
            );
        }
    }

    /// `tools.require_approval`: asked on a terminal, refused from a pipe unless --approve-all.
    async fn approve_tool(&self, name: &str, arguments: &Value) -> bool {
        if self.approve_all {
            return true;
        }
        if !self.stream {
            eprintln!(
                "refused {name}: it needs approval (tools.require_approval) and standard input is not a terminal; pass --approve-all to allow such tools"
            );
            return false;
        }
        // Calls of one round run concurrently: the lock asks one question at a time.
        let mut input = self.input.lock().await;
        if self.wrote_text.swap(false, Ordering::Relaxed) {
            println!();
        }
        eprint!("run {name} {}? [y/N] ", shorten(&arguments.to_string()));
        match tokio::time::timeout(APPROVAL_TIMEOUT, input.next_line()).await {
            Ok(Ok(Some(answer))) => {
                matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
            }
            Ok(_) => false,
            Err(_) => {
                eprintln!(
                    "\nno answer within {} s: refused",
                    APPROVAL_TIMEOUT.as_secs()
                );
                false
            }
        }
    }
}

fn shorten(text: &str) -> String {
    if text.chars().count() > 200 {
        format!("{}…", text.chars().take(200).collect::<String>())
    } else {
        text.to_string()
    }
}

/// Runs the chat until end of input. Returns whether every turn succeeded.
pub async fn run(engine: Engine, hub: Arc<McpHub>, options: ChatOptions) -> bool {
    let interactive = std::io::stdin().is_terminal();
    let mut model = options.model.clone();
    if interactive {
        let m = match &model {
            Some(m) => m.clone(),
            None => engine
                .session_model(&options.session, None)
                .await
                .unwrap_or_default(),
        };
        eprintln!(
            "ollama-mcp chat · model {m} · session {} · {} tools · /help for commands, Ctrl-D to quit",
            options.session,
            engine.tools().tools().len()
        );
        warn_about_model(&engine, &options.session, &m).await;
    }
    let input: Input = Arc::new(tokio::sync::Mutex::new(
        BufReader::new(tokio::io::stdin()).lines(),
    ));
    let mut all_ok = true;
    loop {
        if interactive {
            eprint!("you> ");
        }
        let next = input.lock().await.next_line().await;
        let line = match next {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                eprintln!("error: reading standard input: {e}");
                all_ok = false;
                break;
            }
        };
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        if let Some(command) = text.strip_prefix('/') {
            match slash_command(command, &engine, &hub, &options.session, &mut model).await {
                Ok(Flow::Quit) => break,
                Ok(Flow::Continue) => {}
                Err(message) => {
                    eprintln!("error: {message}");
                    all_ok = false;
                }
            }
            continue;
        }
        let observer = TerminalObserver {
            stream: interactive,
            wrote_text: AtomicBool::new(false),
            approve_all: options.approve_all,
            input: input.clone(),
        };
        let request = TurnRequest {
            model_override: model.clone(),
            ..TurnRequest::new(options.session.clone(), text)
        };
        match engine.turn(request, &observer).await {
            Ok(result) => {
                if interactive {
                    println!();
                } else {
                    println!("{}", result.reply);
                }
                let _ = std::io::stdout().flush();
            }
            Err(e) => {
                if observer.wrote_text.load(Ordering::Relaxed) {
                    println!();
                }
                eprintln!("error: {e}");
                all_ok = false;
            }
        }
    }
    all_ok
}

/// Says up front when the model is missing, cannot use tools or cannot think, rather than at
/// the first message (the engine then does not say it again).
async fn warn_about_model(engine: &Engine, session: &str, model: &str) {
    let check = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        engine.model_profile(model).await?;
        Ok::<_, crate::conversation::TurnError>(engine.model_notices(session, model).await)
    })
    .await;
    match check {
        Ok(Ok(notices)) => notices.iter().for_each(|n| eprintln!("note: {n}")),
        Ok(Err(e)) => eprintln!("warning: {e}"),
        Err(_) => eprintln!("warning: Ollama did not answer /api/show within 5 s"),
    }
}

enum Flow {
    Continue,
    Quit,
}

async fn slash_command(
    command: &str,
    engine: &Engine,
    hub: &McpHub,
    session: &str,
    model: &mut Option<String>,
) -> Result<Flow, String> {
    let (name, arg) = command
        .split_once(' ')
        .map_or((command, ""), |(n, a)| (n, a.trim()));
    match name {
        "quit" | "exit" => return Ok(Flow::Quit),
        "help" => eprintln!(
            "/model [NAME]  show or switch the model (remembered for this session)\n/models        models you can switch to\n/tools         MCP servers and their tools\n/reset         forget this session's history\n/forget        delete everything of this session (history, model choice)\n/quit          leave"
        ),
        "reset" => {
            engine.reset(session).await.map_err(|e| e.to_string())?;
            eprintln!("session {session} forgotten");
        }
        "forget" => {
            let n = engine
                .store()
                .forget_session(session)
                .await
                .map_err(|e| e.to_string())?;
            *model = None;
            eprintln!("session {session} deleted ({n} messages)");
        }
        "models" => {
            let models = engine.available_models().await.map_err(|e| e.to_string())?;
            eprintln!("{}", models.join("\n"));
        }
        "model" if arg.is_empty() => {
            let current = match model {
                Some(m) => m.clone(),
                None => engine
                    .session_model(session, None)
                    .await
                    .map_err(|e| e.to_string())?,
            };
            eprintln!("model: {current}");
        }
        "model" => {
            engine
                .set_session_model(session, arg)
                .await
                .map_err(|e| e.to_string())?;
            *model = None; // the session's stored choice now applies
            eprintln!("model: {arg}");
        }
        "tools" => {
            for s in hub.status() {
                let state = match &s.state {
                    ServerState::Ready => "ready".to_string(),
                    ServerState::Starting => "starting".to_string(),
                    ServerState::Restarting { attempt, reason } => {
                        format!("restarting (attempt {attempt}): {reason}")
                    }
                    ServerState::Failed { reason } => format!("failed: {reason}"),
                };
                eprintln!("{} [{}] {state}", s.name, s.transport);
                for t in &s.tools {
                    eprintln!("  {}", crate::mcp::namespaced(&s.name, t));
                }
            }
        }
        other => {
            return Err(format!(
                "unknown command /{other}; /help lists the commands"
            ));
        }
    }
    Ok(Flow::Continue)
}
