#!/usr/bin/env python3
"""transformers' ViTModel, Dinov2Model and Dinov2WithRegistersModel forward (models/vit/modeling_vit.py,
models/dinov2/modeling_dinov2.py: embeddings with DINOv2's bicubic position resampling, pre-norm layers with
LayerScale, GELU MLP or packed SwiGLU, the final layernorm) in float64 numpy, read from a hub directory
(config.json, model.safetensors, preprocessor_config.json), for the tests of pathvlm's transformers ViT loader:
transformers needs torch, which this machine's python lacks. torch's bicubic interpolation is written out here too.

  hf_vit_reference.py MODEL_DIR PIXELS_FILE BATCH [POOL]   # PIXELS_FILE: uint8 [B,3,S,S] at the input size;
                                                           # POOL: token (default), avg, token+avg, or hidden:K
                                                           # (hidden_states[K], each image's rows flattened);
                                                           # prints JSON
MODEL_DIR may also be a LlavaForConditionalGeneration directory whose vision_config is one of these: its tower
(vision_tower.*) is run, as LlavaModel runs it.
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timm_vit_reference import gelu, layer_norm, linear, read_safetensors, silu  # noqa: E402


def keys_cubic(x, a):
    """Keys' cubic convolution kernel: torch's bicubic uses a = -0.75, its antialiased bicubic (PIL's) a = -0.5."""
    x = abs(x)
    if x < 1:
        return ((a + 2) * x - (a + 3)) * x * x + 1
    if x < 2:
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return 0.0


def cubic_weights(frac, a=-0.75):
    """torch's upsample_bicubic2d coefficients for the four taps around a source position."""
    return np.array([keys_cubic(frac + 1, a), keys_cubic(frac, a), keys_cubic(1 - frac, a), keys_cubic(2 - frac, a)])


def bicubic_axis(size_in, size_out):
    """[size_out, size_in] matrix of torch's bicubic resampling along one axis (align_corners False, no antialias,
    output size given: scale = in / out, source = scale * (dst + 0.5) - 0.5, taps clamped to the edges)."""
    m = np.zeros((size_out, size_in))
    scale = size_in / size_out
    for dst in range(size_out):
        src = scale * (dst + 0.5) - 0.5
        base = math.floor(src)
        for tap, weight in zip(range(base - 1, base + 3), cubic_weights(src - base)):
            m[dst, min(max(tap, 0), size_in - 1)] += weight
    return m


def antialiased_bicubic_axis(size_in, size_out):
    """[size_out, size_in] matrix of torch's antialiased bicubic resampling along one axis (PIL's filter: Keys' cubic
    with a = -0.5, widened by the scale when shrinking; source window around scale * (dst + 0.5); weights normalised
    to sum 1)."""
    m = np.zeros((size_out, size_in))
    scale = size_in / size_out
    support = 2.0 * scale if scale >= 1.0 else 2.0
    inverse = 1.0 / scale if scale >= 1.0 else 1.0
    for dst in range(size_out):
        center = scale * (dst + 0.5)
        first = max(int(center - support + 0.5), 0)
        last = min(int(center + support + 0.5), size_in)
        for src in range(first, last):
            m[dst, src] = keys_cubic((src - center + 0.5) * inverse, -0.5)
        m[dst] /= m[dst].sum()
    return m


def position_embeddings(t, p, grid, model_type):
    pos = t[p + "embeddings.position_embeddings"]
    width = pos.shape[-1]
    old = int(round(math.sqrt(pos.shape[1] - 1)))
    if old == grid:
        return pos
    if model_type == "vit":
        raise NotImplementedError("ViTModel at another input size")
    # Dinov2Model resamples plainly, Dinov2WithRegistersModel with antialiasing.
    m = (bicubic_axis if model_type == "dinov2" else antialiased_bicubic_axis)(old, grid)
    patches = pos[0, 1:].reshape(old, old, width)
    patches = np.einsum("ya,xb,abw->yxw", m, m, patches).reshape(1, grid * grid, width)
    return np.concatenate([pos[:, :1], patches], axis=1)


def attention(x, t, p, heads):
    B, N, C = x.shape
    d = C // heads

    def split(name):
        return linear(x, t, p + "attention.attention." + name).reshape(B, N, heads, d).transpose(0, 2, 1, 3)

    q, k, v = split("query"), split("key"), split("value")
    scores = q @ k.transpose(0, 1, 3, 2) * d ** -0.5
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    out = (scores @ v).transpose(0, 2, 1, 3).reshape(B, N, C)
    return linear(out, t, p + "attention.output.dense")


def forward(t, cfg, pre, pixels, pool="token"):
    model_type = cfg["model_type"]
    vit = model_type == "vit"
    base = ("vit" if vit else model_type) + "."
    p = "" if "embeddings.patch_embeddings.projection.weight" in t else base
    eps = cfg.get("layer_norm_eps", 1e-12 if vit else 1e-6)
    mean = np.array(pre["image_mean"]).reshape(1, 3, 1, 1)
    std = np.array(pre["image_std"]).reshape(1, 3, 1, 1)
    x = (pixels / 255.0 - mean) / std
    w = t[p + "embeddings.patch_embeddings.projection.weight"]
    width, _, P, _ = w.shape
    B, _, S, _ = x.shape
    g = S // P
    patches = x.reshape(B, 3, g, P, g, P).transpose(0, 2, 4, 1, 3, 5).reshape(B, g * g, 3 * P * P)
    x = patches @ w.reshape(width, -1).T + t[p + "embeddings.patch_embeddings.projection.bias"]
    x = np.concatenate([np.broadcast_to(t[p + "embeddings.cls_token"], (B, 1, width)), x], axis=1)
    x = x + position_embeddings(t, p, g, model_type)
    registers = 0
    if model_type == "dinov2_with_registers":
        reg = t[p + "embeddings.register_tokens"]
        registers = reg.shape[1]
        x = np.concatenate([x[:, :1], np.broadcast_to(reg, (B,) + reg.shape[1:]), x[:, 1:]], axis=1)
    heads = cfg.get("num_attention_heads", 12)
    hidden_states = [x]
    i = 0
    while f"{p}encoder.layer.{i}.attention.attention.query.weight" in t:
        b = f"{p}encoder.layer.{i}."
        if vit:
            h = x + attention(layer_norm(x, t[b + "layernorm_before.weight"], t[b + "layernorm_before.bias"], eps), t,
                              b, heads)
            y = layer_norm(h, t[b + "layernorm_after.weight"], t[b + "layernorm_after.bias"], eps)
            x = h + linear(gelu(linear(y, t, b + "intermediate.dense")), t, b + "output.dense")
        else:
            a = attention(layer_norm(x, t[b + "norm1.weight"], t[b + "norm1.bias"], eps), t, b, heads)
            h = x + a * t[b + "layer_scale1.lambda1"]
            y = layer_norm(h, t[b + "norm2.weight"], t[b + "norm2.bias"], eps)
            if b + "mlp.weights_in.weight" in t:
                x1, x2 = np.split(linear(y, t, b + "mlp.weights_in"), 2, axis=-1)
                m = linear(silu(x1) * x2, t, b + "mlp.weights_out")
            else:
                m = linear(gelu(linear(y, t, b + "mlp.fc1")), t, b + "mlp.fc2")
            x = h + m * t[b + "layer_scale2.lambda1"]
        hidden_states.append(x)
        i += 1
    if pool.startswith("hidden:"):
        return hidden_states[int(pool[len("hidden:"):])].reshape(B, -1)
    x = layer_norm(x, t[p + "layernorm.weight"], t[p + "layernorm.bias"], eps)
    patch_mean = x[:, 1 + registers:].mean(1)
    return {"token": x[:, 0], "avg": patch_mean, "token+avg": np.concatenate([x[:, 0], patch_mean], axis=-1)}[pool]


def main():
    model_dir, pixels_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    pool = sys.argv[4] if len(sys.argv) > 4 else "token"
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    with open(os.path.join(model_dir, "preprocessor_config.json")) as f:
        pre = json.load(f)
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    if cfg["model_type"] == "llava":
        cfg = cfg["vision_config"]
        t = {name[len("vision_tower."):]: v for name, v in t.items() if name.startswith("vision_tower.")}
    pixels = np.fromfile(pixels_file, dtype=np.uint8).astype(np.float64)
    size = int(round(math.sqrt(pixels.size / (3 * batch))))
    print(json.dumps(forward(t, cfg, pre, pixels.reshape(batch, 3, size, size), pool).tolist()))


if __name__ == "__main__":
    main()
