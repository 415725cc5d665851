"""Writes tests/testdata/ps3_package/variants/: the config.json of each released PS3 variant as
the PS3 package's configuration code writes it, and the package's tensor names and shapes.

    PYTHONPATH=<dir with the reference's ps3/> python3 tests/testdata/ps3_package/make_variants.py \
        tests/testdata/ps3_package/variants

For each variant the reference's open_clip model config (train/src/open_clip/model_configs;
PS3-4K-SigLIP2, which has none there, is PS3-1.5K-SigLIP2 with PS3-4K-SigLIP's scales) becomes
`PS3Config(vision_config=..., text_config=...)` the way the reference converter
(`save_ps3_hf_ckpt.py`) fills it, `config.save_pretrained(<variant>/)` writes config.json, and
`PS3Model(config)` is built on PyTorch's meta device (no memory, no weights) to list its
`state_dict()` as "<name> [<dims>] float32" lines in `keys.txt` (SigLIP2 variants only).
timm 1.0.29 passes block options the package's Block_w_KVCache does not take; a shim drops
them at their no-op defaults (as make.py does).
"""
import inspect
import os
import sys

import torch
import timm
import timm.layers

from ps3 import PS3Config, PS3Model

VISION = dict(hidden_size=1152, pool="map", select_based_on_layer=[0, 9, 18, 26],
              max_select_num=2560, separate_pos_emb=True, highres_selection_feature=True)
TEXT = dict(output_dim=1152, prompt_proj_dim=1152, context_length=64,
            tokenizer_kwargs={"clean": "canonicalize"}, width=1152, heads=16, layers=27,
            mlp_ratio=3.7362, no_causal_mask=True, proj_bias=True, pool_type="last",
            norm_kwargs={"eps": 1e-6})
SIGLIP = dict(vocab_size=32000, hf_tokenizer_name="timm/ViT-B-16-SigLIP")
SIGLIP2 = dict(vocab_size=256000, hf_tokenizer_name="timm/ViT-SO400M-14-SigLIP2-378",
               act_kwargs={"approximate": "tanh"})
VARIANTS = {
    "PS3-1.5K-SigLIP": ("vit_so400m_patch14_siglip_384", [378, 756, 1512], SIGLIP),
    "PS3-4K-SigLIP": ("vit_so400m_patch14_siglip_384", [378, 756, 1512, 3780], SIGLIP),
    "PS3-1.5K-SigLIP2": ("vit_so400m_patch14_siglip_378", [378, 756, 1512], SIGLIP2),
    "PS3-4K-SigLIP2": ("vit_so400m_patch14_siglip_378", [378, 756, 1512, 3780], SIGLIP2),
}

_create = timm.create_model


def create_model(name, **kwargs):
    block_fn = kwargs.get("block_fn")
    if block_fn is not None:
        accepted = set(inspect.signature(block_fn.__init__).parameters)

        def shim(**kw):
            for k in [k for k in kw if k not in accepted]:
                v = kw.pop(k)
                default = (k == "attn_layer" and v is timm.layers.attention.Attention) or k == "depth"
                assert default or v in (None, False, 0, 0.0), f"block option {k}={v!r}"
            return block_fn(**kw)

        kwargs["block_fn"] = shim
    return _create(name, **kwargs)


timm.create_model = create_model


def main(out):
    for name, (trunk, scales, text) in VARIANTS.items():
        config = PS3Config(vision_config=dict(VISION, model_name=trunk, ps3_scales=scales),
                           text_config=dict(TEXT, **text))
        folder = os.path.join(out, name)
        config.save_pretrained(folder)
        if "SigLIP2" not in name:
            continue
        with torch.device("meta"):
            model = PS3Model(config)
        with open(os.path.join(folder, "keys.txt"), "w") as f:
            for k, v in model.state_dict().items():
                f.write(f"{k} [{', '.join(str(d) for d in v.shape)}] float32\n")
        print(name, len(model.state_dict()), "tensors")


if __name__ == "__main__":
    main(sys.argv[1])
