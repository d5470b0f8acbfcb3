#!/usr/bin/env bash
# Copies the generated BotDeployment CRD (crds/, made by `ollama-mcp-operator crd`) into the Helm
# chart and the kubectl install manifests. tests/tests/chart.rs fails when the copies drift.
# Usage: scripts/sync-crds.sh [--generate]   (--generate first regenerates crds/ with cargo)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
src="$root/crds/botdeployments.ollama-mcp.io.yaml"
if [ "${1:-}" = "--generate" ]; then
  (cd "$root" && cargo run -q -p ollama-mcp-operator -- crd > "$src")
fi
[ -f "$src" ] || { echo "missing $src: run scripts/sync-crds.sh --generate" >&2; exit 1; }
for dest in "$root/charts/ollama-mcp-operator/files/crds" "$root/manifests/install"; do
  mkdir -p "$dest"
  cp "$src" "$dest/botdeployments.ollama-mcp.io.yaml"
done
echo "copied $src into the chart and manifests/install" >&2
