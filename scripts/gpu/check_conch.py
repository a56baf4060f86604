#!/usr/bin/env python3
"""Checks what the numpy CONCH reference (tests/models/conch/conch_reference.py, which the CPU tests compare
pathvlm's CONCH tile encoder with) computes by hand against torch itself: the position resampling (torch's bilinear
at a size, as timm's resample_abs_pos_embed; bicubic at DINO's (g + 0.1) / N scale, as CONCH v1.5's forward), v1's
pooler against nn.MultiheadAttention with a key width apart, v1.5's against its einsum formula; and that
scripts/convert_to_safetensors.py turns a hub directory holding one pickle of another name (CONCH v1.5's
pytorch_model_vision.bin) into model.safetensors with the same tensors, and takes the "model" entry of
CTransPath's .pth. The text tower's reference (tests/models/conch/conch_text_reference.py) is checked against the same
computation in torch: nn.MultiheadAttention blocks under CoCa's mask built with F.pad and repeat_interleave as
build_cls_mask builds it.

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
text_spec = importlib.util.spec_from_file_location(
    "conch_text_reference", os.path.join(ROOT, "tests/models/conch/conch_text_reference.py"))
text_reference = importlib.util.module_from_spec(text_spec)
text_spec.loader.exec_module(text_reference)

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


def torch_text_tower(t, ids, heads):
    """CoCa's encode_text(normalize=False) in torch, float64: the class token appended, the causal mask plus the
    class-token mask (the ids' pad-mask padded one column left and L rows on top with True, -inf where False, repeated
    per head), open_clip's pre-norm blocks with nn.MultiheadAttention."""
    T = {k: torch.from_numpy(v) for k, v in t.items()}
    ids = torch.from_numpy(ids)
    batch, length = ids.shape
    width = T["text.cls_emb"].shape[0]
    x = torch.cat([T["text.token_embedding.weight"][ids], T["text.cls_emb"].reshape(1, 1, -1).repeat(batch, 1, 1)], 1)
    x = x + T["text.positional_embedding"][:length + 1]
    causal = torch.full((length + 1, length + 1), float("-inf"), dtype=torch.float64).triu(1)
    keep = F.pad((ids != text_reference.PAD_ID).unsqueeze(1), (1, 0, length, 0), value=True)
    cls = torch.zeros(keep.shape, dtype=torch.float64).masked_fill(~keep, float("-inf"))
    mask = causal[None] + torch.repeat_interleave(cls, heads, 0)
    layer = 0
    while f"text.transformer.resblocks.{layer}.ln_1.weight" in T:
        p = f"text.transformer.resblocks.{layer}."
        attn = torch.nn.MultiheadAttention(width, heads, dtype=torch.float64)
        attn.load_state_dict({"in_proj_weight": T[p + "attn.in_proj_weight"],
                              "in_proj_bias": T[p + "attn.in_proj_bias"],
                              "out_proj.weight": T[p + "attn.out_proj.weight"],
                              "out_proj.bias": T[p + "attn.out_proj.bias"]})
        h = F.layer_norm(x, (width,), T[p + "ln_1.weight"], T[p + "ln_1.bias"], eps=1e-5).transpose(0, 1)
        x = x + attn(h, h, h, need_weights=False, attn_mask=mask)[0].transpose(0, 1)
        h = F.layer_norm(x, (width,), T[p + "ln_2.weight"], T[p + "ln_2.bias"], eps=1e-5)
        x = x + F.linear(F.gelu(F.linear(h, T[p + "mlp.c_fc.weight"], T[p + "mlp.c_fc.bias"])),
                         T[p + "mlp.c_proj.weight"], T[p + "mlp.c_proj.bias"])
        layer += 1
    pooled = F.layer_norm(x[:, -1], (width,), T["text.ln_final.weight"], T["text.ln_final.bias"], eps=1e-5)
    return (pooled @ T["text.text_projection"]).numpy()


def check_text_tower(rng):
    width, heads, hidden, vocab, positions_, embed = 128, 2, 96, 50, 12, 24
    t = {"text.token_embedding.weight": rng.standard_normal((vocab, width)) * 0.5,
         "text.positional_embedding": rng.standard_normal((positions_, width)) * 0.3,
         "text.cls_emb": rng.standard_normal(width) * 0.5,
         "text.ln_final.weight": 1 + 0.1 * rng.standard_normal(width),
         "text.ln_final.bias": 0.1 * rng.standard_normal(width),
         "text.text_projection": rng.standard_normal((width, embed)) * 0.2}
    for layer in range(2):
        p = f"text.transformer.resblocks.{layer}."
        for name, shape, scale in (("ln_1.bias", (width,), 0.1), ("ln_2.bias", (width,), 0.1),
                                   ("attn.in_proj_weight", (3 * width, width), 0.15),
                                   ("attn.in_proj_bias", (3 * width,), 0.1),
                                   ("attn.out_proj.weight", (width, width), 0.1), ("attn.out_proj.bias", (width,), 0.1),
                                   ("mlp.c_fc.weight", (hidden, width), 0.1), ("mlp.c_fc.bias", (hidden,), 0.1),
                                   ("mlp.c_proj.weight", (width, hidden), 0.1), ("mlp.c_proj.bias", (width,), 0.1)):
            t[p + name] = rng.standard_normal(shape) * scale
        t[p + "ln_1.weight"] = 1 + 0.1 * rng.standard_normal(width)
        t[p + "ln_2.weight"] = 1 + 0.1 * rng.standard_normal(width)
    ids = np.array([[1, 7, 9, 30, 2, 0, 0, 0, 0, 0, 0], [1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2],
                    [1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0]], dtype=np.int64)
    for length in (11, 6):
        compare(f"CONCH text tower, {length} ids (CoCa's cls mask, nn.MultiheadAttention)",
                text_reference.forward(t, ids[:, :length]), torch_text_tower(t, ids[:, :length], heads))


def main():
    rng = np.random.default_rng(20261207)
    check_interpolation(rng)
    check_poolers(rng)
    check_text_tower(rng)
    check_conversion(rng)
    passed = sum(results)
    print(f"CONCH reference against torch: {passed}/{len(results)} comparisons agree to {TOLERANCE:g}")
    sys.exit(0 if passed == len(results) else 1)


if __name__ == "__main__":
    main()
