#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what the tests need (idempotent), then checks
# formatting, lints, the generated CRD, and runs every test with the real MCP servers.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cargo >/dev/null || { echo "cargo not found: install Rust from https://rustup.rs first" >&2; exit 1; }

bash scripts/setup-test-deps.sh

step() { printf '\n==> %s\n' "$*" >&2; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "build the binaries the end-to-end tests run"
cargo build --workspace --bins --locked
step "cargo test"
cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
