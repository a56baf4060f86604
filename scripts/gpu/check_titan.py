#!/usr/bin/env python3
"""Checks the numpy TITAN reference (tests/models/titan/titan_reference.py, which the CPU tests compare pathvlm's
TITAN slide encoder with) against the same forward built from torch's own parts: the feature grid by index_add_ into
a zero grid and its any(!= 0) background mask, the ALiBi bias from a meshgrid(indexing="ij") of the kept cells,
scaled_dot_product_attention with the float bias as attn_mask, LayerNorm, GELU, and the pooler as
nn.MultiheadAttention; then `pathvlm encode --model TITAN/ --slides` on the device against that torch forward, from
TRIDENT-style .h5 files written by h5py. Last, `pathvlm probe` against sklearn's LogisticRegression (converged) when
sklearn is installed.

  check_titan.py PATHVLM DEVICE   # prints one line per comparison and a summary last; exit 1 on a mismatch
"""
import importlib.util
import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests/models/vit"))
spec = importlib.util.spec_from_file_location("titan_reference",
                                              os.path.join(ROOT, "tests/models/titan/titan_reference.py"))
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

PATHVLM, DEVICE = sys.argv[1], sys.argv[2]
W, IN, DEPTH, HIDDEN, HEADS, POOLER_HEADS = 48, 20, 2, 80, 12, 8
results = []


def compare(name, ours, theirs, tolerance):
    error = float(np.abs(np.asarray(ours, dtype=np.float64) - np.asarray(theirs, dtype=np.float64)).max())
    results.append(error <= tolerance)
    verdict = "ok" if error <= tolerance else "MISMATCH"
    print(f"{name}: max abs difference {error:.2e} {verdict} (tolerance {tolerance})")


def random_titan(rng):
    t = {}
    v = "vision_encoder."

    def add(name, shape, scale=0.2, offset=0.0):
        t[name] = offset + scale * rng.standard_normal(shape)

    add(v + "patch_embed.0.weight", (W, IN), 0.3)
    add(v + "patch_embed.0.bias", (W,), 0.1)
    add(v + "cls_token", (1, 1, W), 1.0)
    for i in range(DEPTH):
        b = f"{v}blocks.modules_list.{i}."
        for norm in ("norm1", "norm2"):
            add(b + norm + ".weight", (W,), 0.1, 1.0)
            add(b + norm + ".bias", (W,), 0.1)
        add(b + "attn.qkv.weight", (3 * W, W), 0.4)
        add(b + "attn.qkv.bias", (3 * W,))
        add(b + "attn.proj.weight", (W, W), 0.15)
        add(b + "attn.proj.bias", (W,))
        add(b + "mlp.fc1.weight", (HIDDEN, W), 0.15)
        add(b + "mlp.fc1.bias", (HIDDEN,))
        add(b + "mlp.fc2.weight", (W, HIDDEN), 0.15)
        add(b + "mlp.fc2.bias", (W,))
    add(v + "norm.weight", (W,), 0.1, 1.0)
    add(v + "norm.bias", (W,), 0.1)
    p = v + "attn_pool_contrastive."
    add(p + "query", (1, W), 1.0)
    for norm in ("ln_q", "ln_k"):
        add(p + norm + ".weight", (W,), 0.1, 1.0)
        add(p + norm + ".bias", (W,), 0.1)
    add(p + "attn.in_proj_weight", (3 * W, W), 0.4)
    add(p + "attn.in_proj_bias", (3 * W,))
    add(p + "attn.out_proj.weight", (W, W), 0.2)
    add(p + "attn.out_proj.bias", (W,))
    return t


def torch_slopes(n):
    """ALiBi's slopes written out again: the power of two below n, then every other slope of the one above."""
    def power(m):
        return [2 ** (-8 * (i + 1) / m) for i in range(m)]
    below = 2 ** int(math.floor(math.log2(n)))
    return power(below) + power(2 * below)[0::2][: n - below]


def torch_embed(t, features, coords, patch, device):
    """TITAN's encode_slide_from_patch_features for one slide, from torch's parts, float64 on `device`."""
    T = {k: torch.from_numpy(np.asarray(x)).to(device) for k, x in t.items()}
    v = "vision_encoder."
    features = torch.from_numpy(features).to(device)
    coords = torch.from_numpy(coords).to(device)
    cells = torch.div(coords - coords.min(0).values, patch, rounding_mode="floor")
    cells = cells - cells.min(0).values
    h, w = (cells.max(0).values + 1).tolist()
    grid = torch.zeros(h * w, features.shape[1], dtype=torch.float64, device=device)
    grid.index_add_(0, cells[:, 0] * w + cells[:, 1], features)
    tissue = torch.any(grid != 0, dim=1)
    x = F.gelu(F.linear(grid, T[v + "patch_embed.0.weight"], T[v + "patch_embed.0.bias"]))[tissue]
    x = torch.cat([T[v + "cls_token"].reshape(1, -1), x]).unsqueeze(0)
    gx, gy = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
    points = torch.stack([gx.reshape(-1)[tissue], gy.reshape(-1)[tissue]], 1).double()
    distance = torch.cdist(points, points, compute_mode="donot_use_mm_for_euclid_dist")
    slopes = torch.tensor(torch_slopes(HEADS), dtype=torch.float64, device=device).view(-1, 1, 1)
    bias = torch.zeros(1, HEADS, len(points) + 1, len(points) + 1, dtype=torch.float64, device=device)
    bias[0, :, 1:, 1:] = -distance * slopes
    tokens = x.shape[1]
    for i in range(DEPTH):
        b = f"{v}blocks.modules_list.{i}."
        y = F.layer_norm(x, (W,), T[b + "norm1.weight"], T[b + "norm1.bias"], eps=1e-6)
        q, k, vv = F.linear(y, T[b + "attn.qkv.weight"], T[b + "attn.qkv.bias"]).reshape(
            1, tokens, 3, HEADS, W // HEADS).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, vv, attn_mask=bias).transpose(1, 2).reshape(1, tokens, W)
        x = x + F.linear(y, T[b + "attn.proj.weight"], T[b + "attn.proj.bias"])
        y = F.layer_norm(x, (W,), T[b + "norm2.weight"], T[b + "norm2.bias"], eps=1e-6)
        x = x + F.linear(F.gelu(F.linear(y, T[b + "mlp.fc1.weight"], T[b + "mlp.fc1.bias"])),
                         T[b + "mlp.fc2.weight"], T[b + "mlp.fc2.bias"])
    x = F.layer_norm(x, (W,), T[v + "norm.weight"], T[v + "norm.bias"], eps=1e-6)
    p = v + "attn_pool_contrastive."
    attn = torch.nn.MultiheadAttention(W, POOLER_HEADS, dtype=torch.float64, device=device)
    attn.load_state_dict({"in_proj_weight": T[p + "attn.in_proj_weight"], "in_proj_bias": T[p + "attn.in_proj_bias"],
                          "out_proj.weight": T[p + "attn.out_proj.weight"],
                          "out_proj.bias": T[p + "attn.out_proj.bias"]})
    context = F.layer_norm(x, (W,), T[p + "ln_k.weight"], T[p + "ln_k.bias"]).permute(1, 0, 2)
    query = F.layer_norm(T[p + "query"], (W,), T[p + "ln_q.weight"], T[p + "ln_q.bias"]).unsqueeze(1)
    with torch.no_grad():
        return attn(query, context, context, need_weights=False)[0][0, 0].cpu().numpy()


def slides(rng):
    """TRIDENT-like slides: one on a jittered grid with a shared cell and zero-feature tiles, one scattered."""
    corners = [(3000 + x * 512 + (x * y % 3) * 100, 517 + y * 512) for x in range(6) for y in range(5)
               if (x * 7 + y * 3) % 5]
    corners += [(3000 + 812, 517 + 1224), (3000 + 2560, 517 + 2058), (3000 + 4096, 517)]
    a = rng.standard_normal((len(corners), IN)).astype(np.float32).astype(np.float64) * 2
    a[-2:] = 0
    scattered = rng.integers(0, 12, (40, 2)) * 224 + 1000
    return [(a, np.array(corners, dtype=np.int64), 512),
            (rng.standard_normal((40, IN)).astype(np.float32).astype(np.float64), scattered, 224)]


def check_encoder(rng):
    t = random_titan(rng)
    for i, (features, coords, patch) in enumerate(slides(rng)):
        ours = reference.embed(t, {"num_heads": HEADS, "attn_pooler_heads": POOLER_HEADS}, features, coords, patch)
        theirs = torch_embed(t, features, coords, patch, "cpu")
        compare(f"slide {i}: numpy reference vs torch's parts (SDPA with the ALiBi mask, MultiheadAttention)", ours,
                theirs, 1e-9)
    return t


def check_pathvlm(t, rng):
    import h5py
    from safetensors.numpy import save_file
    from safetensors.torch import load_file
    with tempfile.TemporaryDirectory() as d:
        model = os.path.join(d, "TITAN")
        os.makedirs(model)
        save_file({k: np.ascontiguousarray(x, dtype=np.float32) for k, x in t.items()},
                  os.path.join(model, "model.safetensors"))
        with open(os.path.join(model, "config.json"), "w") as f:
            json.dump({"model_type": "titan", "vision_config": {"num_heads": HEADS, "attn_pooler_heads": POOLER_HEADS}},
                      f)
        t32 = {k: x.astype(np.float32).astype(np.float64) for k, x in t.items()}
        expected, lines = [], ["slide_id,features"]
        for i, (features, coords, patch) in enumerate(slides(rng)):
            path = os.path.join(d, f"slide_{i}.h5")
            with h5py.File(path, "w") as f:
                f["features"] = features.astype(np.float32)
                f["coords"] = coords
                f["coords"].attrs["patch_size_level0"] = patch
            lines.append(f"slide_{i},{path}")
            expected.append(torch_embed(t32, features, coords, patch, DEVICE))
        with open(os.path.join(d, "slides.csv"), "w") as f:
            f.write("\n".join(lines) + "\n")
        out = os.path.join(d, "titan.safetensors")
        run = subprocess.run([PATHVLM, "encode", "--model", model, "--slides", os.path.join(d, "slides.csv"),
                              "--out", out, "--device", DEVICE], capture_output=True, text=True)
        print(run.stdout.strip(), run.stderr.strip()[-2000:])
        ours = load_file(out)["slide_embeds"].numpy() if run.returncode == 0 else np.full((2, W), np.nan)
        compare(f"pathvlm encode --model TITAN/ on {DEVICE} vs torch's parts", ours, np.stack(expected), 1e-4)


def check_probe(rng):
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("probe vs sklearn: sklearn is not installed here: skipped")
        return
    from safetensors.numpy import save_file
    with tempfile.TemporaryDirectory() as d:
        x = rng.standard_normal((120, 6))
        y = np.arange(120) % 3
        x[:, 0] += y
        ids = [f"s{i}" for i in range(120)]
        save_file({"slide_embeds": x.astype(np.float32)}, os.path.join(d, "e.safetensors"),
                  metadata={"slide_ids": json.dumps(ids)})
        for name, rows in (("train", range(0, 80)), ("test", range(80, 120))):
            with open(os.path.join(d, name + ".csv"), "w") as f:
                f.write("slide_id,label\n" + "".join(f"s{i},c{y[i]}\n" for i in rows))
        run = subprocess.run([PATHVLM, "probe", "--embeddings", os.path.join(d, "e.safetensors"), "--train",
                              os.path.join(d, "train.csv"), "--test", os.path.join(d, "test.csv"), "--C", "0.3",
                              "--out", os.path.join(d, "probe")], capture_output=True, text=True)
        print(run.stdout.strip(), run.stderr.strip())
        x32 = x.astype(np.float32).astype(np.float64)
        sk = LogisticRegression(C=0.3, tol=1e-10, max_iter=100000).fit(x32[:80], y[:80])
        theirs = sk.predict_proba(x32[80:])
        ours = np.full(theirs.shape, np.nan)
        if run.returncode == 0:
            with open(os.path.join(d, "probe", "predictions.csv")) as f:
                ours = np.array([[float(v) for v in line.strip().split(",")[3:]] for line in f.readlines()[1:]])
        compare("pathvlm probe --C 0.3 vs sklearn LogisticRegression", ours, theirs, 1e-5)


def main():
    rng = np.random.default_rng(0)
    t = check_encoder(rng)
    check_pathvlm(t, rng)
    check_probe(rng)
    print(f"titan: {sum(results)}/{len(results)} comparisons agree")
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
