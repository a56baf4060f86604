#!/usr/bin/env python3
"""CONCH's tile features in float64 numpy, as CLAM and TRIDENT compute them with torch (which this machine's python
lacks), from safetensors in the names of the two releases' state dicts:
  v1   (mahmoodlab/CONCH, open_clip_custom): visual.trunk = timm VisionTransformer built for 448 px;
       visual.attn_pool_contrast = AttentionalPooler over nn.MultiheadAttention(kdim=vdim=trunk width);
       encode_image(proj_contrast=False, normalize=False) = ln_contrast(attn_pool_contrast(trunk tokens)[:, 0]);
       with proj_contrast=True that @ visual.proj_contrast. OpenAI mean/std.
  v1.5 (TRIDENT's model_zoo/conchv1_5): trunk = iBOT/timm VisionTransformer built for 224 px whose forward_features
       interpolates the position embeddings to the input (bicubic, scale_factor (w0 + 0.1) / sqrt(N)); pooler with
       to_q / to_kv / to_out and no biases; ImageNet mean/std.
Both resample stored position embeddings of another grid to the model's first (timm's resample_abs_pos_embed,
bilinear, antialias off). The interpolations follow torch's upsample kernels (align_corners=False; a given
scale_factor sets the source step as 1/scale_factor; bicubic A = -0.75 with clamped taps).

  conch_reference.py MODEL_DIR PIXELS_FILE BATCH [proj]  # PIXELS_FILE: uint8 [B,3,448,448]; prints the features as JSON
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vit"))
from timm_vit_reference import blocks, layer_norm, normalise, patch_embed, print_features  # noqa: E402

INPUT = 448
POOLER_HEADS = 8
HEADS = {192: 3, 384: 6, 768: 12, 1024: 16}


def bilinear_matrix(n_in, n_out):
    m = np.zeros((n_out, n_in))
    scale = n_in / n_out
    for o in range(n_out):
        src = max(scale * (o + 0.5) - 0.5, 0.0)
        i0 = min(int(math.floor(src)), n_in - 1)
        i1 = min(i0 + 1, n_in - 1)
        frac = min(max(src - i0, 0.0), 1.0)
        m[o, i0] += 1 - frac
        m[o, i1] += frac
    return m


def bicubic_matrix(n_in, scale_factor):
    a = -0.75
    n_out = int(math.floor(n_in * scale_factor))
    m = np.zeros((n_out, n_in))
    for o in range(n_out):
        src = (o + 0.5) / scale_factor - 0.5
        i = min(int(math.floor(src)), n_in - 1)
        t = min(max(src - i, 0.0), 1.0)
        near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731
        far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731
        for tap, w in zip(range(i - 1, i + 3), (far(t + 1), near(t), near(1 - t), far(2 - t))):
            m[o, min(max(tap, 0), n_in - 1)] += w
    return m


def resample(positions, matrix):
    """Class token + square patch grid [1, 1+g*g, W]: the grid resampled along both axes by `matrix`."""
    g = int(round(math.sqrt(positions.shape[1] - 1)))
    grid = positions[0, 1:].reshape(g, g, -1)
    out = np.einsum("ai,bj,ijw->abw", matrix, matrix, grid)
    return np.concatenate([positions[:, :1], out.reshape(1, -1, positions.shape[2])], axis=1)


def softmax(x):
    x = np.exp(x - x.max(-1, keepdims=True))
    return x / x.sum(-1, keepdims=True)


def pool(t, p, tokens, v1):
    """The attentional pooler's first query over `tokens` [B,T,C] -> [B,D]."""
    ln = lambda x, name: layer_norm(x, t[p + name + ".weight"], t[p + name + ".bias"], eps=1e-5)  # noqa: E731
    q = ln(t[p + "query"], "ln_q")
    x = ln(tokens, "ln_k")
    if v1:  # nn.MultiheadAttention with kdim = vdim = C
        bq, bk, bv = np.split(t[p + "attn.in_proj_bias"], 3)
        q = q @ t[p + "attn.q_proj_weight"].T + bq
        k = x @ t[p + "attn.k_proj_weight"].T + bk
        v = x @ t[p + "attn.v_proj_weight"].T + bv
    else:
        q = q @ t[p + "to_q.weight"].T
        k, v = np.split(x @ t[p + "to_kv.weight"].T, 2, axis=-1)
    B, T, D = k.shape
    d = D // POOLER_HEADS
    qh = q.reshape(-1, POOLER_HEADS, d).transpose(1, 0, 2)               # [H,Q,d]
    kh = k.reshape(B, T, POOLER_HEADS, d).transpose(0, 2, 1, 3)          # [B,H,T,d]
    vh = v.reshape(B, T, POOLER_HEADS, d).transpose(0, 2, 1, 3)
    out = softmax(qh[None] @ kh.transpose(0, 1, 3, 2) * d ** -0.5) @ vh  # [B,H,Q,d]
    out = out.transpose(0, 2, 1, 3).reshape(B, -1, D)
    out = out @ t[p + ("attn.out_proj.weight" if v1 else "to_out.weight")].T
    if v1:
        out = out + t[p + "attn.out_proj.bias"]
    return out[:, 0]


def forward(all_tensors, pixels):
    v1 = "visual.attn_pool_contrast.query" in all_tensors
    prefix = "visual." if v1 else ""
    trunk = {k[len(prefix + "trunk."):]: v for k, v in all_tensors.items() if k.startswith(prefix + "trunk.")}
    if v1:
        mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    else:
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    x = patch_embed(trunk, normalise(pixels, mean, std))
    B, _, width = x.shape
    P = trunk["patch_embed.proj.weight"].shape[-1]
    model_grid = (INPUT if v1 else 224) // P
    positions = trunk["pos_embed"]
    stored_grid = int(round(math.sqrt(positions.shape[1] - 1)))
    if stored_grid != model_grid:
        positions = resample(positions, bilinear_matrix(stored_grid, model_grid))
    input_grid = INPUT // P
    if input_grid != model_grid:
        positions = resample(positions, bicubic_matrix(model_grid, (input_grid + 0.1) / model_grid))
    x = np.concatenate([np.broadcast_to(trunk["cls_token"], (B, 1, width)), x], axis=1) + positions
    x = blocks(trunk, x, HEADS[width])
    x = layer_norm(x, trunk["norm.weight"], trunk["norm.bias"])
    pooled = pool(all_tensors, prefix + "attn_pool_contrast.", x, v1)
    features = layer_norm(pooled, all_tensors[prefix + "ln_contrast.weight"], all_tensors[prefix + "ln_contrast.bias"],
                          eps=1e-5)
    return features @ all_tensors["visual.proj_contrast"] if PROJECTED else features


PROJECTED = len(sys.argv) > 4 and sys.argv[4] == "proj"


if __name__ == "__main__":
    print_features(forward, INPUT)
