"""PyTorch / Pillow side of `ps3 bench --torch` (src/bench/torch_side.ts): the same work as
ps3's benchmark rows, on the CPU, printed as one JSON object on stdout.

What it runs (all timings are medians of `--runs` timed repetitions after a warm-up):

- "step": one training step of the PS3-tiny architecture (configs/ps3-tiny.yaml) written in
  plain torch (this file; not the NVlabs/PS3 package): batch 16 of random 256x256 images,
  random tokens, one box per sample. Vision: images bicubic-resized (no antialias) to the
  scales 64 / 128 / 256; 8x8 patches, width 64, 4 pre-norm ViT blocks (4 heads, MLP 256,
  tanh GELU); the low-res pass (64 tokens) keeps every block's keys and values; selection
  features = MLP (fc1, GELU, LayerNorm, fc2) over the 4 blocks' outputs concatenated
  (256 -> 256 -> 128), channel 0, L2-normalised; ShallowConvNet on the 256 image (16x16 stem, LN, one ConvNeXt block,
  projection to 32) whose cosine with prompt_proj_for_highres(q) is max-pooled to the 8x8
  grid and averaged with the trunk cosine; sigmoid(clamp(5 * logit)); nearest-resized to the
  16x16 and 32x32 grids; prior (learned prompt) and posterior (text prompt) probabilities;
  selection = top-k of max(posterior, gt mask) (19 + 77 = 96 patches); the selected patches
  embedded with the shared patch weights plus the antialiased-bicubic position table; the 4
  blocks again over the 96 tokens, each attending to [its low-res keys/values, its own];
  final LN; MAP attention pooling with the gt-token mask; global-caption mix. Text: token +
  position embeddings, 2 pre-norm blocks (width 64, context 16, causal mask off as
  SigLIP), final LN, last token, projection; prompt_proj (an MLP with LayerNorm, 64 -> 64 ->
  64). The parameter count equals ps3's for configs/ps3-tiny.yaml (609,474; the JSON has it). Loss: SigLIP (sigmoid) loss with
  learned scale and bias + prior and posterior box BCE against the area-resized box map.
  Two variants are timed: forward + backward ("fwd_bwd", what ps3's step row measures) and
  forward + backward + AdamW step ("fwd_bwd_adamw"). No gradient checkpointing.
- "matmul": torch.matmul of float32 matrices at the model's shapes, GFLOP/s.
- "inference" (only with `--inference DIMS`): PS3 vision inference in plain torch (this file;
  not the NVlabs/PS3 package) on one square image of the largest scale, one round of
  look-close, with the shapes of `ps3 encode`: DIMS is the JSON `src/bench/torch_inference.ts`
  writes from a ps3 config (trunk width, depth, heads, MLP, patch, position grid, scales,
  selection layers, tokens per high-res scale, ConvNet). Random init (torch's defaults), the
  same parameters as ps3's vision tower (the JSON has the count). The low-res pass (scale 0,
  bicubic resize, patch embedding + position table, every block keeping its keys and values),
  the selection features (the selection layers' outputs concatenated, MLP with LayerNorm,
  channel 0, L2-normalised), the ShallowConvNet on the image at its input size, the bottom-up
  probabilities (prior prompt; trunk cosine averaged with the max-pooled ConvNet cosine,
  sigmoid(clamp(5 * logit)), nearest-resized to each high-res grid), top-k per scale (sorted
  to raster order), the selected patches of each bicubic-resized scale embedded with the
  shared patch weights plus the antialiased-bicubic position table and the scale's residual,
  then every block over them attending to [its low-res keys/values, its own], and the last
  hidden state (low-res tokens then high-res, before the final norm, as `ps3 encode` returns
  it). Timed after a warm-up under `torch.inference_mode()`; peak RSS of the process
  (ru_maxrss: torch, the model and the inference).
- "data": Pillow decode + RandomResizedCrop-style crop (90% of the area) + bicubic resize to
  1512x1512 + to float32 CHW normalised ((x / 255 - 0.5) / 0.5), images/s, in 1 and 2
  processes (multiprocessing, each process its own share of the images).

On a machine busier than its cores, OpenMP threads that spin at barriers (the default) make
torch's 2-thread figures many times slower (measured here: 5.0 s instead of 0.64 s for the
step at a load average of 12 on 2 cores); `OMP_WAIT_POLICY=PASSIVE` avoids that, and the ps3
bench sets it unless the caller did. The JSON records the policy and the load average.

Usage: python3 tests/tools/torch_bench.py [--threads 2] [--runs 3] [--image dock.jpg]
       [--skip step,matmul,data] [--quick] [--inference DIMS.json [--inference-runs 1]]
"""

import argparse
import io
import json
import math
import multiprocessing as mp
import os
import statistics
import sys
import time


def median_ms(fn, runs, warm=1):
    for _ in range(warm):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


# ---------------------------------------------------------------------------------------------
# Layers both models use


def layers(torch):
    """The modules and functions the PS3-tiny training model and the PS3 vision tower share."""
    from types import SimpleNamespace

    nn = torch.nn
    F = torch.nn.functional

    def attend(q, k, v, heads, key_mask=None):
        b, n, c = q.shape
        split = lambda t: t.view(b, t.shape[1], heads, c // heads).transpose(1, 2)
        mask = None
        if key_mask is not None:
            mask = key_mask[:, None, None, :].bool()
        o = F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask)
        return o.transpose(1, 2).reshape(b, n, c)

    class Mlp(nn.Module):
        """timm's Mlp: fc1, GELU, (LayerNorm of the hidden when norm_eps), fc2."""

        def __init__(self, c, h, out=None, approximate="tanh", norm_eps=None):
            super().__init__()
            self.fc1, self.fc2 = nn.Linear(c, h), nn.Linear(h, out or c)
            self.norm = nn.LayerNorm(h, eps=norm_eps) if norm_eps else nn.Identity()
            self.approximate = approximate

        def forward(self, x):
            return self.fc2(self.norm(F.gelu(self.fc1(x), approximate=self.approximate)))

    class Block(nn.Module):
        """Pre-norm ViT block; keys and values of a cache are attended before its own."""

        def __init__(self, c, heads, mlp, eps=1e-6, approximate="tanh"):
            super().__init__()
            self.heads = heads
            self.norm1, self.norm2 = nn.LayerNorm(c, eps=eps), nn.LayerNorm(c, eps=eps)
            self.qkv, self.proj = nn.Linear(c, 3 * c), nn.Linear(c, c)
            self.mlp = Mlp(c, mlp, c, approximate)

        def forward(self, x, cache=None):
            q, k, v = self.qkv(self.norm1(x)).chunk(3, dim=-1)
            kk, vv = (k, v) if cache is None else (torch.cat([cache[0], k], 1), torch.cat([cache[1], v], 1))
            x = x + self.proj(attend(q, kk, vv, self.heads))
            return x + self.mlp(self.norm2(x)), (k, v)

    class ConvNext(nn.Module):
        def __init__(self, c, approximate):
            super().__init__()
            self.dw = nn.Conv2d(c, c, 7, padding=3, groups=c)
            self.norm, self.mlp = nn.LayerNorm(c, eps=1e-6), Mlp(c, 4 * c, c, approximate)
            self.gamma = nn.Parameter(torch.full((c,), 1e-6))

        def forward(self, x):  # [B, H, W, C]
            h = self.dw(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            return x + self.mlp(self.norm(h)) * self.gamma

    def resize(x, s):
        return x if x.shape[-1] == s else F.interpolate(x, size=(s, s), mode="bicubic", align_corners=False)

    def patchify(x, p):  # [B, 3, H, W] -> [B, (H/p)(W/p), 3pp]
        b, c, h, w = x.shape
        x = x.view(b, c, h // p, p, w // p, p).permute(0, 2, 4, 1, 3, 5)
        return x.reshape(b, (h // p) * (w // p), c * p * p)

    return SimpleNamespace(
        attend=attend, Mlp=Mlp, Block=Block, ConvNext=ConvNext, resize=resize, patchify=patchify
    )


# ---------------------------------------------------------------------------------------------
# PS3-tiny in plain torch


def build_tiny(torch):
    nn = torch.nn
    F = torch.nn.functional

    C, DEPTH, HEADS, MLP, PATCH = 64, 4, 4, 256, 8
    SCALES = [64, 128, 256]
    COUNTS = [19, 77]
    CONV = dict(hidden=32, out=32, kernel=16, input=256)
    TEXT = dict(context=16, vocab=128, width=64, heads=4, layers=2, mlp=256)

    L = layers(torch)
    attend, Mlp, Block, resize, patchify = L.attend, L.Mlp, L.Block, L.resize, L.patchify

    class MapPool(nn.Module):
        def __init__(self, c, heads, mlp):
            super().__init__()
            self.heads = heads
            self.latent = nn.Parameter(torch.randn(1, 1, c) * c**-0.5)
            self.q, self.kv, self.proj = nn.Linear(c, c), nn.Linear(c, 2 * c), nn.Linear(c, c)
            self.norm, self.mlp = nn.LayerNorm(c, eps=1e-6), Mlp(c, mlp)

        def forward(self, x, mask=None):
            q = self.q(self.latent).expand(x.shape[0], 1, -1)
            k, v = self.kv(x).chunk(2, dim=-1)
            a = self.proj(attend(q, k, v, self.heads, mask))
            return (a + self.mlp(self.norm(a)))[:, 0]

    class ShallowConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            k, h = CONV["kernel"], CONV["hidden"]
            self.stem = nn.Conv2d(3, h, k, stride=k)
            self.norm, self.block = nn.LayerNorm(h, eps=1e-6), L.ConvNext(h, "tanh")
            self.out = nn.Linear(h, CONV["out"])

        def forward(self, x):
            return self.out(self.block(self.norm(self.stem(x).permute(0, 2, 3, 1))))

    class Text(nn.Module):
        def __init__(self):
            super().__init__()
            w = TEXT["width"]
            self.tok = nn.Embedding(TEXT["vocab"], w)
            self.pos = nn.Parameter(torch.randn(1, TEXT["context"], w) * 0.01)
            self.blocks = nn.ModuleList(Block(w, TEXT["heads"], TEXT["mlp"]) for _ in range(TEXT["layers"]))
            self.norm, self.proj = nn.LayerNorm(w, eps=1e-6), nn.Linear(w, C)

        def forward(self, tokens):
            x = self.tok(tokens) + self.pos
            for blk in self.blocks:
                x = blk(x)[0]
            return F.normalize(self.proj(self.norm(x)[:, -1]), dim=-1)

    def area(maps, g):
        return F.adaptive_avg_pool2d(maps[:, None], (g, g)).flatten(1)

    class Ps3Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.patch = nn.Linear(3 * PATCH * PATCH, C)
            self.pos = nn.Parameter(torch.randn(1, C, 8, 8) * 0.02)
            self.blocks = nn.ModuleList(Block(C, HEADS, MLP) for _ in range(DEPTH))
            self.norm = nn.LayerNorm(C, eps=1e-6)
            self.pool = MapPool(C, HEADS, MLP)
            self.sel = Mlp(4 * C, 4 * C, 2 * C, norm_eps=1e-5)
            self.prior = nn.Parameter(torch.randn(C))
            self.pos_res = nn.ParameterList(nn.Parameter(torch.zeros(1, (s // PATCH) ** 2, C)) for s in SCALES[1:])
            self.conv = ShallowConvNet()
            self.prompt_hr = nn.Linear(C, CONV["out"] * 2)
            self.text = Text()
            self.prompt_proj = Mlp(C, C, C, norm_eps=1e-5)
            self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
            self.logit_bias = nn.Parameter(torch.tensor(-10.0))

        def pos_table(self, g):
            t = self.pos if g == 8 else F.interpolate(self.pos, size=(g, g), mode="bicubic", antialias=True)
            return t.flatten(2).transpose(1, 2)  # [1, g*g, C]

        def probs(self, feats, conv, q):
            b = q.shape[0]
            logits = (feats * F.normalize(q, dim=-1)[:, None]).sum(-1)  # [B, 64]
            hp = F.normalize(self.prompt_hr(q)[:, : CONV["out"]], dim=-1)
            hl = (conv * hp[:, None, None]).sum(-1)  # [B, 16, 16]
            pooled = F.adaptive_max_pool2d(hl[:, None], (8, 8)).flatten(1)
            prob = torch.sigmoid(torch.clamp((logits + pooled) * 0.5 * 5, -10, 10)).view(b, 1, 8, 8)
            return [F.interpolate(prob, size=(s // PATCH,) * 2, mode="nearest").flatten(1) for s in SCALES[1:]]

        def forward(self, images, tokens, gt_maps, is_global):
            b = images.shape[0]
            text = self.text(tokens)
            prompt = self.prompt_proj(text)
            x = self.patch(patchify(resize(images, SCALES[0]), PATCH)) + self.pos_table(8)
            hidden, cache = [], []
            for blk in self.blocks:
                x, kv = blk(x)
                hidden.append(x)
                cache.append(kv)
            low_pooled = self.pool(self.norm(x))
            feats = F.normalize(self.sel(torch.cat(hidden, -1))[..., :C], dim=-1)
            conv = F.normalize(self.conv(resize(images, CONV["input"])), dim=-1)
            prior = self.probs(feats, conv, self.prior.expand(b, C))
            post = self.probs(feats, conv, prompt)
            grids = [s // PATCH for s in SCALES[1:]]
            with torch.no_grad():
                g1 = area(gt_maps, grids[0]).view(b, 1, grids[0], grids[0])
                gt = [(F.interpolate(g1, size=(g, g), mode="nearest").flatten(1) > 0).float() for g in grids]
                sel = [torch.maximum(p, m).topk(k, dim=1).indices for p, m, k in zip(post, gt, COUNTS)]
            toks, cover = [], []
            for i, (s, g, idx) in enumerate(zip(SCALES[1:], grids, sel)):
                patches = torch.gather(patchify(resize(images, s), PATCH), 1, idx[..., None].expand(-1, -1, 3 * PATCH * PATCH))
                pos = (self.pos_table(g) + self.pos_res[i]).expand(b, -1, -1)
                toks.append(self.patch(patches) + torch.gather(pos, 1, idx[..., None].expand(-1, -1, C)))
                cover.append(torch.gather(area(gt_maps, g), 1, idx))
            h = torch.cat(toks, 1)
            for blk, kv in zip(self.blocks, cache):
                h = blk(h, kv)[0]
            mask = torch.cat(cover, 1) > 0
            mask = mask | (mask.sum(-1, keepdim=True) == 0)
            pooled = self.pool(self.norm(h), mask)
            pooled = low_pooled * is_global + pooled * (1 - is_global)
            img = F.normalize(pooled, dim=-1)
            logits = img @ text.T * self.logit_scale.exp() + self.logit_bias
            labels = 2 * torch.eye(b) - 1
            loss = -F.logsigmoid(labels * logits).sum() / b
            targets = [(area(gt_maps, g) > 0).float() for g in grids]
            for probs in (prior, post):
                loss = loss + sum(F.binary_cross_entropy(p, t) for p, t in zip(probs, targets)) / len(targets)
            return loss

    return Ps3Tiny


def bench_step(torch, runs, batch):
    torch.manual_seed(0)
    model = build_tiny(torch)()
    images = torch.randn(batch, 3, 256, 256)
    tokens = torch.randint(1, 128, (batch, 16))
    maps = torch.zeros(batch, 256, 256)
    for i in range(batch):
        y, x = torch.randint(0, 128, (2,)).tolist()
        maps[i, y : y + 128, x : x + 128] = 1
    is_global = torch.zeros(batch, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=3e-4)

    def fwd_bwd():
        model.zero_grad(set_to_none=True)
        model(images, tokens, maps, is_global).backward()

    def fwd_bwd_adamw():
        fwd_bwd()
        opt.step()

    params = sum(p.numel() for p in model.parameters())
    return {
        "batch": batch,
        "params": params,
        "fwd_bwd_ms": median_ms(fwd_bwd, runs, warm=2),
        "fwd_bwd_adamw_ms": median_ms(fwd_bwd_adamw, runs, warm=1),
    }


# ---------------------------------------------------------------------------------------------
# PS3 vision inference (the shapes of `ps3 encode`, one round)


def build_vision(torch, d):
    """The PS3 vision tower of the dims `d` (see the module doc); parameters as ps3's
    `vision_model.*`, including the ones inference does not run (final norm, MAP head)."""
    nn = torch.nn
    F = torch.nn.functional
    C, P, G = d["width"], d["patch"], d["pos_grid"]
    act = "tanh" if d["act"] == "gelu_tanh" else "none"
    pool_act = "tanh" if d["pool_act"] == "gelu_tanh" else "none"
    scales, conv_d = d["scales"], d["conv"]
    ks = len(scales) - 1

    L = layers(torch)
    Mlp, resize = L.Mlp, L.resize
    patchify = lambda x: L.patchify(x, P)

    class MapHead(nn.Module):  # counted, not run: `ps3 encode` returns hidden states
        def __init__(self):
            super().__init__()
            self.latent = nn.Parameter(torch.zeros(1, 1, C))
            self.q, self.kv, self.proj = nn.Linear(C, C), nn.Linear(C, 2 * C), nn.Linear(C, C)
            self.norm, self.mlp = nn.LayerNorm(C, eps=d["eps"]), Mlp(C, d["mlp"], C, pool_act)

    class ShallowConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            h, k = conv_d["hidden"], conv_d["kernel"]
            self.stem = nn.Conv2d(3, h, k, stride=k)
            self.norm = nn.LayerNorm(h, eps=1e-6)
            self.blocks = nn.Sequential(*(L.ConvNext(h, "none") for _ in range(conv_d["depth"])))
            self.out = nn.Conv2d(h, conv_d["out"], 1)

        def forward(self, x):
            x = self.blocks(self.norm(self.stem(x).permute(0, 2, 3, 1)))
            return self.out(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)

    def rows(t, idx):  # t [B or 1, N, C], idx [B, k] -> [B, k, C]
        return torch.gather(t.expand(idx.shape[0], -1, -1), 1, idx[..., None].expand(-1, -1, t.shape[-1]))

    class Ps3Vision(nn.Module):
        def __init__(self):
            super().__init__()
            self.prior_prompt = nn.Parameter(torch.randn(C))
            self.pos_embed = nn.Parameter(torch.randn(1, G * G, C) * 0.02)
            self.patch = nn.Linear(3 * P * P, C)  # the patch conv as a matrix, as ps3 runs it
            self.blocks = nn.ModuleList(
                L.Block(C, d["heads"], d["mlp"], d["eps"], act) for _ in range(d["depth"])
            )
            self.norm = nn.LayerNorm(C, eps=d["eps"])  # counted, not run
            self.attn_pool = MapHead()
            nl = len(d["select_layers"])
            self.sel = Mlp(nl * C, nl * C, ks * C, "none", norm_eps=1e-5)
            self.pos_res = nn.ParameterList(
                nn.Parameter(torch.zeros(1, (s // P) ** 2, C)) for s in scales[1:]
            ) if d["separate_pos_emb"] else None
            self.conv = ShallowConvNet() if conv_d else None
            self.prompt_hr = nn.Linear(C, conv_d["out"] * ks) if conv_d else None

        def pos_table(self, g):
            if g == G:
                return self.pos_embed
            t = self.pos_embed.transpose(1, 2).reshape(1, C, G, G)
            t = F.interpolate(t, size=(g, g), mode="bicubic", antialias=True, align_corners=False)
            return t.flatten(2).transpose(1, 2)

        def forward(self, img):
            b, g0 = img.shape[0], scales[0] // P
            x = self.patch(patchify(resize(img, scales[0]))) + self.pos_table(g0)
            hidden, cache = [], []
            for blk in self.blocks:
                x, kv = blk(x)
                hidden.append(x)
                cache.append(kv)
            feats = F.normalize(self.sel(torch.cat([hidden[l] for l in d["select_layers"]], -1))[..., :C], dim=-1)
            q = self.prior_prompt[None].expand(b, C)
            logits = (feats * F.normalize(q, dim=-1)[:, None]).sum(-1)  # [B, N0]
            if self.conv is not None:
                conv = F.normalize(self.conv(resize(img, conv_d["input"])), dim=-1)
                hp = F.normalize(self.prompt_hr(q)[:, : conv_d["out"]], dim=-1)
                hl = (conv * hp[:, None, None]).sum(-1)  # [B, Hc, Wc]
                pooled = F.adaptive_max_pool2d(hl[:, None], (g0, g0)).flatten(1)
                logits = (logits + pooled) * 0.5
            prob = torch.sigmoid(torch.clamp(logits * 5, -10, 10)).view(b, 1, g0, g0)
            toks = []
            for i, (s, k) in enumerate(zip(scales[1:], d["counts"])):
                g = s // P
                p = F.interpolate(prob, size=(g, g), mode="nearest").flatten(1)
                idx = p.topk(k, dim=1).indices.sort(dim=1).values
                t = self.patch(rows(patchify(resize(img, s)), idx)) + rows(self.pos_table(g), idx)
                toks.append(t + rows(self.pos_res[i], idx) if self.pos_res is not None else t)
            h = torch.cat(toks, 1)
            for blk, kv in zip(self.blocks, cache):
                h = blk(h, kv)[0]
            return torch.cat([x, h], 1)

    return Ps3Vision


def peak_rss_bytes():
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux


def bench_inference(torch, dims, runs):
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_vision(torch, dims)().eval()
    build_ms = (time.perf_counter() - t0) * 1000
    s = dims["scales"][-1]
    img = torch.randn(1, 3, s, s)
    out = {}

    def infer():
        with torch.inference_mode():
            out["y"] = model(img)

    ms = median_ms(infer, runs, warm=1)
    return {
        "name": dims.get("name", ""),
        "params": sum(p.numel() for p in model.parameters()),
        "input": [s, s],
        "tokens": out["y"].shape[1],
        "build_ms": build_ms,
        "ms": ms,
        "runs": runs,
        "peak_rss_bytes": peak_rss_bytes(),
    }


# ---------------------------------------------------------------------------------------------
# Matmuls

MATMUL_SHAPES = [(1024, 1024, 1024), (729, 3456, 1152), (2560, 4304, 1152)]


def bench_matmul(torch, runs):
    out = []
    for m, n, k in MATMUL_SHAPES:
        a, b = torch.randn(m, k), torch.randn(k, n)
        ms = median_ms(lambda: torch.matmul(a, b), runs, warm=2)
        out.append({"m": m, "n": n, "k": k, "ms": ms, "gflops": 2 * m * n * k / ms / 1e6})
    return out


# ---------------------------------------------------------------------------------------------
# Decode + resize


def _prepare(data, size):
    import numpy as np
    from PIL import Image

    im = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = im.size
    cw, ch = round(w * math.sqrt(0.95)), round(h * math.sqrt(0.95))
    box = ((w - cw) // 2, (h - ch) // 2, (w - cw) // 2 + cw, (h - ch) // 2 + ch)
    out = im.crop(box).resize((size, size), Image.BICUBIC)
    a = np.asarray(out, dtype=np.float32).transpose(2, 0, 1)
    return (a / np.float32(255) - np.float32(0.5)) / np.float32(0.5)


def _worker(args):
    path, size, n = args
    data = open(path, "rb").read()
    for _ in range(n):
        _prepare(data, size)
    return n


def bench_data(path, size, images, processes):
    from PIL import Image

    data = open(path, "rb").read()
    w, h = Image.open(io.BytesIO(data)).size
    _prepare(data, size)  # warm-up
    out = []
    for procs in processes:
        share = [images // procs + (1 if i < images % procs else 0) for i in range(procs)]
        if procs == 1:
            t0 = time.perf_counter()
            _worker((path, size, images))
        else:
            with mp.get_context("fork").Pool(procs) as pool:
                pool.map(_worker, [(path, size, 1)] * procs)  # warm the processes
                t0 = time.perf_counter()
                pool.map(_worker, [(path, size, s) for s in share])
        dt = time.perf_counter() - t0
        out.append({"processes": procs, "images": images, "ms_per_image": dt * 1000 / images,
                    "images_per_s": images / dt, "source": f"{w}x{h}", "size": size})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--image", default=os.path.join(os.path.dirname(__file__), "..", "testdata", "dock.jpg"))
    ap.add_argument("--size", type=int, default=1512)
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--skip", default="")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--inference", help="JSON file (or inline JSON) of the PS3 vision dims to time")
    ap.add_argument("--inference-runs", type=int, default=1)
    a = ap.parse_args()
    import PIL

    skip = set(filter(None, a.skip.split(",")))
    if a.quick:
        a.runs, a.images, a.size = 1, 4, 512
    torch = None
    if not {"step", "matmul"} <= skip or a.inference:  # the data rows need no torch (a faster start)
        import torch

        torch.set_num_threads(a.threads)
    res = {"torch": torch.__version__ if torch else "", "pillow": PIL.__version__, "threads": a.threads,
           "runs": a.runs, "load_average": list(os.getloadavg()),
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "")}
    if "step" not in skip:
        res["step"] = bench_step(torch, a.runs, a.batch)
    if "matmul" not in skip:
        res["matmul"] = bench_matmul(torch, a.runs)
    if a.inference:
        text = a.inference if a.inference.lstrip().startswith("{") else open(a.inference).read()
        res["inference"] = bench_inference(torch, json.loads(text), a.inference_runs)
    if "data" not in skip:
        res["data"] = bench_data(a.image, a.size, a.images, [1, 2])
    json.dump(res, sys.stdout)
    print()


if __name__ == "__main__":
    main()
