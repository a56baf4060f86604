#!/usr/bin/env python3
"""The python peer of benchmarks/bench_vit_encode.cpp: the same tile encoding with transformers' Dinov2Model (the
network of UNI's and GigaPath's timm layouts, and what Phikon-v2 and Midnight are) in the same shapes, as TRIDENT's
extraction loop runs an encoder: uint8 tiles on the GPU normalised there, bf16 autocast, no_grad, the pooled
features copied to the host each batch.

  python3 scripts/gpu/bench_vit_peer.py [--model uni|giant|base] [--batch 256] [--steps 20] [--warmup 5] \\
      [--attention sdpa|eager] [--flops-per-sample F] [--peak-tflops P]

Prints one JSON line like bench_vit_encode; MFU uses --flops-per-sample (pathvlm's count of the same model, so the
ratio of MFUs is the ratio of tiles/s) and --peak-tflops.
"""
import argparse
import json
import time

import torch
from transformers import Dinov2Config, Dinov2Model

SHAPES = {  # hidden, layers, heads, patch, mlp_ratio, swiglu: bench_vit_encode's presets
    "uni": (1024, 24, 16, 16, 4.0, False),
    "giant": (1536, 40, 24, 14, 4.0, True),  # Dinov2SwiGLUFFN: (int(6144 * 2/3) + 7) // 8 * 8 = 4096
    "base": (768, 12, 12, 16, 4.0, False),
}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(SHAPES), default="uni")
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--attention", choices=["sdpa", "eager"], default="sdpa")
    p.add_argument("--flops-per-sample", type=float, default=0.0)
    p.add_argument("--peak-tflops", type=float, default=0.0)
    a = p.parse_args()

    hidden, layers, heads, patch, ratio, swiglu = SHAPES[a.model]
    device = torch.device("cuda")
    torch.manual_seed(0)
    config = Dinov2Config(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, patch_size=patch,
                          image_size=224, mlp_ratio=ratio, use_swiglu_ffn=swiglu)
    config._attn_implementation = a.attention
    model = Dinov2Model(config).to(device).eval()
    mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)
    pixels = torch.randint(0, 256, (a.batch, 3, 224, 224), dtype=torch.uint8, device=device)

    def encode():
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
            x = (pixels.float() / 255.0 - mean) / std
            return model(pixel_values=x).pooler_output.float().cpu()

    for _ in range(a.warmup):
        encode()
    torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(a.steps):
        features = encode()  # the copy to the host synchronises each batch
    seconds = (time.perf_counter() - start) / a.steps
    tiles_per_s = a.batch / seconds
    print(json.dumps({
        "name": f"transformers Dinov2Model ({a.attention})", "model": a.model, "batch": a.batch, "precision": "bf16",
        "device": "cuda", "samples_per_s": round(tiles_per_s, 2), "step_s": round(seconds, 5),
        "flops_per_sample": a.flops_per_sample, "peak_tflops": a.peak_tflops,
        "mfu": a.flops_per_sample * tiles_per_s / (a.peak_tflops * 1e12) if a.peak_tflops else 0.0,
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3), "features": features.shape[1]}))


if __name__ == "__main__":
    main()
