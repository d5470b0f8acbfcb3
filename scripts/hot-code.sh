#!/usr/bin/env bash
# Writes bot/hot-code.txt: the functions that the bot runs when it starts and answers, in `chat`
# (4 real MCP servers, plain and tool turns) and in `run` (Discord double: connect, register
# commands, answer mentions). bot/build.rs has the linker place them together, so that a running
# bot keeps few pages of its executable mapped (docs/BENCHMARKS.md, Memory). Rerun after large
# changes; a stale list only helps less (what it does not name is placed after, as before).
#
#   scripts/hot-code.sh        # needs valgrind and scripts/setup-test-deps.sh; ~10 min
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --profile dist -p ollama-mcp-bot
cargo build -p ollama-mcp-tests --tests
cargo bench -p ollama-mcp-tests --bench engine --no-run
bin=$PWD/target/dist/ollama-mcp-bot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Every run of the bot, under callgrind: its `fn=` records name each function that ran (dumped
# as it goes: the Discord tests end the bot with SIGKILL, which loses what was not dumped).
cat > "$work/bot" <<WRAP
#!/bin/sh
exec valgrind --quiet --tool=callgrind --demangle=no --dump-instr=no --compress-strings=no \
  --compress-pos=no --dump-every-bb=2000000 --callgrind-out-file="$work/callgrind.%p" "$bin" "\$@"
WRAP
chmod +x "$work/bot"
export OLLAMA_MCP_BOT_BINARY="$work/bot"
# Under valgrind the bot is ~50 times slower: a run that times out still profiled what ran.
cargo bench -p ollama-mcp-tests --bench engine -- memory --quick >"$work/engine.log" 2>&1 ||
  echo "engine memory bench failed under valgrind (profile kept): $(tail -1 "$work/engine.log")"
cargo test -p ollama-mcp-tests --test discord_bot -- --test-threads=1 \
  mention_gets_a_reply_that_pings_only_the_asker long_replies_stream_by_paced_edits \
  access_lists_deny_wins_and_admin_commands_change_them >"$work/discord.log" 2>&1 ||
  echo "discord tests failed under valgrind (profile kept): $(grep -m1 panicked "$work/discord.log")"
ls "$work"/callgrind.* >/dev/null 2>&1 || { echo "no callgrind profile was written" >&2; exit 1; }
# Our own functions only (symbols of the executable); libc's are not ours to place.
nm --defined-only "$bin" | awk '{print $3}' | sort -u >"$work/ours"
grep -h '^fn=' "$work"/callgrind.* | sed 's/^fn=//' | sort -u | comm -12 - "$work/ours" >bot/hot-code.txt
echo "bot/hot-code.txt: $(wc -l <bot/hot-code.txt) functions"
