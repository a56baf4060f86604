#!/usr/bin/env python3
"""CTransPath's features in float64 numpy, as TRIDENT's `ctranspath` computes them with timm_ctp (timm 0.5.4's
swin_tiny_patch4_window7_224 with TransPath's ConvStem; torch is missing on this machine), from safetensors in that
state dict's names:
  ConvStem:  conv3x3/2 (no bias) -> BatchNorm (eval) -> ReLU -> conv3x3/2 -> BatchNorm -> ReLU -> conv1x1 -> LayerNorm
  stage i:   SwinTransformerBlocks (W-MSA with relative position bias; every other block cyclically shifted by
             window // 2 with the -100 region mask, unless the stage is no larger than a window), then PatchMerging
             (x0 = [0::2, 0::2], x1 = [1::2, 0::2], x2 = [0::2, 1::2], x3 = [1::2, 1::2] -> LayerNorm -> Linear)
  features:  LayerNorm, then the mean over tokens (AdaptiveAvgPool1d), head = Identity
LayerNorm eps 1e-5, BatchNorm eps 1e-5, exact GELU, ImageNet mean/std, 224 px.

  swin_reference.py MODEL_DIR PIXELS_FILE BATCH     # PIXELS_FILE: uint8 [B,3,224,224]; prints the features as JSON
"""
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vit"))
from timm_vit_reference import gelu, layer_norm, normalise, print_features  # noqa: E402

IMAGE = 224


def conv2d(x, w, stride, padding, bias=None):
    """x [B,C,H,W], w [O,C,k,k] -> [B,O,H',W'] (cross-correlation, zero padding)."""
    B, C, H, W = x.shape
    O, _, k, _ = w.shape
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    out = np.zeros((B, O, Ho, Wo))
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + stride * Ho:stride, j:j + stride * Wo:stride]  # [B,C,Ho,Wo]
            out += np.einsum("bchw,oc->bohw", patch, w[:, :, i, j])
    return out if bias is None else out + bias.reshape(1, -1, 1, 1)


def batch_norm(x, t, p):
    shape = (1, -1, 1, 1)
    return ((x - t[p + ".running_mean"].reshape(shape)) / np.sqrt(t[p + ".running_var"].reshape(shape) + 1e-5)
            * t[p + ".weight"].reshape(shape) + t[p + ".bias"].reshape(shape))


def ln(x, t, p):
    return layer_norm(x, t[p + ".weight"], t[p + ".bias"], eps=1e-5)


def window_partition(x, ws):
    B, H, W, C = x.shape
    return x.reshape(B, H // ws, ws, W // ws, ws, C).transpose(0, 1, 3, 2, 4, 5).reshape(-1, ws, ws, C)


def window_reverse(windows, ws, H, W):
    B = windows.shape[0] // ((H // ws) * (W // ws))
    return windows.reshape(B, H // ws, W // ws, ws, ws, -1).transpose(0, 1, 3, 2, 4, 5).reshape(B, H, W, -1)


def relative_position_index(ws):
    coords = np.stack(np.meshgrid(np.arange(ws), np.arange(ws), indexing="ij")).reshape(2, -1)
    rel = (coords[:, :, None] - coords[:, None, :]).transpose(1, 2, 0).copy()
    rel[:, :, 0] += ws - 1
    rel[:, :, 1] += ws - 1
    rel[:, :, 0] *= 2 * ws - 1
    return rel.sum(-1)


def attn_mask(H, W, ws, shift):
    img_mask = np.zeros((1, H, W, 1))
    cnt = 0
    for h in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for w in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img_mask[:, h, w, :] = cnt
            cnt += 1
    mask_windows = window_partition(img_mask, ws).reshape(-1, ws * ws)
    mask = mask_windows[:, None, :] - mask_windows[:, :, None]
    return np.where(mask != 0, -100.0, 0.0)


def block(x, t, p, H, W, heads, ws, shift):
    B, L, C = x.shape
    shortcut = x
    x = ln(x, t, p + "norm1").reshape(B, H, W, C)
    if shift:
        x = np.roll(x, (-shift, -shift), axis=(1, 2))
    windows = window_partition(x, ws).reshape(-1, ws * ws, C)
    Bw, N, _ = windows.shape
    qkv = (windows @ t[p + "attn.qkv.weight"].T + t[p + "attn.qkv.bias"]).reshape(Bw, N, 3, heads, C // heads)
    qkv = qkv.transpose(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (C // heads) ** -0.5, qkv[1], qkv[2]
    attn = q @ k.transpose(0, 1, 3, 2)
    table = t[p + "attn.relative_position_bias_table"]
    bias = table[relative_position_index(ws).reshape(-1)].reshape(N, N, -1).transpose(2, 0, 1)
    attn = attn + bias[None]
    if shift:
        mask = attn_mask(H, W, ws, shift)
        nW = mask.shape[0]
        attn = (attn.reshape(Bw // nW, nW, heads, N, N) + mask[None, :, None]).reshape(-1, heads, N, N)
    attn = np.exp(attn - attn.max(-1, keepdims=True))
    attn /= attn.sum(-1, keepdims=True)
    out = (attn @ v).transpose(0, 2, 1, 3).reshape(Bw, N, C)
    out = out @ t[p + "attn.proj.weight"].T + t[p + "attn.proj.bias"]
    x = window_reverse(out.reshape(-1, ws, ws, C), ws, H, W)
    if shift:
        x = np.roll(x, (shift, shift), axis=(1, 2))
    x = shortcut + x.reshape(B, H * W, C)
    h = gelu(ln(x, t, p + "norm2") @ t[p + "mlp.fc1.weight"].T + t[p + "mlp.fc1.bias"])
    return x + h @ t[p + "mlp.fc2.weight"].T + t[p + "mlp.fc2.bias"]


def forward(t, pixels):
    x = normalise(pixels, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    x = np.maximum(batch_norm(conv2d(x, t["patch_embed.proj.0.weight"], 2, 1), t, "patch_embed.proj.1"), 0)
    x = np.maximum(batch_norm(conv2d(x, t["patch_embed.proj.3.weight"], 2, 1), t, "patch_embed.proj.4"), 0)
    x = conv2d(x, t["patch_embed.proj.6.weight"], 1, 0, t["patch_embed.proj.6.bias"])
    B, C, H, W = x.shape
    x = ln(x.reshape(B, C, H * W).transpose(0, 2, 1), t, "patch_embed.norm")
    table = t["layers.0.blocks.0.attn.relative_position_bias_table"]
    window = (int(round(math.sqrt(table.shape[0]))) + 1) // 2
    i = 0
    while f"layers.{i}.blocks.0.norm1.weight" in t:
        heads = t[f"layers.{i}.blocks.0.attn.relative_position_bias_table"].shape[1]
        ws, shift = window, window // 2
        if min(H, W) <= ws:  # timm: a stage no larger than a window is one unshifted window
            ws, shift = min(H, W), 0
        j = 0
        while f"layers.{i}.blocks.{j}.norm1.weight" in t:
            x = block(x, t, f"layers.{i}.blocks.{j}.", H, W, heads, ws, shift if j % 2 == 1 else 0)
            j += 1
        p = f"layers.{i}.downsample."
        if p + "reduction.weight" in t:
            g = x.reshape(B, H, W, -1)
            x = np.concatenate([g[:, 0::2, 0::2], g[:, 1::2, 0::2], g[:, 0::2, 1::2], g[:, 1::2, 1::2]], axis=-1)
            H, W = H // 2, W // 2
            x = ln(x.reshape(B, H * W, -1), t, p + "norm") @ t[p + "reduction.weight"].T
        i += 1
    return ln(x, t, "norm").mean(1)


if __name__ == "__main__":
    print_features(forward, IMAGE)
