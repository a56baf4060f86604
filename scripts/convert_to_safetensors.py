#!/usr/bin/env python3
"""Converts pickled PyTorch checkpoints to safetensors, which is all pathvlm reads (weights never execute code).
Needs torch and safetensors (pip install torch safetensors).

A Hugging Face model directory with pytorch_model.bin or pytorch_model-0000i-of-0000n.bin shards (+
pytorch_model.bin.index.json), e.g. lmsys/vicuna-13b-v1.5:

  python3 scripts/convert_to_safetensors.py vicuna-13b-v1.5/              # writes the shards beside the .bin files
  python3 scripts/convert_to_safetensors.py vicuna-13b-v1.5/ vicuna-st/   # or into a new directory (other files copied)

Each pytorch_model*.bin becomes model*.safetensors with the same tensor names and the same grouping, and
model.safetensors.index.json is written for shards. One shard is in memory at a time.

A directory holding one checkpoint under another name (CONCH v1.5's pytorch_model_vision.bin, an open_clip hub
repository's open_clip_pytorch_model.bin) gets it as model.safetensors.

A single checkpoint file (open_clip .pt / .bin, e.g. PathCLIP's pathclip-base.pt):

  python3 scripts/convert_to_safetensors.py pathclip-base.pt pathclip-base.safetensors --quick-gelu

takes the "state_dict" (or "model": CTransPath's .pth) entry when present, strips DDP's "module." prefix, and
with --quick-gelu / --gelu writes open_clip_config.json beside the output so `pathvlm` knows the activation
(OpenAI-initialised CLIPs such as PathCLIP and PLIP use quick_gelu). Loading uses torch.load(weights_only=True).

  python3 scripts/convert_to_safetensors.py CHIEF_CTransPath.pth ctranspath/model.safetensors
"""
import argparse
import json
import os
import re
import shutil

import torch
from safetensors.torch import save_file


def load_state(path):
    state = torch.load(path, map_location="cpu", weights_only=True)
    for entry in ("state_dict", "model"):  # open_clip's / Lightning's; TransPath's and CHIEF's ctranspath.pth
        if isinstance(state, dict) and isinstance(state.get(entry), dict):
            state = state[entry]
            break
    tensors, storages = {}, set()
    for name, value in state.items():
        if not torch.is_tensor(value):
            continue
        name = name[len("module."):] if name.startswith("module.") else name
        value = value.contiguous()
        # safetensors refuses tensors that share memory (tied weights in a pickle): give each its own copy.
        storage = value.untyped_storage().data_ptr()
        if storage in storages:
            value = value.clone()
        storages.add(value.untyped_storage().data_ptr())
        tensors[name] = value
    return tensors


def convert_file(args):
    tensors = load_state(args.source)
    save_file(tensors, args.out, metadata={"format": "pt"})
    if args.quick_gelu or args.gelu:
        with open(os.path.join(os.path.dirname(os.path.abspath(args.out)), "open_clip_config.json"), "w") as f:
            json.dump({"model_cfg": {"quick_gelu": bool(args.quick_gelu)}}, f, indent=2)
    print(f"wrote {len(tensors)} tensors to {args.out}")


def convert_directory(source, out):
    pickles = sorted(n for n in os.listdir(source) if re.fullmatch(r"pytorch_model(-\d+-of-\d+)?\.bin", n))
    if not pickles:
        # A hub directory with one checkpoint under another name (open_clip_pytorch_model.bin, CONCH v1.5's
        # pytorch_model_vision.bin): it becomes the directory's model.safetensors.
        others = sorted(n for n in os.listdir(source) if re.fullmatch(r".+\.(bin|pt|pth)", n))
        if len(others) != 1:
            raise SystemExit(f"{source}: no pytorch_model*.bin files and {len(others)} other checkpoints: "
                             "name the one to convert and the output file")
        os.makedirs(out, exist_ok=True)
        tensors = load_state(os.path.join(source, others[0]))
        save_file(tensors, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
        print(f"{others[0]} -> model.safetensors: {len(tensors)} tensors")
        return
    os.makedirs(out, exist_ok=True)
    if os.path.abspath(out) != os.path.abspath(source):
        for name in os.listdir(source):
            path = os.path.join(source, name)
            if os.path.isfile(path) and not name.startswith("pytorch_model"):
                shutil.copy2(path, os.path.join(out, name))
    weight_map, total = {}, 0
    for name in pickles:
        target = name.replace("pytorch_model", "model").replace(".bin", ".safetensors")
        tensors = load_state(os.path.join(source, name))
        save_file(tensors, os.path.join(out, target), metadata={"format": "pt"})
        for tensor_name, value in tensors.items():
            weight_map[tensor_name] = target
            total += value.numel() * value.element_size()
        print(f"{name} -> {target}: {len(tensors)} tensors")
        del tensors
    if len(pickles) > 1:
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)
    print(f"wrote {len(weight_map)} tensors to {out}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="a checkpoint file, or an HF model directory with pytorch_model*.bin")
    parser.add_argument("out", nargs="?", help="output file (for a file) or directory (default: the source directory)")
    act = parser.add_mutually_exclusive_group()
    act.add_argument("--quick-gelu", action="store_true")
    act.add_argument("--gelu", action="store_true")
    args = parser.parse_args()
    if os.path.isdir(args.source):
        convert_directory(args.source, args.out or args.source)
    elif args.out is None:
        parser.error("converting a single file needs an output path")
    else:
        convert_file(args)


if __name__ == "__main__":
    main()
