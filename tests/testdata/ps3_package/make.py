"""Writes tests/testdata/ps3_package/: tiny PS3 folders saved by the PS3 package itself.

Run from a scratch folder that holds the reference's `ps3/` package (NVlabs/PS3, not part of
this repository) with torch, transformers and timm installed:

    PYTHONPATH=<dir with ps3/> python3 tests/testdata/ps3_package/make.py tests/testdata/ps3_package

It registers a tiny SigLIP-shaped timm trunk (`vit_ps3test_patch14_siglip_42`: patch 14, width
32, 2 blocks, 2 heads, MLP ratio 2, no class token, MAP pool) because the package only builds
trunks timm knows by name, and passes the trunk sizes as extra config fields (the package's
`PretrainedConfig` stores and saves them; ps3 reads them as it reads an unknown trunk name).
Everything else is the package's own code path: `PS3Model(PS3Config(...)).save_pretrained(full/)`
and `PS3VisionModel.save_pretrained(vision/)` with the same weights, unedited. The text tower
uses SigLIP2's `act_kwargs: {approximate: tanh}`.

Then, in float32 on the CPU, it records the package's outputs in `expected.safetensors`:
- `image_u8` [224, 224, 3]: a deterministic RGB image; the model input is it normalised with
  mean = std = 0.5, i.e. what the PS3 processor gives for a 224x224 image;
- `last_hidden_state_look1`, `last_hidden_state_all`: `encode_image(num_look_close=1 / "all")`
  bottom-up;
- `text_ids` [2, 8] and `text_pooled`, `text_prompt`: `encode_text` (pooled output and prompt);
- `last_hidden_state_prompt0`: `encode_image(num_look_close=1, prompt=text_prompt[:1])`
  (top-down).
"""
import inspect
import json
import os
import sys
from functools import partial

import torch
import timm
from timm.models import register_model
from timm.models.vision_transformer import VisionTransformer
from safetensors.torch import save_file

import ps3
from ps3 import PS3Config, PS3Model, PS3VisionModel


@register_model
def vit_ps3test_patch14_siglip_42(pretrained=False, **kwargs):
    kwargs.pop("pretrained_cfg", None)
    kwargs.pop("pretrained_cfg_overlay", None)
    kwargs.pop("cache_dir", None)
    args = dict(patch_size=14, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
                class_token=False, global_pool="map", img_size=42)
    args.update(kwargs)
    block_fn = args.get("block_fn")
    if block_fn is not None:
        # timm 1.0.29 passes block options the package's Block_w_KVCache does not take; they
        # are dropped only at their no-op defaults (attn_layer: timm's plain Attention, which
        # the block replaces with its own KV-cache attention; depth, the block index, unused).
        accepted = set(inspect.signature(block_fn.__init__).parameters)

        def shim(**kw):
            for k in [k for k in kw if k not in accepted]:
                v = kw.pop(k)
                default = (k == "attn_layer" and v is timm.layers.attention.Attention) or k == "depth"
                assert default or v in (None, False, 0, 0.0), f"block option {k}={v!r}"
            return block_fn(**kw)

        args["block_fn"] = shim
    return VisionTransformer(**args)


def main(out):
    torch.manual_seed(0)
    vision = dict(
        model_name="vit_ps3test_patch14_siglip_42",
        hidden_size=32,
        pool="map",
        ps3_scales=[56, 112, 224],
        select_based_on_layer=[0, 1],
        max_select_num=40,
        separate_pos_emb=True,
        highres_selection_feature=True,
        highres_selection_module_hidden_dim=8,
        highres_selection_module_out_dim=8,
        highres_selection_module_depth=1,
        highres_selection_module_kernel_size=28,
        img_size=42,
        # The trunk's sizes, for readers that do not know the registered name.
        embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0,
    )
    text = dict(
        output_dim=32, prompt_proj_dim=32, context_length=8, vocab_size=64,
        hf_tokenizer_name="timm/ViT-SO400M-14-SigLIP2-378",
        tokenizer_kwargs={"clean": "canonicalize"},
        width=32, heads=2, layers=1, mlp_ratio=2.0, no_causal_mask=True, proj_bias=True,
        pool_type="last", norm_kwargs={"eps": 1e-6}, act_kwargs={"approximate": "tanh"},
    )
    model = PS3Model(PS3Config(vision_config=vision, text_config=text)).eval()
    # Random weights of a larger spread than the init, so every part matters.
    with torch.no_grad():
        g = torch.Generator().manual_seed(1)
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.5 if p.dim() > 1 else 0.1)
                    + (1.0 if name.endswith("norm.weight") or ".ln" in name and name.endswith("weight") else 0.0))
    model.save_pretrained(os.path.join(out, "full"))
    vmodel = PS3VisionModel(model.config.vision_config).eval()
    vmodel.vision_model.load_state_dict(model.vision_model.state_dict())
    vmodel.save_pretrained(os.path.join(out, "vision"))

    g = torch.Generator().manual_seed(2)
    yy, xx = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    base = torch.stack([(xx * 255) // 223, (yy * 255) // 223, ((xx + yy) * 255) // 446]).to(torch.uint8)
    noise = torch.randint(0, 60, (3, 224, 224), generator=g, dtype=torch.uint8)
    img = (base // 2 + noise).clamp(0, 255).to(torch.uint8)
    x = ((img.float() / 255.0 - 0.5) / 0.5)[None]
    ids = torch.randint(1, 64, (2, 8), generator=g)
    with torch.no_grad():
        look1 = model.encode_image(x, num_look_close=1).last_hidden_state
        alls = model.encode_image(x, num_look_close="all").last_hidden_state
        t = model.encode_text(ids)
        v1 = vmodel(x, num_look_close=1).last_hidden_state
        topdown = model.encode_image(x, num_look_close=1, prompt=t.prompt[:1]).last_hidden_state
    assert torch.equal(v1, look1), "the vision-only model differs from the full one"
    save_file({
        "image_u8": img.permute(1, 2, 0).contiguous(),
        "last_hidden_state_look1": look1.contiguous(),
        "last_hidden_state_all": alls.contiguous(),
        "text_ids": ids.to(torch.int32),
        "text_pooled": t.pooled_output.contiguous(),
        "text_prompt": t.prompt.contiguous(),
        "last_hidden_state_prompt0": topdown.contiguous(),
    }, os.path.join(out, "expected.safetensors"))
    with open(os.path.join(out, "versions.json"), "w") as f:
        json.dump({"torch": torch.__version__, "timm": timm.__version__,
                   "transformers": __import__("transformers").__version__}, f, indent=2)
        f.write("\n")
    print("look1", tuple(look1.shape), "all", tuple(alls.shape))


if __name__ == "__main__":
    main(sys.argv[1])
