#!/usr/bin/env bash
# The device check of issue 8, run in one go on a lent GPU machine from the repository root
# (prepare the carried files here first with tests/device/device_pack.sh). Installs nothing over
# the network: Deno and its package cache come from .device/, the Vulkan loader from .gl/.
#   1. the op and model tests (every kernel and gradient against the float64 references)
#      on the GPU adapter;
#   2. `ps3 bench --device-check`: the kernels at the model's sizes against the references,
#      then the ceilings, kernel timings, matmul against jax-js, the training steps;
#   3. the full PS3-1.5K step at growing batch sizes until one does not fit.
# Writes $OUT/bench.md (the table), $OUT/bench.json, and the logs; prints the table last.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/ps3-device-check}
mkdir -p "$OUT"
start=$(date +%s)
if [ -d .gl ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
fi
ldconfig -p | grep -q libvulkan || echo "device_check: no Vulkan loader found" >&2
nv=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -f "$nv" ] && [ -z "${VK_DRIVER_FILES:-}" ]; then export VK_DRIVER_FILES=$nv; fi
work=/tmp/ps3dev
mkdir -p "$work"
xz -dc .device/deno.xz >"$work/deno" && chmod +x "$work/deno"
tar -C "$work" -xJf .device/denodir.tar.xz
export DENO_DIR=$work/denodir PATH=$work:$PATH DENO_NO_UPDATE_CHECK=1
deno --version | head -1 | tee "$OUT/versions.txt"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  >>"$OUT/versions.txt" 2>&1 || true
deno run -A --cached-only main.ts info 2>&1 | tee -a "$OUT/versions.txt"

echo "== 1. op and model tests on the GPU"
deno test -A --cached-only tests/ops tests/model tests/autograd >"$OUT/tests.log" 2>&1
echo "tests exit code $?" | tee -a "$OUT/tests.log"
grep -E "^(ok|FAILED) \|" "$OUT/tests.log" | tail -2

echo "== 2. device check and benchmarks"
deno run -A --cached-only main.ts bench --device-check --runs 3 \
  --step-configs eq-tiny,eq-1.5k,eq-4k,tiny --step-depth 27 --step-budget 1024 \
  --out "$OUT" >"$OUT/bench.log" 2>&1
echo "bench exit code $?" | tee -a "$OUT/bench.log"

echo "== 3. full PS3-1.5K step, growing batch (until out of memory or time)"
for b in 1 2 4 8 16 32; do
  [ $(($(date +%s) - start)) -gt 420 ] && { echo "stopping: time" | tee -a "$OUT/steps.log"; break; }
  if ! timeout 120 deno run -A --cached-only main.ts bench --no-ops --runs 2 \
    --step-configs 1.5k --step-batch "$b" --no-step-parts >>"$OUT/steps.log" 2>&1; then
    echo "batch $b failed (see steps.log)" | tee -a "$OUT/steps.log"
    break
  fi
  grep "step 1.5k" "$OUT/steps.log" | tail -1
done
cat "$OUT/bench.md" 2>/dev/null || tail -40 "$OUT/bench.log"
