#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine. Idempotent: a second run
# only checks. Everything lands in .test-deps/ (gitignored) except Debian packages.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps="$root/.test-deps"
mkdir -p "$deps"
log() { printf '[setup] %s\n' "$*" >&2; }

# Debian packages: Chromium for the puppeteer MCP server, Prometheus/promtool for the dashboard tests.
need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
# A fresh Debian has neither Node.js/npm (the npm MCP servers, helm) nor venv (mcp-server-fetch).
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
command -v python3 >/dev/null 2>&1 || need_apt+=(python3)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "apt-get install ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# npm: the real MCP servers and helm, pinned in tests/mcp-servers/package.json.
node_dir="$deps/node"
mkdir -p "$node_dir"
if ! cmp -s "$root/tests/mcp-servers/package.json" "$node_dir/package.json" || [ ! -d "$node_dir/node_modules" ]; then
  log "npm install (MCP servers, helm)"
  cp "$root/tests/mcp-servers/package.json" "$node_dir/package.json"
  (cd "$node_dir" && PUPPETEER_SKIP_DOWNLOAD=1 npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi

# PyPI: mcp-server-fetch in a venv.
venv="$deps/venv"
if [ ! -x "$venv/bin/mcp-server-fetch" ]; then
  log "pip install mcp-server-fetch into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "mcp-server-fetch==2026.10.24"
fi
log "test dependencies ready in $deps"
