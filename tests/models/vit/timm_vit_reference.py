#!/usr/bin/env python3
"""timm's VisionTransformer forward (timm/models/vision_transformer.py: PatchEmbed, _pos_embed, Block with
LayerScale, Attention, Mlp / GluMlp(SwiGLUPacked) / SwiGLU, norm / fc_norm, global_pool_nlc) in float64 numpy, read
from a timm hub directory (config.json + model.safetensors), for the ViT tile encoder's test: timm itself needs
torch, which this machine's python lacks.

  timm_vit_reference.py MODEL_DIR PIXELS_FILE BATCH        # PIXELS_FILE: uint8 [B,3,S,S]; prints the features as JSON
"""
import json
import math
import os
import struct
import sys

import numpy as np

DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[base + begin:base + end], dtype=DTYPES[info["dtype"]])
        out[name] = array.reshape(info["shape"]).astype(np.float64)
    return out


def layer_norm(x, w, b, eps=1e-6):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


erf = np.vectorize(math.erf)


def gelu(x):
    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


def silu(x):
    return x / (1.0 + np.exp(-x))


def linear(x, t, name):
    y = x @ t[name + ".weight"].T
    return y + t[name + ".bias"] if name + ".bias" in t else y


def attention(x, t, p, heads):
    B, N, C = x.shape
    qkv = linear(x, t, p + "qkv").reshape(B, N, 3, heads, C // heads).transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0], qkv[1], qkv[2]
    scores = q @ k.transpose(0, 1, 3, 2) * (C // heads) ** -0.5
    scores = np.exp(scores - scores.max(-1, keepdims=True))
    scores /= scores.sum(-1, keepdims=True)
    out = (scores @ v).transpose(0, 2, 1, 3).reshape(B, N, C)
    return linear(out, t, p + "proj")


def mlp(x, t, p):
    if p + "fc1_g.weight" in t:  # SwiGLU
        return linear(silu(linear(x, t, p + "fc1_g")) * linear(x, t, p + "fc1_x"), t, p + "fc2")
    h = linear(x, t, p + "fc1")
    if t[p + "fc2.weight"].shape[1] * 2 == h.shape[-1]:  # SwiGLUPacked: GluMlp(gate_last=False, act SiLU)
        x1, x2 = np.split(h, 2, axis=-1)
        return linear(silu(x1) * x2, t, p + "fc2")
    return linear(gelu(h), t, p + "fc2")


def normalise(pixels, mean, std):
    return (pixels / 255.0 - np.array(mean).reshape(1, 3, 1, 1)) / np.array(std).reshape(1, 3, 1, 1)


def patch_embed(t, x):
    """PatchEmbed: normalised pixels [B,3,S,S] -> patch tokens [B, (S/P)^2, W]."""
    w = t["patch_embed.proj.weight"]
    width, _, P, _ = w.shape
    B, _, S, _ = x.shape
    g = S // P
    patches = x.reshape(B, 3, g, P, g, P).transpose(0, 2, 4, 1, 3, 5).reshape(B, g * g, 3 * P * P)
    return patches @ w.reshape(width, -1).T + t["patch_embed.proj.bias"]


def blocks(t, x, heads):
    depth = 0
    while f"blocks.{depth}.norm1.weight" in t:
        depth += 1
    for i in range(depth):
        p = f"blocks.{i}."
        ls1 = t.get(p + "ls1.gamma", 1.0)
        ls2 = t.get(p + "ls2.gamma", 1.0)
        x = x + ls1 * attention(layer_norm(x, t[p + "norm1.weight"], t[p + "norm1.bias"]), t, p + "attn.", heads)
        x = x + ls2 * mlp(layer_norm(x, t[p + "norm2.weight"], t[p + "norm2.bias"]), t, p + "mlp.")
    return x


def forward(t, cfg, pixels):
    args = cfg.get("model_args", {})
    pretrained = cfg.get("pretrained_cfg", {})
    x = normalise(pixels, pretrained.get("mean", [0.485, 0.456, 0.406]), pretrained.get("std", [0.229, 0.224, 0.225]))
    B = x.shape[0]
    x = patch_embed(t, x)
    width = x.shape[-1]
    prefix = []
    if "cls_token" in t:
        prefix.append(np.broadcast_to(t["cls_token"], (B, 1, width)))
    if "reg_token" in t:
        prefix.append(np.broadcast_to(t["reg_token"], (B,) + t["reg_token"].shape[1:]))
    # As timm's architectures set it: the DINOv2 ones with registers have position embeddings for the patches only.
    if args.get("no_embed_class", "reg4_dinov2" in cfg.get("architecture", "")):
        x = np.concatenate(prefix + [x + t["pos_embed"]], axis=1)
    else:
        x = np.concatenate(prefix + [x], axis=1) + t["pos_embed"]
    x = blocks(t, x, args["num_heads"])
    pool = args.get("global_pool", cfg.get("global_pool", "token"))
    n_prefix = len([1 for name in ("cls_token",) if name in t]) + (t["reg_token"].shape[1] if "reg_token" in t else 0)
    if pool == "avg":  # fc_norm after the pooling
        return layer_norm(x[:, n_prefix:].mean(1), t["fc_norm.weight"], t["fc_norm.bias"])
    x = layer_norm(x, t["norm.weight"], t["norm.bias"])
    if pool == "token":
        return x[:, 0]
    assert pool == "", pool  # no pooling in timm: Virchow's card concatenates the class token and the patch mean
    return np.concatenate([x[:, 0], x[:, n_prefix:].mean(1)], axis=-1)


def print_features(forward_fn, size):
    """The main of a reference reading MODEL_DIR/model.safetensors and uint8 pixels [BATCH,3,size,size]."""
    model_dir, pixels_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    pixels = np.fromfile(pixels_file, dtype=np.uint8).astype(np.float64).reshape(batch, 3, size, size)
    print(json.dumps(forward_fn(t, pixels).tolist()))


def main():
    model_dir, pixels_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = json.load(f)
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    pixels = np.fromfile(pixels_file, dtype=np.uint8).astype(np.float64)
    size = int(round(math.sqrt(pixels.size / (3 * batch))))
    features = forward(t, cfg, pixels.reshape(batch, 3, size, size))
    print(json.dumps(features.tolist()))


if __name__ == "__main__":
    main()
