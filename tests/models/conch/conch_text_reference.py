#!/usr/bin/env python3
"""CONCH v1's text embedding in float64 numpy, as its open_clip CoCa computes encode_text(normalize=False) with torch
(which this machine's python lacks), from safetensors in the names of MahmoodLab/CONCH's state dict:
  x = token_embedding(ids) with text.cls_emb appended, + positional_embedding[:L+1]
  resblocks: x += out_proj(MHA(ln_1(x), in_proj packing q, k, v; heads = width / 64)), x += c_proj(gelu(c_fc(ln_2(x))))
  mask: causal, plus build_cls_mask written out literally: the pad-mask of the ids, padded one column on the left and
        L rows on top with True, decides the class token's row
  out = ln_final(x[:, -1]) @ text_projection

  conch_text_reference.py MODEL_DIR IDS_FILE BATCH     # IDS_FILE: int64 [B, L]; prints the embeddings as JSON
"""
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "vit"))
from timm_vit_reference import gelu, layer_norm, read_safetensors  # noqa: E402

PAD_ID = 0


def cls_mask(ids):
    """build_cls_mask's boolean mask [B, L+1, L+1] (True = attend), as F.pad lays it out."""
    batch, length = ids.shape
    keep = np.ones((batch, length + 1, length + 1), dtype=bool)
    keep[:, length, 1:] = ids != PAD_ID  # row L: column 0 is padding (True), then the ids' pad-mask
    return keep


def forward(t, ids):
    batch, length = ids.shape
    rows = length + 1
    width = t["text.token_embedding.weight"].shape[1]
    heads = width // 64
    x = t["text.token_embedding.weight"][ids]
    x = np.concatenate([x, np.broadcast_to(t["text.cls_emb"], (batch, 1, width))], axis=1)
    x = x + t["text.positional_embedding"][:rows]
    causal = np.tril(np.ones((rows, rows), dtype=bool))
    keep = causal[None] & cls_mask(ids)
    layer = 0
    while f"text.transformer.resblocks.{layer}.ln_1.weight" in t:
        p = f"text.transformer.resblocks.{layer}."
        h = layer_norm(x, t[p + "ln_1.weight"], t[p + "ln_1.bias"], eps=1e-5)
        qkv = h @ t[p + "attn.in_proj_weight"].T + t[p + "attn.in_proj_bias"]
        q, k, v = np.split(qkv, 3, axis=-1)
        split = lambda a: a.reshape(batch, rows, heads, width // heads).transpose(0, 2, 1, 3)  # noqa: E731
        q, k, v = split(q), split(k), split(v)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(width // heads)
        scores = np.where(keep[:, None], scores, -np.inf)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attn = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        attn = attn.transpose(0, 2, 1, 3).reshape(batch, rows, width)
        x = x + attn @ t[p + "attn.out_proj.weight"].T + t[p + "attn.out_proj.bias"]
        h = layer_norm(x, t[p + "ln_2.weight"], t[p + "ln_2.bias"], eps=1e-5)
        h = gelu(h @ t[p + "mlp.c_fc.weight"].T + t[p + "mlp.c_fc.bias"])
        x = x + h @ t[p + "mlp.c_proj.weight"].T + t[p + "mlp.c_proj.bias"]
        layer += 1
    pooled = layer_norm(x[:, -1], t["text.ln_final.weight"], t["text.ln_final.bias"], eps=1e-5)
    return pooled @ t["text.text_projection"]


if __name__ == "__main__":
    model_dir, ids_file, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    tensors = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    ids = np.fromfile(ids_file, dtype=np.int64).reshape(batch, -1)
    print(json.dumps(forward(tensors, ids).tolist()))
