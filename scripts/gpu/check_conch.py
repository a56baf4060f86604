#!/usr/bin/env python3
"""Checks what the numpy CONCH reference (tests/models/conch/conch_reference.py, which the CPU tests compare
pathvlm's CONCH tile encoder with) computes by hand against torch itself: the position resampling (torch's bilinear
at a size, as timm's resample_abs_pos_embed; bicubic at DINO's (g + 0.1) / N scale, as CONCH v1.5's forward), v1's
pooler against nn.MultiheadAttention with a key width apart, v1.5's against its einsum formula; and that
scripts/convert_to_safetensors.py turns a hub directory holding one pickle of another name (CONCH v1.5's
pytorch_model_vision.bin) into model.safetensors with the same tensors, and takes the "model" entry of
CTransPath's .pth.

  check_conch.py          # prints one line per comparison and a summary last; exit 1 on a mismatch
"""
import importlib.util
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests/models/vit"))
spec = importlib.util.spec_from_file_location("conch_reference",
                                              os.path.join(ROOT, "tests/models/conch/conch_reference.py"))
reference = importlib.util.module_from_spec(spec)
spec.loader.exec_module(reference)

TOLERANCE = 1e-9
results = []


def compare(name, ours, theirs):
    error = float(np.abs(np.asarray(ours) - np.asarray(theirs)).max())
    results.append(error <= TOLERANCE)
    print(f"{name}: max abs difference {error:.2e} {'ok' if error <= TOLERANCE else 'MISMATCH'}")


def positions(rng, grid, width=6):
    return rng.standard_normal((1, 1 + grid * grid, width))


def torch_resample(pos, **interpolate):
    g = int(round(np.sqrt(pos.shape[1] - 1)))
    grid = torch.from_numpy(pos[:, 1:]).reshape(1, g, g, -1).permute(0, 3, 1, 2)
    out = F.interpolate(grid, **interpolate).permute(0, 2, 3, 1).reshape(1, -1, pos.shape[2]).numpy()
    return np.concatenate([pos[:, :1], out], axis=1)


def check_interpolation(rng):
    for stored, model in ((28, 14), (10, 14), (14, 28), (7, 14)):
        pos = positions(rng, stored)
        ours = reference.resample(pos, reference.bilinear_matrix(stored, model))
        theirs = torch_resample(pos, size=(model, model), mode="bilinear", antialias=False, align_corners=False)
        compare(f"bilinear {stored}->{model} (timm resample_abs_pos_embed)", ours, theirs)
    for model, run in ((14, 28), (7, 14), (14, 32)):
        pos = positions(rng, model)
        scale = (run + 0.1) / model
        ours = reference.resample(pos, reference.bicubic_matrix(model, scale))
        theirs = torch_resample(pos, scale_factor=(scale, scale), mode="bicubic", align_corners=False)
        compare(f"bicubic {model}->{run} at scale {scale:.5f} (CONCH v1.5's interpolate_pos_encoding)", ours, theirs)


def layer_norm_tensors(t, prefix, width, rng):
    t[prefix + ".weight"] = 1 + 0.1 * rng.standard_normal(width)
    t[prefix + ".bias"] = 0.1 * rng.standard_normal(width)


def check_poolers(rng):
    D, W, T, B = 64, 96, 17, 3
    tokens = rng.standard_normal((B, T, W))
    for v1 in (True, False):
        p = "pool."
        t = {p + "query": rng.standard_normal((1, D))}
        layer_norm_tensors(t, p + "ln_q", D, rng)
        layer_norm_tensors(t, p + "ln_k", W, rng)
        q_in = F.layer_norm(torch.from_numpy(t[p + "query"]), (D,), torch.from_numpy(t[p + "ln_q.weight"]),
                            torch.from_numpy(t[p + "ln_q.bias"]))
        x = F.layer_norm(torch.from_numpy(tokens), (W,), torch.from_numpy(t[p + "ln_k.weight"]),
                         torch.from_numpy(t[p + "ln_k.bias"]))
        if v1:  # CONCH's AttentionalPooler: nn.MultiheadAttention(D, 8, kdim=W, vdim=W), sequence first
            attn = torch.nn.MultiheadAttention(D, reference.POOLER_HEADS, kdim=W, vdim=W).double()
            state = {k: v.detach().numpy().copy() for k, v in attn.state_dict().items()}
            for k in state:
                state[k] = 0.3 * rng.standard_normal(state[k].shape)
            attn.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
            t.update({p + "attn." + k: v for k, v in state.items()})
            with torch.no_grad():
                theirs = attn(q_in.unsqueeze(1).repeat(1, B, 1), x.permute(1, 0, 2), x.permute(1, 0, 2),
                              need_weights=False)[0].permute(1, 0, 2)[:, 0].numpy()
        else:  # TRIDENT's conchv1_5 AttentionalPooler: to_q, to_kv, to_out without biases, einsum attention
            for name, shape in (("to_q", (D, D)), ("to_kv", (2 * D, W)), ("to_out", (D, D))):
                t[p + name + ".weight"] = 0.3 * rng.standard_normal(shape)
            h, d = reference.POOLER_HEADS, D // reference.POOLER_HEADS
            q = q_in @ torch.from_numpy(t[p + "to_q.weight"]).T
            k, v = (x @ torch.from_numpy(t[p + "to_kv.weight"]).T).chunk(2, dim=-1)
            q = q.reshape(1, h, d).permute(1, 0, 2).unsqueeze(0) * d ** -0.5
            k = k.reshape(B, T, h, d).permute(0, 2, 1, 3)
            v = v.reshape(B, T, h, d).permute(0, 2, 1, 3)
            sim = torch.einsum("b h i d, b h j d -> b h i j", q.expand(B, -1, -1, -1), k)
            sim = sim - sim.amax(dim=-1, keepdim=True)
            out = torch.einsum("b h i j, b h j d -> b h i d", sim.softmax(dim=-1), v)
            out = out.permute(0, 2, 1, 3).reshape(B, 1, D) @ torch.from_numpy(t[p + "to_out.weight"]).T
            theirs = out[:, 0].numpy()
        compare(f"{'v1' if v1 else 'v1.5'} attentional pooler", reference.pool(t, p, tokens, v1), theirs)


def check_conversion(rng):
    with tempfile.TemporaryDirectory() as d:
        state = {"trunk.pos_embed": torch.randn(1, 197, 8), "attn_pool_contrast.query": torch.randn(1, 8)}
        torch.save(state, os.path.join(d, "pytorch_model_vision.bin"))
        run = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/convert_to_safetensors.py"), d],
                             capture_output=True, text=True)
        print(run.stdout.strip(), run.stderr.strip())
        from safetensors.torch import load_file
        converted = load_file(os.path.join(d, "model.safetensors"))
        same = run.returncode == 0 and converted.keys() == state.keys() and all(
            torch.equal(converted[k], state[k]) for k in state)
        results.append(same)
        print(f"convert_to_safetensors.py on a directory with pytorch_model_vision.bin: {'ok' if same else 'MISMATCH'}")
        # CTransPath's checkpoint keeps its state dict under "model".
        torch.save({"model": state, "epoch": 100}, os.path.join(d, "ctranspath.pth"))
        out = os.path.join(d, "ctranspath.safetensors")
        run = subprocess.run([sys.executable, os.path.join(ROOT, "scripts/convert_to_safetensors.py"),
                              os.path.join(d, "ctranspath.pth"), out], capture_output=True, text=True)
        converted = load_file(out) if run.returncode == 0 else {}
        same = converted.keys() == state.keys() and all(torch.equal(converted[k], state[k]) for k in state)
        results.append(same)
        print(f"convert_to_safetensors.py on a {{'model': state dict}} .pth: {'ok' if same else 'MISMATCH'}",
              run.stderr.strip())


def main():
    rng = np.random.default_rng(20261207)
    check_interpolation(rng)
    check_poolers(rng)
    check_conversion(rng)
    passed = sum(results)
    print(f"CONCH reference against torch: {passed}/{len(results)} comparisons agree to {TOLERANCE:g}")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
