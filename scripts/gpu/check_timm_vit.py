#!/usr/bin/env python3
"""Checks the numpy timm ViT reference (tests/models/vit/timm_vit_reference.py, which the CPU tests compare
pathvlm's timm tile encoder with) against real implementations on random weights: timm itself when it is installed
(every layout of the tests), and always transformers' Dinov2Model, which is the same network for a class-token ViT
with LayerScale and a GELU or packed-SwiGLU MLP (UNI's and Prov-GigaPath's layouts).

  check_timm_vit.py          # prints one line per comparison and a summary last; exit 1 on a mismatch
"""
import importlib.util
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
spec = importlib.util.spec_from_file_location("timm_vit_reference",
                                              os.path.join(ROOT, "tests/models/vit/timm_vit_reference.py"))
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

WIDTH, DEPTH, HEADS, PATCH, IMAGE, HIDDEN = 32, 2, 4, 8, 32, 48
MEAN, STD = [0.70, 0.58, 0.70], [0.21, 0.23, 0.18]


def random_vit(rng, mlp, reg_tokens=0, no_embed_class=False, layer_scale=True, pool="token"):
    t = {}

    def add(name, shape, scale=0.2, offset=0.0):
        t[name] = (rng.standard_normal(shape) * scale + offset).astype(np.float32)

    grid = IMAGE // PATCH
    add("patch_embed.proj.weight", (WIDTH, 3, PATCH, PATCH), 0.05)
    add("patch_embed.proj.bias", (WIDTH,))
    add("cls_token", (1, 1, WIDTH), 1.0)
    if reg_tokens:
        add("reg_token", (1, reg_tokens, WIDTH), 1.0)
    add("pos_embed", (1, grid * grid + (0 if no_embed_class else 1 + reg_tokens), WIDTH), 0.5)
    for i in range(DEPTH):
        b = f"blocks.{i}."
        for norm in ("norm1", "norm2"):
            add(b + norm + ".weight", (WIDTH,), 0.1, 1.0)
            add(b + norm + ".bias", (WIDTH,), 0.1)
        add(b + "attn.qkv.weight", (3 * WIDTH, WIDTH))
        add(b + "attn.qkv.bias", (3 * WIDTH,))
        add(b + "attn.proj.weight", (WIDTH, WIDTH))
        add(b + "attn.proj.bias", (WIDTH,))
        add(b + "mlp.fc1.weight", (2 * HIDDEN if mlp == "packed" else HIDDEN, WIDTH))
        add(b + "mlp.fc1.bias", (2 * HIDDEN if mlp == "packed" else HIDDEN,))
        add(b + "mlp.fc2.weight", (WIDTH, HIDDEN))
        add(b + "mlp.fc2.bias", (WIDTH,))
        if layer_scale:
            add(b + "ls1.gamma", (WIDTH,), 0.3, 1.0)
            add(b + "ls2.gamma", (WIDTH,), 0.3, 1.0)
    final = "fc_norm" if pool == "avg" else "norm"
    add(final + ".weight", (WIDTH,), 0.1, 1.0)
    add(final + ".bias", (WIDTH,), 0.1)
    args = {"img_size": IMAGE, "patch_size": PATCH, "num_heads": HEADS, "global_pool": pool, "reg_tokens": reg_tokens,
            "no_embed_class": no_embed_class, "num_classes": 0}
    cfg = {"architecture": "vit_base_patch16_224", "model_args": args,
           "pretrained_cfg": {"mean": MEAN, "std": STD}}
    return t, cfg


def reference_features(t, cfg, pixels):
    return reference.forward({k: v.astype(np.float64) for k, v in t.items()}, cfg, pixels.astype(np.float64))


def normalised(pixels):
    mean = torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    return (torch.from_numpy(pixels).double() / 255.0 - mean) / std


def dinov2_features(t, mlp, pixels):
    from transformers import Dinov2Config, Dinov2Model
    config = Dinov2Config(hidden_size=WIDTH, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
                          mlp_ratio=HIDDEN / WIDTH if mlp == "gelu" else 2.25,  # SwiGLU: (int(72 * 2/3) + 7) // 8 * 8
                          hidden_act="gelu", layer_norm_eps=1e-6, image_size=IMAGE, patch_size=PATCH, qkv_bias=True,
                          layerscale_value=1.0, use_swiglu_ffn=mlp == "packed")
    model = Dinov2Model(config).double().eval()
    s = {"embeddings.cls_token": t["cls_token"], "embeddings.position_embeddings": t["pos_embed"],
         "embeddings.mask_token": np.zeros((1, WIDTH), np.float32),
         "embeddings.patch_embeddings.projection.weight": t["patch_embed.proj.weight"],
         "embeddings.patch_embeddings.projection.bias": t["patch_embed.proj.bias"],
         "layernorm.weight": t["norm.weight"], "layernorm.bias": t["norm.bias"]}
    for i in range(DEPTH):
        b, h = f"blocks.{i}.", f"encoder.layer.{i}."
        for n in ("norm1", "norm2"):
            s[h + n + ".weight"], s[h + n + ".bias"] = t[b + n + ".weight"], t[b + n + ".bias"]
        for part, w, bias in zip(("query", "key", "value"), np.split(t[b + "attn.qkv.weight"], 3),
                                 np.split(t[b + "attn.qkv.bias"], 3)):
            s[h + f"attention.attention.{part}.weight"], s[h + f"attention.attention.{part}.bias"] = w, bias
        s[h + "attention.output.dense.weight"] = t[b + "attn.proj.weight"]
        s[h + "attention.output.dense.bias"] = t[b + "attn.proj.bias"]
        s[h + "layer_scale1.lambda1"], s[h + "layer_scale2.lambda1"] = t[b + "ls1.gamma"], t[b + "ls2.gamma"]
        names = ("fc1", "fc2") if mlp == "gelu" else ("weights_in", "weights_out")
        for ours, theirs in zip(("fc1", "fc2"), names):
            s[h + f"mlp.{theirs}.weight"] = t[b + f"mlp.{ours}.weight"]
            s[h + f"mlp.{theirs}.bias"] = t[b + f"mlp.{ours}.bias"]
    if "embeddings.mask_token" not in model.state_dict():  # config.use_mask_token false
        del s["embeddings.mask_token"]
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)).double() for k, v in s.items()}, strict=True)
    with torch.no_grad():
        return model(pixel_values=normalised(pixels)).pooler_output.numpy()


def timm_features(t, cfg, mlp, pixels):
    import timm
    from timm.layers import SwiGLUPacked
    args = dict(cfg["model_args"])
    kwargs = dict(img_size=IMAGE, patch_size=PATCH, embed_dim=WIDTH, depth=DEPTH, num_heads=HEADS,
                  mlp_ratio=(2 * HIDDEN if mlp == "packed" else HIDDEN) / WIDTH, num_classes=0,
                  global_pool=args["global_pool"], reg_tokens=args["reg_tokens"],
                  no_embed_class=args["no_embed_class"], init_values=1.0 if "blocks.0.ls1.gamma" in t else None)
    if mlp == "packed":
        kwargs.update(mlp_layer=SwiGLUPacked, act_layer=torch.nn.SiLU)
    model = timm.create_model("vit_base_patch16_224", pretrained=False, **kwargs).double().eval()
    model.load_state_dict({k: torch.from_numpy(v).double() for k, v in t.items()}, strict=True)
    with torch.no_grad():
        out = model(normalised(pixels))
    if args["global_pool"] == "":  # Virchow's card: class token and patch mean
        prefix = 1 + args["reg_tokens"]
        out = torch.cat([out[:, 0], out[:, prefix:].mean(1)], dim=-1)
    return out.numpy()


def main():
    rng = np.random.default_rng(20261207)
    pixels = rng.integers(0, 256, (3, 3, IMAGE, IMAGE)).astype(np.uint8)
    layouts = {
        "uni": dict(mlp="gelu"),
        "gigapath": dict(mlp="packed"),
        "hoptimus": dict(mlp="packed", reg_tokens=4, no_embed_class=True),
        "virchow2": dict(mlp="packed", reg_tokens=4, pool=""),
        "avg": dict(mlp="gelu", layer_scale=False, pool="avg"),
    }
    try:
        import timm  # noqa: F401
        have_timm = True
    except ImportError:
        have_timm = False
    worst, lines, failed = 0.0, [], 0
    for name, layout in layouts.items():
        t, cfg = random_vit(rng, **layout)
        expected = reference_features(t, cfg, pixels)
        peers = []
        if have_timm:
            peers.append(("timm", timm_features(t, cfg, layout["mlp"], pixels)))
        if name in ("uni", "gigapath"):
            peers.append(("transformers Dinov2Model", dinov2_features(t, layout["mlp"], pixels)))
        for peer, got in peers:
            diff = float(np.abs(got - expected).max())
            worst = max(worst, diff)
            ok = diff < 1e-5  # float64 throughout, but transformers' eager attention takes its softmax in float32
            failed += not ok
            lines.append(f"{name} vs {peer}: max |diff| {diff:.2e} {'ok' if ok else 'MISMATCH'}")
    print("\n".join(lines))
    print(f"timm ViT reference vs {'timm and ' if have_timm else ''}Dinov2Model: {len(lines)} comparisons, "
          f"max |diff| {worst:.1e} (float64 weights){'' if have_timm else '; timm not installed'}, {failed} mismatches")
    return 1 if failed or not lines else 0


if __name__ == "__main__":
    sys.exit(main())
