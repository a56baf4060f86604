#!/usr/bin/env python3
"""Converts a pickled PyTorch checkpoint (open_clip .pt / .bin, e.g. PathCLIP's pathclip-base.pt) to safetensors,
which is all pathvlm reads (weights never execute code).

  python3 scripts/convert_to_safetensors.py pathclip-base.pt pathclip-base.safetensors --quick-gelu

Takes the "state_dict" entry when present, strips DDP's "module." prefix, and with --quick-gelu / --gelu
writes open_clip_config.json beside the output so `pathvlm` knows the activation (OpenAI-initialised CLIPs
such as PathCLIP and PLIP use quick_gelu). Loading uses torch.load(weights_only=True).
"""
import argparse
import json
import os

import torch
from safetensors.torch import save_file


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source")
    parser.add_argument("out")
    act = parser.add_mutually_exclusive_group()
    act.add_argument("--quick-gelu", action="store_true")
    act.add_argument("--gelu", action="store_true")
    args = parser.parse_args()
    state = torch.load(args.source, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    tensors = {}
    for name, value in state.items():
        if not torch.is_tensor(value):
            continue
        name = name[len("module."):] if name.startswith("module.") else name
        tensors[name] = value.contiguous()
    save_file(tensors, args.out, metadata={"format": "pt"})
    if args.quick_gelu or args.gelu:
        with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "open_clip_config.json"), "w") as f:
            json.dump({"model_cfg": {"quick_gelu": bool(args.quick_gelu)}}, f, indent=2)
    print(f"wrote {len(tensors)} tensors to {args.out}")


if __name__ == "__main__":
    main()
