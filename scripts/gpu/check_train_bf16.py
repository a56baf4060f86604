#!/usr/bin/env python3
"""GPU check owed by the trainer: bf16 autocast (train.precision bf16-mixed) + TF32 on one GPU, world 1 with
batch 12 vs accumulation (2 x 6 and 4 x 3), on the `lm` task (tiny LLaMA, built-in text corpus); also activation
checkpointing of the decoder layers on CUDA (with embedding dropout).

    python3 scripts/gpu/check_train_bf16.py [--pathvlm build/release/pathvlm]

Passes when the exported parameters agree within a bf16-sized tolerance and the loss fell.
"""
import argparse, json, os, subprocess, sys, tempfile

import torch
from safetensors.torch import load_file


def run(pathvlm, runs, name, overrides):
    text = os.path.join(runs, "text")
    cmd = [pathvlm, "train", "configs/demo/lm_tiny.yaml", f"run.name={name}", f"run.runs_dir={runs}",
           f"lm.data.train=[{text}/train.jsonl]", "lm.data.eval=[]", f"lm.tokenizer={text}/tokenizer.model",
           "train.device=cuda", "train.precision=bf16-mixed", "train.steps=60", "train.micro_batch_size=12",
           "checkpoint.resume=none", "checkpoint.every_steps=0", "eval.every=0", "log.every=10"] + overrides
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)
    params = load_file(os.path.join(runs, name, "export", "model.safetensors"))
    losses = [json.loads(l)["train/loss"] for l in open(os.path.join(runs, name, "metrics.jsonl")) if "train/loss" in l]
    return params, losses


def rel_err(a, b):
    return max(((a[k].double() - b[k].double()).norm() / b[k].double().norm().clamp_min(1e-12)).item() for k in a)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pathvlm", default="build/release/pathvlm")
    args = ap.parse_args()
    assert torch.cuda.is_available(), "needs a GPU"
    with tempfile.TemporaryDirectory() as runs:
        subprocess.run([args.pathvlm, "synth", "text", "--out", os.path.join(runs, "text")], check=True)
        ref, ref_losses = run(args.pathvlm, runs, "ref", [])
        ok = ref_losses[-1] < 0.6 * ref_losses[0]
        print(f"loss {ref_losses[0]:.4f} -> {ref_losses[-1]:.4f}: {'falls' if ok else 'DOES NOT FALL'}")
        for name, ov in [("accum2", ["train.micro_batch_size=6", "train.grad_accum=2"]),
                         ("accum4", ["train.micro_batch_size=3", "train.grad_accum=4"]),
                         ("ckpt", ["train.activation_checkpointing=[layers]", "lm.dropout=0.0"])]:
            p, _ = run(args.pathvlm, runs, name, ov)
            err = rel_err(p, ref)
            good = err < 2e-2
            ok = ok and good
            print(f"{name}: max relative parameter error vs ref {err:.2e} ({'ok' if good else 'TOO LARGE'})")
        # Activation checkpointing with dropout must be bitwise identical to the plain run with the same dropout.
        a, _ = run(args.pathvlm, runs, "drop", ["lm.dropout=0.1"])
        b, _ = run(args.pathvlm, runs, "drop_ckpt", ["lm.dropout=0.1", "train.activation_checkpointing=[layers]"])
        err = rel_err(a, b)
        good = err < 1e-3
        ok = ok and good
        print(f"dropout + activation checkpointing vs plain: {err:.2e} ({'ok' if good else 'MISMATCH'})")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
