#!/usr/bin/env python3
"""Checks the numpy transformers-ViT reference (tests/models/vit/hf_vit_reference.py, which the CPU tests compare
pathvlm's transformers tile encoder with) against transformers itself on random weights: ViTModel (Phikon's layout,
an unusual layer_norm_eps), Dinov2Model with a GELU MLP (Phikon-v2's) and with the packed SwiGLU at another input
size than its position embeddings (Midnight's, resampled down and up), Dinov2WithRegistersModel (its antialiased
resampling too); each pooling.

  check_hf_vit.py          # prints one line per comparison and a summary last; exit 1 on a mismatch
"""
import os
import sys

import numpy as np
import torch

from check_timm_vit import DEPTH, HEADS, HIDDEN, IMAGE, MEAN, PATCH, ROOT, STD, WIDTH  # the tests' sizes

sys.path.insert(0, os.path.join(ROOT, "tests/models/vit"))
import hf_vit_reference as reference  # noqa: E402


def random_model(rng, model_type, swiglu=False, registers=0, grid=IMAGE // PATCH, eps=None):
    t = {}

    def add(name, shape, scale=0.2, offset=0.0):
        t[name] = (rng.standard_normal(shape) * scale + offset).astype(np.float32)

    def add_linear(name, out, inp):
        add(name + ".weight", (out, inp))
        add(name + ".bias", (out,))

    def add_norm(name):
        add(name + ".weight", (WIDTH,), 0.1, 1.0)
        add(name + ".bias", (WIDTH,), 0.1)

    vit = model_type == "vit"
    add("embeddings.cls_token", (1, 1, WIDTH), 1.0)
    if registers:
        add("embeddings.register_tokens", (1, registers, WIDTH), 1.0)
    add("embeddings.position_embeddings", (1, grid * grid + 1, WIDTH), 0.5)
    add("embeddings.patch_embeddings.projection.weight", (WIDTH, 3, PATCH, PATCH), 0.05)
    add("embeddings.patch_embeddings.projection.bias", (WIDTH,))
    for i in range(DEPTH):
        b = f"encoder.layer.{i}."
        add_norm(b + ("layernorm_before" if vit else "norm1"))
        add_norm(b + ("layernorm_after" if vit else "norm2"))
        for part in ("query", "key", "value"):
            add_linear(b + "attention.attention." + part, WIDTH, WIDTH)
        add_linear(b + "attention.output.dense", WIDTH, WIDTH)
        if vit:
            add_linear(b + "intermediate.dense", HIDDEN, WIDTH)
            add_linear(b + "output.dense", WIDTH, HIDDEN)
            continue
        add_linear(b + ("mlp.weights_in" if swiglu else "mlp.fc1"), 2 * HIDDEN if swiglu else HIDDEN, WIDTH)
        add_linear(b + ("mlp.weights_out" if swiglu else "mlp.fc2"), WIDTH, HIDDEN)
        add(b + "layer_scale1.lambda1", (WIDTH,), 0.3, 1.0)
        add(b + "layer_scale2.lambda1", (WIDTH,), 0.3, 1.0)
    add_norm("layernorm")
    cfg = {"model_type": model_type, "hidden_size": WIDTH, "num_hidden_layers": DEPTH, "num_attention_heads": HEADS,
           "hidden_act": "gelu", "image_size": grid * PATCH, "patch_size": PATCH, "qkv_bias": True}
    if eps is not None:
        cfg["layer_norm_eps"] = eps
    if vit:
        cfg["intermediate_size"] = HIDDEN
    else:
        cfg.update(use_swiglu_ffn=swiglu, layerscale_value=1.0, mlp_ratio=HIDDEN / WIDTH)
        if swiglu:  # Dinov2SwiGLUFFN's width: (int(W * ratio * 2/3) + 7) // 8 * 8 == HIDDEN
            cfg["mlp_ratio"] = 2.25
        if registers:
            cfg["num_register_tokens"] = registers
    return t, cfg


def transformers_model(t, cfg):
    import transformers
    kind = {"vit": ("ViTConfig", "ViTModel"), "dinov2": ("Dinov2Config", "Dinov2Model"),
            "dinov2_with_registers": ("Dinov2WithRegistersConfig", "Dinov2WithRegistersModel")}[cfg["model_type"]]
    args = {k: v for k, v in cfg.items() if k != "model_type"}
    config = getattr(transformers, kind[0])(**args)
    config._attn_implementation = "eager"
    model = getattr(transformers, kind[1])(config, **({"add_pooling_layer": False} if kind[1] == "ViTModel" else {}))
    model = model.double().eval()
    state = {k: torch.from_numpy(v).double() for k, v in t.items()}
    for name, value in model.state_dict().items():  # the mask token: for masked pre-training, unused here
        if name not in state and name.endswith("mask_token"):
            state[name] = value
    model.load_state_dict(state, strict=True)
    return model


def main():
    rng = np.random.default_rng(20261207)
    pixels = rng.integers(0, 256, (3, 3, IMAGE, IMAGE)).astype(np.uint8)
    pre = {"image_mean": MEAN, "image_std": STD}
    layouts = {
        "phikon (ViTModel)": dict(model_type="vit", eps=0.1),
        "phikon-v2 (Dinov2Model)": dict(model_type="dinov2"),
        "midnight (Dinov2Model, SwiGLU, 7x7 positions at 4x4)": dict(model_type="dinov2", swiglu=True, grid=7),
        "Dinov2Model, 3x3 positions at 4x4": dict(model_type="dinov2", grid=3),
        "Dinov2WithRegistersModel": dict(model_type="dinov2_with_registers", registers=4),
        "Dinov2WithRegistersModel, 7x7 positions at 4x4 (antialiased)": dict(model_type="dinov2_with_registers",
                                                                              registers=4, grid=7),
        "Dinov2WithRegistersModel, 3x3 positions at 4x4 (antialiased)": dict(model_type="dinov2_with_registers",
                                                                              registers=4, grid=3),
    }
    worst, lines, failed = 0.0, [], 0
    x = (torch.from_numpy(pixels).double() / 255.0 - torch.tensor(MEAN, dtype=torch.float64).view(1, 3, 1, 1)) / \
        torch.tensor(STD, dtype=torch.float64).view(1, 3, 1, 1)
    for name, layout in layouts.items():
        t, cfg = random_model(rng, **layout)
        model = transformers_model(t, cfg)
        with torch.no_grad():
            hidden = model(pixel_values=x).last_hidden_state.numpy()
        prefix = 1 + layout.get("registers", 0)
        theirs = {"token": hidden[:, 0], "token+avg": np.concatenate([hidden[:, 0], hidden[:, prefix:].mean(1)], -1)}
        ref_t = {k: v.astype(np.float64) for k, v in t.items()}
        for pool, got in theirs.items():
            expected = reference.forward(ref_t, cfg, pre, pixels.astype(np.float64), pool)
            diff = float(np.abs(got - expected).max())
            worst = max(worst, diff)
            ok = diff < 1e-5  # float64 weights; transformers takes the softmax and the resampling in float32
            failed += not ok
            lines.append(f"{name} {pool}: max |diff| {diff:.2e} {'ok' if ok else 'MISMATCH'}")
    print("\n".join(lines))
    print(f"transformers ViT reference vs ViTModel / Dinov2Model / Dinov2WithRegistersModel: {len(lines)} comparisons, "
          f"max |diff| {worst:.1e} (float64 weights), {failed} mismatches")
    return 1 if failed or not lines else 0


if __name__ == "__main__":
    sys.exit(main())
