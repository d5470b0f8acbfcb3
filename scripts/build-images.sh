#!/usr/bin/env bash
# Builds the container images of the bot and the operator with docker or buildah.
#
#   scripts/build-images.sh [--engine docker|buildah] [--registry REG] [--tag TAG] [--push]
#                           [--platform linux/amd64] [bot] [operator]
#
# Defaults: the engine found first (a running docker, else buildah), registry ghcr.io/ollama-mcp,
# tag = the workspace version from Cargo.toml, both images. Images: REG/ollama-mcp-bot:TAG and
# REG/ollama-mcp-operator:TAG. Set RUST_IMAGE to build on another Rust base image.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

die() { printf 'build-images: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; }

engine=""
registry="ghcr.io/ollama-mcp"
tag=$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml | head -1)
push=false
platform=""
images=()
while [ $# -gt 0 ]; do
  case "$1" in
    --engine) engine=${2:?--engine needs docker or buildah}; shift 2 ;;
    --registry) registry=${2:?--registry needs a value}; shift 2 ;;
    --tag) tag=${2:?--tag needs a value}; shift 2 ;;
    --platform) platform=${2:?--platform needs a value, e.g. linux/arm64}; shift 2 ;;
    --push) push=true; shift ;;
    -h|--help) usage; exit 0 ;;
    bot|operator) images+=("$1"); shift ;;
    *) usage >&2; die "unknown argument '$1'" ;;
  esac
done
[ ${#images[@]} -gt 0 ] || images=(bot operator)
[ -n "$tag" ] || die "could not read the version from Cargo.toml; pass --tag"

if [ -z "$engine" ]; then
  if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
    engine=docker
  elif command -v buildah >/dev/null 2>&1; then
    engine=buildah
  else
    die "neither a running docker nor buildah found: install one (Debian: apt-get install buildah)"
  fi
fi
case "$engine" in docker|buildah) ;; *) die "--engine must be docker or buildah, not '$engine'" ;; esac
command -v "$engine" >/dev/null 2>&1 || die "$engine is not installed"

revision=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
args=(--build-arg "VERSION=$tag" --build-arg "REVISION=$revision")
[ -n "${RUST_IMAGE:-}" ] && args+=(--build-arg "RUST_IMAGE=$RUST_IMAGE")
[ -n "$platform" ] && args+=(--platform "$platform")

for image in "${images[@]}"; do
  case "$image" in
    bot) dockerfile=bot/Dockerfile; name=ollama-mcp-bot ;;
    operator) dockerfile=operator/Dockerfile; name=ollama-mcp-operator ;;
  esac
  ref="$registry/$name:$tag"
  printf 'build-images: building %s with %s\n' "$ref" "$engine" >&2
  if [ "$engine" = docker ]; then
    docker build -f "$dockerfile" -t "$ref" "${args[@]}" .
  else
    buildah bud --layers -f "$dockerfile" -t "$ref" "${args[@]}" .
  fi
  if $push; then
    printf 'build-images: pushing %s\n' "$ref" >&2
    "$engine" push "$ref"
  fi
done
