#!/usr/bin/env bash
# Prepares what a lent GPU machine needs for tests/device/device_check.sh, here, with network:
# the Deno binary (xz-compressed), a Deno cache holding every npm package ps3, its tests and
# the jax-js comparison import (xz-compressed tar), and the Vulkan loader packages (.gl/, as
# the device README describes). Both folders are git-ignored through .git/info/exclude and
# travel with the `carry` argument of the device tool:
#   run(command="bash tests/device/device_check.sh", carry=[".device", ".gl"], timeout_s=540)
# Usage: bash tests/device/device_pack.sh [path/to/deno]   (default: the deno on PATH)
set -euo pipefail
cd "$(dirname "$0")/../.."
DENO_BIN=${1:-$(command -v deno)}
for d in /.device/ /.gl/; do
  grep -qxF "$d" .git/info/exclude 2>/dev/null || echo "$d" >>.git/info/exclude
done
rm -rf .device && mkdir -p .device
xz -T0 -6 -c "$DENO_BIN" >.device/deno.xz
cache=$(mktemp -d)
echo 'import "npm:@jax-js/jax@0.1.25";' >"$cache/jax.ts"
DENO_DIR="$cache/denodir" "$DENO_BIN" cache --config deno.json main.ts \
  $(find tests -name '*_test.ts')
# jax-js stays out of deno.lock: cached without the lockfile.
DENO_DIR="$cache/denodir" "$DENO_BIN" cache --no-lock "$cache/jax.ts"
# Only the downloaded packages travel; the compiled-code caches are rebuilt there.
tar -C "$cache" -cf - denodir/npm denodir/remote 2>/dev/null | xz -T0 -6 >.device/denodir.tar.xz ||
  tar -C "$cache" -cf - denodir/npm | xz -T0 -6 >.device/denodir.tar.xz
rm -rf "$cache"
if [ ! -d .gl ]; then
  mkdir -p .gl /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update >/dev/null
  (cd .gl && apt-get $o download libvulkan1)
fi
du -sh .device .gl
