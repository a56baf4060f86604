#!/usr/bin/env python3
"""The python peer of benchmarks/bench_clip_step.cpp: the same CLIP training step with transformers.CLIPModel.

  python3 scripts/gpu/bench_clip_peer.py --mode eager|compile [--batch 256] [--steps 20] [--warmup 5] \\
      [--flops-per-sample F] [--peak-tflops P]

ViT-B/16 at 224 px with a 77-token 12 x 512 text tower (OpenAI's sizes), random weights; uint8 images and token ids
made on the GPU once; per step: normalisation on the GPU, bf16 autocast, CLIPModel's own symmetric InfoNCE
(return_loss=True), backward, clip_grad_norm_(1.0) and torch.optim.AdamW (betas 0.9/0.98, eps 1e-6, wd 0.2: the
same as pathvlm's step). --mode compile wraps the model in torch.compile (its compilation is in the warm-up).
Prints one JSON line like bench_clip_step; MFU uses --flops-per-sample (pathvlm's count of the same model, so the
ratio of MFUs is the ratio of samples/s) and --peak-tflops.
"""
import argparse
import json
import time

import torch
from transformers import CLIPConfig, CLIPModel


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["eager", "compile"], default="eager")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--flops-per-sample", type=float, default=0.0)
    p.add_argument("--peak-tflops", type=float, default=0.0)
    a = p.parse_args()

    device = torch.device("cuda")
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config=dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12,
                         max_position_embeddings=77, vocab_size=49408),
        vision_config=dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12,
                           image_size=224, patch_size=16),
        projection_dim=512)
    model = CLIPModel(config).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.2)
    forward = torch.compile(model) if a.mode == "compile" else model

    pixels_u8 = torch.randint(0, 256, (a.batch, 3, 224, 224), dtype=torch.uint8, device=device)
    ids = torch.randint(1, 49406, (a.batch, 77), device=device)
    ids[:, -1] = 49407
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711], device=device).view(1, 3, 1, 1)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            pixels = (pixels_u8.float() / 255.0 - mean) / std
            loss = forward(input_ids=ids, pixel_values=pixels, return_loss=True).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / a.steps
    samples_per_s = a.batch / seconds
    mfu = a.flops_per_sample * samples_per_s / (a.peak_tflops * 1e12) if a.peak_tflops > 0 else 0.0
    print(json.dumps({"name": f"transformers CLIPModel ({a.mode})", "batch": a.batch, "precision": "bf16",
                      "device": torch.cuda.get_device_name(), "samples_per_s": round(samples_per_s, 2),
                      "step_s": round(seconds, 5), "flops_per_sample": a.flops_per_sample,
                      "peak_tflops": a.peak_tflops, "mfu": round(mfu, 4),
                      "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
                      "loss": round(loss.item(), 4), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
