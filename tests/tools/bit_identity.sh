#!/usr/bin/env bash
# Fingerprints of the computation, to show that a refactor changes no bit: the outputs and
# gradients of `ps3 debug-step` (training step and inference) on the golden batch, and the
# losses and final weights of a 20-step tiny training run. Run it on two commits and compare.
# Usage: tests/tools/bit_identity.sh <output folder>   (from the repository root; ~2 min)
set -euo pipefail
out=$1
rm -rf "$out"
mkdir -p "$out"
export DENO_WEBGPU_BACKEND=vulkan
g=tests/testdata/ps3_golden
deno run -A main.ts debug-step --checkpoint $g/ckpt --batch $g/batch_train.safetensors \
  --out "$out/train.safetensors" >/dev/null
deno run -A main.ts debug-step --checkpoint $g/ckpt --batch $g/batch_infer.safetensors \
  --out "$out/infer.safetensors" --infer --num-look-close all >/dev/null
deno run -A main.ts train configs/ps3-tiny.yaml --train.steps=20 --checkpoint.out="$out/run" \
  --checkpoint.save_every=10 --log.eval_every=0 --no-progress >"$out/train.log" 2>&1
# The loss terms of every step (timings left out), hashed.
deno eval '
  const lines = Deno.readTextFileSync(Deno.args[0]).split("\n").filter((l) => l.trim());
  const keys = ["step", "loss", "contrastive", "prior_box", "posterior_box", "grad_norm", "lr"];
  const recs = lines.map((l) => JSON.parse(l)).filter((r) => "loss" in r);
  const text = JSON.stringify(recs.map((r) => keys.map((k) => r[k])));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
  const hex = [...hash].map((b) => b.toString(16).padStart(2, "0")).join("").slice(0, 16);
  console.log(`losses ${hex} (final ${recs.at(-1).loss})`);
' "$out/run/metrics.jsonl"
for f in train infer; do echo "debug-step $f $(sha256sum "$out/$f.safetensors" | cut -c1-16)"; done
ck=$(ls -d "$out"/run/checkpoints/step_*/ | tail -1)
echo "weights after 20 steps $(sha256sum "$ck/model.safetensors" | cut -c1-16)"
