#!/usr/bin/env python3
"""GPU checks owed by the clip task (run on the GPU machine from the repository root, after building):

  1. feature-cache accumulation on CUDA: a tiny CLIP trained 20 steps in fp32 (TF32 off) with micro-batch 32
     x grad_accum 1 and with 16 x 2 and 8 x 4 ends with the same parameters (the contrastive batch is the
     same 32 in every case; naive accumulation would differ);
  2. ViT-B/16 at 224 px in bf16 autocast with activation checkpointing and grad_accum 2 on synthetic tiles:
     the loss is finite and falls, logit_scale stays in [0, ln 100], zero-shot / retrieval metrics are
     written, and transformers.CLIPModel loads the export;
  3. throughput: pathvlm's train/samples_per_s for ViT-B/16 bf16 (batch 128, no checkpointing) next to a
     python transformers.CLIPModel training step (bf16 autocast, AdamW, the same symmetric InfoNCE).

    python3 scripts/gpu/check_clip_task.py [--pathvlm build/gpu/pathvlm] [--vocab PATH] [--out DIR]

The vocab defaults to ../shared/data/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz.
"""
import argparse, json, math, os, subprocess, sys, tempfile, time

import torch
from safetensors.torch import load_file

from hf_compat import embeds


def sh(cmd):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def metrics_of(run_dir):
    return [json.loads(l) for l in open(os.path.join(run_dir, "metrics.jsonl"))]


def train(a, tmp, name, data, overrides):
    runs = os.path.join(tmp, "runs")
    sh([a.pathvlm, "train", "configs/clip/demo_tiny.yaml", f"run.name={name}", f"run.runs_dir={runs}",
        "train.device=cuda", "checkpoint.resume=none", "checkpoint.every_steps=0", "log.every=5",
        f"clip.vocab={a.vocab}", f"clip.data.train={data}/shards/train", f"clip.data.val={data}/shards/val",
        f"clip.data.zeroshot={data}/shards/zeroshot", f"clip.eval.classes={data}/tiles/zeroshot.yaml",
        "clip.data.workers=8", "clip.eval.confusion=false"] + overrides)
    return os.path.join(runs, name)


def make_tiles(a, root, size, per_class):
    sh([a.pathvlm, "synth", "tiles", "--quiet", "--out", f"{root}/tiles", "--size", str(size), "--train-per-class",
        str(per_class), "--val-per-class", "16", "--zeroshot-per-class", "16", "--threads", "8"])
    for split in ("train", "val", "zeroshot"):
        sh([a.pathvlm, "shards", "build", f"{root}/tiles/{split}.csv", "--out", f"{root}/shards/{split}"])


def check_feature_cache(a, tmp):
    data = os.path.join(tmp, "tiles64")
    make_tiles(a, data, 64, 64)
    common = ["train.precision=fp32", "train.tf32=false", "train.steps=20", "optim.warmup_steps=5", "eval.every=0"]
    ref = None
    for micro, accum in ((32, 1), (16, 2), (8, 4)):
        run = train(a, tmp, f"fc_{micro}x{accum}", data,
                    common + [f"train.micro_batch_size={micro}", f"train.grad_accum={accum}"])
        params = load_file(os.path.join(run, "export", "model.safetensors"))
        if ref is None:
            ref = params
            continue
        err = max(((params[k].double() - ref[k].double()).norm() / ref[k].double().norm().clamp_min(1e-12)).item()
                  for k in ref)
        print(f"feature cache {micro} x {accum} vs 32 x 1: max relative parameter difference {err:.2e}")
        assert err < 1e-3, f"feature-cache accumulation {micro}x{accum} differs from the full batch ({err})"


def vitb16_overrides(batch, accum, steps):
    return ["clip.model.preset=ViT-B-16", "clip.model.image_size=224", "clip.model.context_length=77",
            "clip.model.hidden_act=quick_gelu", "clip.data.image_size=224", "train.precision=bf16-mixed",
            f"train.micro_batch_size={batch}", f"train.grad_accum={accum}", f"train.steps={steps}",
            "optim.lr=5e-4", "optim.warmup_steps=5", "clip.eval.batch_size=128"]


def check_vitb16(a, tmp, data):
    run = train(a, tmp, "vitb16_bf16", data, vitb16_overrides(64, 2, 40) + [
        "train.activation_checkpointing=[vision_model,text_model]", "eval.every=40"])
    m = metrics_of(run)
    losses = [r["train/loss"] for r in m if "train/loss" in r]
    scales = [r["train/logit_scale"] for r in m if "train/logit_scale" in r]
    evals = [r for r in m if "zeroshot/top1" in r]
    print(f"ViT-B/16 bf16: loss {losses[0]:.3f} -> {losses[-1]:.3f}; logit_scale {scales[-1]:.2f}; "
          f"zero-shot top1 {evals[-1]['zeroshot/top1']:.3f}, i2t R@10 {evals[-1]['retrieval/image_to_text_R@10']:.3f}")
    assert all(math.isfinite(l) for l in losses) and losses[-1] < losses[0], "ViT-B/16 bf16 loss did not fall"
    assert all(0 < s <= 100.0 + 1e-3 for s in scales), "logit_scale left [1, 100]"
    from transformers import CLIPModel
    model = CLIPModel.from_pretrained(os.path.join(run, "export"))
    assert model.logit_scale.item() <= math.log(100) + 1e-6
    print("transformers.CLIPModel loads the export")


def bench_pathvlm(a, tmp, data, batch):
    run = train(a, tmp, "vitb16_bench", data, vitb16_overrides(batch, 1, 60) + ["eval.every=0", "log.every=10",
                                                                               "checkpoint.export_final=false",
                                                                               "checkpoint.save_final=false"])
    rates = [r["train/samples_per_s"] for r in metrics_of(run) if "train/samples_per_s" in r]
    return sum(rates[-3:]) / 3  # steady state: the last three log intervals


def bench_transformers(batch, steps=40):
    from transformers import CLIPConfig, CLIPModel
    torch.backends.cuda.matmul.allow_tf32 = True
    cfg = CLIPConfig(text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8,
                                      num_hidden_layers=12, max_position_embeddings=77, hidden_act="quick_gelu"),
                     vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12,
                                        num_hidden_layers=12, image_size=224, patch_size=16, hidden_act="quick_gelu"),
                     projection_dim=512)
    model = CLIPModel(cfg).cuda().train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2, fused=True)
    pixels = torch.randn(batch, 3, 224, 224, device="cuda")
    ids = torch.randint(1, 49406, (batch, 77), device="cuda")
    ids[:, -1] = 49407
    labels = torch.arange(batch, device="cuda")
    for i in range(steps):
        if i == 10:
            torch.cuda.synchronize()
            t0 = time.time()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            img = torch.nn.functional.normalize(embeds(model.get_image_features(pixel_values=pixels)), dim=-1)
            txt = torch.nn.functional.normalize(embeds(model.get_text_features(input_ids=ids)), dim=-1)
        logits = model.logit_scale.exp() * img.float() @ txt.float().t()
        loss = (torch.nn.functional.cross_entropy(logits, labels) +
                torch.nn.functional.cross_entropy(logits.t(), labels)) / 2
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
    torch.cuda.synchronize()
    return batch * (steps - 10) / (time.time() - t0)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--pathvlm", default="build/gpu/pathvlm")
    p.add_argument("--vocab", default="../shared/data/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz")
    p.add_argument("--out", default=os.environ.get("OUT", "."))
    p.add_argument("--batch", type=int, default=128)
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        check_feature_cache(a, tmp)
        data = os.path.join(tmp, "tiles224")
        make_tiles(a, data, 224, 128)
        check_vitb16(a, tmp, data)
        ours = bench_pathvlm(a, tmp, data, a.batch)
    theirs = bench_transformers(a.batch)
    line = (f"ViT-B/16 224px bf16 training, batch {a.batch}, 1 GPU ({torch.cuda.get_device_name()}): "
            f"pathvlm {ours:.0f} samples/s, transformers.CLIPModel {theirs:.0f} samples/s")
    print(line)
    with open(os.path.join(a.out, "clip_task_gpu.txt"), "w") as f:
        f.write(line + "\n")
    print("clip task GPU checks passed")


if __name__ == "__main__":
    sys.exit(main())
