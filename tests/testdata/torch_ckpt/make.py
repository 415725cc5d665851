"""Writes tests/testdata/torch_ckpt/: small PyTorch checkpoints written by torch.save, for
tests/checkpoint/torch_checkpoint_test.ts and torch_init_test.ts.

    python3 tests/testdata/torch_ckpt/make.py tests/testdata/torch_ckpt

(torch and safetensors only; run from the repository root, it reads
tests/testdata/ps3_package/full/model.safetensors.)

- `dtypes.pt`: an OrderedDict state dict with float32, float16, bfloat16 and int64 tensors, a
  0-d scalar, an nn.Parameter, a transposed (non-contiguous) view, a slice with a storage
  offset, two views of one storage and an empty tensor; `dtypes_expected.safetensors` holds
  each tensor made contiguous, same dtype (the values a reader must return bit for bit).
- `epoch_1.pt`: an open_clip training checkpoint (`{"epoch", "name", "state_dict",
  "optimizer"}`, names `module.visual.*` / `module.text.*` / `module.prompt_proj.*` /
  `module.logit_scale` as DDP saves them) of the tiny PS3 of tests/testdata/ps3_package, with
  the optimizer state of one AdamW step over open_clip's two parameter groups (gain/bias,
  then the rest, as train/src/open_clip_train/main.py builds them).
- `open_clip_pytorch_model.bin`: the same weights as a bare open_clip state dict in bfloat16
  (OpenCLIP's Hub layout).
"""
import os
import sys
from collections import OrderedDict

import torch
from safetensors.torch import load_file, save_file


def dtypes(out):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    shared = torch.randn(10, generator=g)
    p = torch.nn.Parameter(torch.randn(2, 2, generator=g))
    sd = OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["f16"] = torch.randn(5, generator=g).half()
    sd["bf16"] = torch.randn(2, 3, generator=g).bfloat16()
    sd["i64"] = torch.tensor([0, -1, 2**40, -(2**50)], dtype=torch.int64)
    sd["scalar"] = torch.tensor(3.25)
    sd["param"] = p
    sd["transposed"] = base.t()
    sd["offset_slice"] = base[1:3, 2:5]
    sd["shared_a"] = shared[:4]
    sd["shared_b"] = shared[6:].view(2, 2)
    sd["empty"] = torch.zeros(0, 3)
    torch.save(sd, os.path.join(out, "dtypes.pt"))
    save_file({k: v.detach().contiguous().clone() for k, v in sd.items()},
              os.path.join(out, "dtypes_expected.safetensors"))


def open_clip_name(hf):
    if hf.startswith("text_model.prompt_proj."):
        return hf[len("text_model."):]
    if hf.startswith("vision_model."):
        return "visual." + hf[len("vision_model."):]
    if hf.startswith("text_model."):
        return "text." + hf[len("text_model."):]
    return hf


def training(out):
    hf = load_file("tests/testdata/ps3_package/full/model.safetensors")
    sd = OrderedDict()
    sd["logit_scale"] = torch.tensor(2.302585)
    sd["logit_bias"] = torch.tensor(-10.0)
    for k in sorted(hf):
        sd[open_clip_name(k)] = hf[k]
    params = OrderedDict((k, torch.nn.Parameter(v.clone())) for k, v in sd.items())
    exclude = lambda n, p: p.ndim < 2 or "bn" in n or "ln" in n or "bias" in n or "logit_scale" in n
    groups = [
        {"params": [p for n, p in params.items() if exclude(n, p)], "weight_decay": 0.0},
        {"params": [p for n, p in params.items() if not exclude(n, p)], "weight_decay": 3e-4},
    ]
    opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.95), eps=1e-8)
    g = torch.Generator().manual_seed(3)
    for p in params.values():
        p.grad = torch.randn(p.shape, generator=g)
    opt.step()
    ck = {
        "epoch": 1,
        "name": "ps3-tiny-test",
        "state_dict": OrderedDict(("module." + k, p.detach()) for k, p in params.items()),
        "optimizer": opt.state_dict(),
    }
    torch.save(ck, os.path.join(out, "epoch_1.pt"))
    torch.save(OrderedDict((k, v.bfloat16()) for k, v in sd.items()),
               os.path.join(out, "open_clip_pytorch_model.bin"))


if __name__ == "__main__":
    dtypes(sys.argv[1])
    training(sys.argv[1])
    print(torch.__version__)
