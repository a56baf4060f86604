#!/usr/bin/env python3
"""safetensors interop between pathvlm and the Python ecosystem (run where torch, safetensors and transformers exist).

Checks, each in both directions:
  1. a file written by python `safetensors` with every dtype pathvlm reads -> `pathvlm weights inspect --format json`
     reports the same names, dtypes, shapes and CRC-32 of the bytes;
  2. tiny random transformers models (LLaMA, CLIP) saved with save_pretrained(safe_serialization=True) and a small
     max_shard_size (so model.safetensors.index.json + shards) -> same check through the index;
  3. files pathvlm writes (`pathvlm weights reshard`, sharded and single, with and without --dtype) load in python
     `safetensors` bit for bit, and in transformers' from_pretrained with identical parameters.

usage: python3 scripts/gpu/check_safetensors_interop.py --pathvlm build/gpu/pathvlm [--keep DIR]
Exit status 0 when every check passes; each failure is printed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zlib

import torch
from safetensors.torch import load_file, save_file

FAILURES = []
TORCH_TO_ST = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
    torch.bool: "BOOL",
}


def check(condition, message):
    if not condition:
        FAILURES.append(message)
        print("FAIL:", message)


def crc32(tensor):
    t = tensor.detach().cpu().contiguous().reshape(-1)
    raw = t.view(torch.uint8)  # the little-endian bytes, as pathvlm hashes them
    return "%08x" % (zlib.crc32(raw.numpy().tobytes()) & 0xFFFFFFFF)


def pathvlm_inspect(binary, path):
    out = subprocess.run([binary, "weights", "inspect", "--format", "json", path], capture_output=True, text=True)
    if out.returncode != 0:
        FAILURES.append(f"pathvlm weights inspect {path} failed: {out.stderr.strip()}")
        return {}
    return {t["name"]: t for t in json.loads(out.stdout)["tensors"]}


def compare_listing(label, listing, expected):
    check(sorted(listing) == sorted(expected), f"{label}: names differ: only pathvlm {sorted(set(listing) - set(expected))[:5]}, "
          f"only python {sorted(set(expected) - set(listing))[:5]}")
    for name, tensor in expected.items():
        got = listing.get(name)
        if got is None:
            continue
        check(got["dtype"] == TORCH_TO_ST[tensor.dtype], f"{label}: {name}: dtype {got['dtype']} vs {tensor.dtype}")
        check(got["shape"] == list(tensor.shape), f"{label}: {name}: shape {got['shape']} vs {list(tensor.shape)}")
        check(got["crc32"] == crc32(tensor), f"{label}: {name}: crc32 {got['crc32']} vs {crc32(tensor)}")


def python_reference(path_or_dir):
    """All tensors of a file or (sharded) directory, read by python safetensors."""
    if os.path.isfile(path_or_dir):
        return load_file(path_or_dir)
    index = os.path.join(path_or_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            weight_map = json.load(f)["weight_map"]
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            tensors.update(load_file(os.path.join(path_or_dir, shard)))
        return {k: v for k, v in tensors.items() if k in weight_map}
    return load_file(os.path.join(path_or_dir, "model.safetensors"))


def every_dtype():
    g = torch.Generator().manual_seed(0)
    return {
        "f64": torch.randn(3, 2, dtype=torch.float64, generator=g),
        "f32": torch.randn(4, 5, generator=g),
        "f16": torch.randn(7, generator=g).half(),
        "bf16": torch.randn(2, 3, 2, generator=g).bfloat16(),
        "i64": torch.arange(-5, 6),
        "i32": torch.randint(-1000, 1000, (3, 3), dtype=torch.int32, generator=g),
        "i16": torch.randint(-300, 300, (5,), dtype=torch.int16, generator=g),
        "i8": torch.randint(-128, 127, (9,), dtype=torch.int8, generator=g),
        "u8": torch.randint(0, 255, (2, 2, 3), dtype=torch.uint8, generator=g),
        "bool": torch.rand(5, generator=g) > 0.5,
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


def tiny_models():
    from transformers import CLIPConfig, CLIPModel, LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64))
    clip = CLIPModel(CLIPConfig(
        text_config=dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         max_position_embeddings=16),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=16))
    return {"llama": llama, "clip": clip}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pathvlm", default="build/gpu/pathvlm", help="the pathvlm program")
    parser.add_argument("--keep", help="write into this directory and keep it")
    args = parser.parse_args()
    binary = os.path.abspath(args.pathvlm)
    if not os.path.exists(binary):
        sys.exit(f"no pathvlm program at {binary} (build it, or pass --pathvlm)")
    work = args.keep or tempfile.mkdtemp(prefix="pathvlm_interop_")
    os.makedirs(work, exist_ok=True)

    # 1. python safetensors -> pathvlm
    tensors = every_dtype()
    path = os.path.join(work, "every_dtype.safetensors")
    save_file(tensors, path, metadata={"format": "pt", "origin": "python"})
    compare_listing("python-written every-dtype file", pathvlm_inspect(binary, path), tensors)

    # 3a. pathvlm -> python safetensors, for the same file
    ours = os.path.join(work, "every_dtype_resharded")
    subprocess.run([binary, "weights", "reshard", path, ours, "--max-shard-size", "100"], check=True)
    back = python_reference(ours)
    check(sorted(back) == sorted(tensors), "pathvlm-resharded every-dtype: names differ")
    for name, t in tensors.items():
        check(name in back and back[name].dtype == t.dtype and torch.equal(back[name], t),
              f"pathvlm-resharded every-dtype: {name} differs")

    # 2. transformers save_pretrained (sharded) -> pathvlm;  3b. pathvlm reshard -> transformers from_pretrained
    try:
        models = tiny_models()
    except ImportError as e:
        FAILURES.append(f"transformers is needed for the model checks: {e}")
        models = {}
    for label, model in models.items():
        hf_dir = os.path.join(work, f"{label}_hf")
        model.save_pretrained(hf_dir, safe_serialization=True, max_shard_size="20KB")
        check(os.path.exists(os.path.join(hf_dir, "model.safetensors.index.json")),
              f"{label}: transformers did not shard (no index file)")
        reference = python_reference(hf_dir)
        compare_listing(f"transformers {label} (sharded)", pathvlm_inspect(binary, hf_dir), reference)

        for variant, extra in (("sharded", ["--max-shard-size", "30KB"]), ("single", ["--max-shard-size", "5GB"]),
                               ("bf16", ["--dtype", "BF16"])):
            out_dir = os.path.join(work, f"{label}_pathvlm_{variant}")
            subprocess.run([binary, "weights", "reshard", hf_dir, out_dir] + extra, check=True,
                           stdout=subprocess.DEVNULL)
            shutil.copy(os.path.join(hf_dir, "config.json"), out_dir)
            ours = python_reference(out_dir)
            for name, t in reference.items():
                want = t.to(torch.bfloat16) if variant == "bf16" and t.is_floating_point() else t
                check(name in ours and torch.equal(ours[name], want), f"{label} {variant}: {name} differs in python")
            reloaded = type(model).from_pretrained(out_dir, torch_dtype=torch.bfloat16 if variant == "bf16" else None)
            state = reloaded.state_dict()
            for name, t in model.state_dict().items():
                want = t.to(torch.bfloat16) if variant == "bf16" and t.is_floating_point() else t
                check(name in state and torch.equal(state[name].cpu(), want.cpu()),
                      f"{label} {variant}: from_pretrained parameter {name} differs")

    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    if FAILURES:
        print(f"{len(FAILURES)} failure(s)")
        sys.exit(1)
    print("safetensors interop: all checks passed")


if __name__ == "__main__":
    main()
