#!/usr/bin/env python3
"""TITAN's slide embedding (MahmoodLab/TITAN, encode_slide_from_patch_features: the vision encoder's forward with
no_proj=True, one slide) in float64 numpy, for the tests of pathvlm's TITAN: TITAN itself needs torch, which this
machine's python lacks. What it computes, in TITAN's order:
  - the feature grid: cells = (coords - coords.min(0)) // patch_size_level0, a [H, W, D] zero grid to which every
    tile's features are added at its cell (index_add_: tiles sharing a cell are summed); cells whose features are all
    zero are background;
  - tokens: a class token, then Linear + GELU of every grid cell in row-major order, background cells then dropped;
  - ALiBi: slopes of TITAN's get_slopes; between the kept cells (x cell, y cell) the bias -slope * Euclidean distance,
    0 in the class token's row and column; each block adds it to the attention scores (scaled_dot_product_attention
    with a float mask);
  - timm blocks (LayerNorm eps 1e-6, packed qkv with bias, GELU MLP), the final norm;
  - attn_pool_contrastive: open_clip's AttentionalPooler, one query, nn.MultiheadAttention (in_proj_weight,
    in_proj_bias, out_proj) with LayerNorms of eps 1e-5; its output is the embedding.
Heads from MODEL_DIR/config.json's vision_config (num_heads, attn_pooler_heads), TITAN's 12 and 8 when absent.

  titan_reference.py MODEL_DIR SLIDES_FILE   # SLIDES_FILE: safetensors of features_I [N,D], coords_I [N,2] and
                                             # patch_I [1] for I = 0, 1, ...; prints the embeddings as JSON
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vit"))
from timm_vit_reference import gelu, layer_norm, linear, read_safetensors  # noqa: E402


def slopes(n):
    """ALiBi's slopes as TITAN's get_slopes recursion gives them."""
    if math.log2(n).is_integer():
        start = 2 ** (-(2 ** -(math.log2(n) - 3)))
        return [start ** (i + 1) for i in range(n)]
    below = 2 ** math.floor(math.log2(n))
    return slopes(below) + slopes(2 * below)[0::2][: n - below]


def softmax(x):
    x = np.exp(x - x.max(-1, keepdims=True))
    return x / x.sum(-1, keepdims=True)


def feature_grid(features, coords, patch):
    cells = (coords - coords.min(0)) // patch
    cells = cells - cells.min(0)
    h, w = cells.max(0) + 1
    grid = np.zeros((h, w, features.shape[1]))
    np.add.at(grid, (cells[:, 0], cells[:, 1]), features)
    tissue = np.any(grid != 0, axis=-1)
    xs, ys = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    return grid, tissue, np.stack([xs[tissue], ys[tissue]], axis=1).astype(np.float64)


def alibi(points, heads):
    distance = np.sqrt(((points[:, None, :] - points[None, :, :]) ** 2).sum(-1))
    n = len(points)
    bias = np.zeros((heads, n + 1, n + 1))
    bias[:, 1:, 1:] = -np.array(slopes(heads))[:, None, None] * distance
    return bias


def block(t, p, x, bias, heads):
    S, C = x.shape
    d = C // heads
    qkv = linear(layer_norm(x, t[p + "norm1.weight"], t[p + "norm1.bias"]), t, p + "attn.qkv")
    q, k, v = (part.reshape(S, heads, d).transpose(1, 0, 2) for part in np.split(qkv, 3, axis=-1))
    attended = softmax(q @ k.transpose(0, 2, 1) * d ** -0.5 + bias) @ v  # [H,S,d]
    x = x + linear(attended.transpose(1, 0, 2).reshape(S, C), t, p + "attn.proj")
    h = linear(layer_norm(x, t[p + "norm2.weight"], t[p + "norm2.bias"]), t, p + "mlp.fc1")
    return x + linear(gelu(h), t, p + "mlp.fc2")


def pool(t, p, x, heads):
    ln = lambda y, name: layer_norm(y, t[p + name + ".weight"], t[p + name + ".bias"], eps=1e-5)  # noqa: E731
    q = ln(t[p + "query"], "ln_q")
    context = ln(x, "ln_k")
    wq, wk, wv = np.split(t[p + "attn.in_proj_weight"], 3)
    bq, bk, bv = np.split(t[p + "attn.in_proj_bias"], 3)
    q, k, v = q @ wq.T + bq, context @ wk.T + bk, context @ wv.T + bv
    C = q.shape[-1]
    d = C // heads
    split = lambda y: y.reshape(-1, heads, d).transpose(1, 0, 2)  # noqa: E731
    out = softmax(split(q) @ split(k).transpose(0, 2, 1) * d ** -0.5) @ split(v)  # [H,1,d]
    out = out.transpose(1, 0, 2).reshape(-1, C)
    return (out @ t[p + "attn.out_proj.weight"].T + t[p + "attn.out_proj.bias"])[0]


def embed(t, vision, features, coords, patch):
    p = "vision_encoder."
    heads = vision.get("num_heads", 12)
    grid, tissue, points = feature_grid(features, coords, patch)
    cells = gelu(grid.reshape(-1, grid.shape[-1]) @ t[p + "patch_embed.0.weight"].T + t[p + "patch_embed.0.bias"])
    x = np.concatenate([t[p + "cls_token"].reshape(1, -1), cells[tissue.reshape(-1)]], axis=0)
    bias = alibi(points, heads)
    depth = 0
    while f"{p}blocks.modules_list.{depth}.norm1.weight" in t:
        x = block(t, f"{p}blocks.modules_list.{depth}.", x, bias, heads)
        depth += 1
    x = layer_norm(x, t[p + "norm.weight"], t[p + "norm.bias"])
    return pool(t, p + "attn_pool_contrastive.", x, vision.get("attn_pooler_heads", 8))


def main():
    model_dir, slides_file = sys.argv[1], sys.argv[2]
    t = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    config_file = os.path.join(model_dir, "config.json")
    vision = json.load(open(config_file)).get("vision_config", {}) if os.path.exists(config_file) else {}
    slides = read_safetensors(slides_file)
    out = []
    i = 0
    while f"features_{i}" in slides:
        coords = slides[f"coords_{i}"].astype(np.int64)
        out.append(embed(t, vision, slides[f"features_{i}"], coords, int(slides[f"patch_{i}"][0])).tolist())
        i += 1
    print(json.dumps(out))


if __name__ == "__main__":
    main()
