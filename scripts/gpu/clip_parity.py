#!/usr/bin/env python3
"""CLIP parity of pathvlm against Hugging Face transformers (run on the GPU machine).

  python3 scripts/gpu/clip_parity.py --pathvlm build/gpu/pathvlm \
      --vocab ../shared/data/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz [--device cuda] [--write-golden]

(a) For a small random CLIPModel (quick_gelu and gelu) and a random-weight ViT-B/16, saves the model with
    save_pretrained, runs `pathvlm encode` on fixed images and texts, and compares image_embeds / text_embeds
    with CLIPModel.get_image_features / get_text_features in fp32: max abs diff <= 1e-4 x the embedding scale
    (max |expected|). Images of the model's size are only normalised; a non-square image goes through resize and
    center crop, which are PIL's bit for bit (CLIPImageProcessorPil in transformers 5.x, CLIPImageProcessor in
    4.x), so it has the same bound.
(b) `pathvlm export --format hf-clip` of each model, loaded with CLIPModel.from_pretrained, must give the same
    embeddings; CLIPTokenizer.from_pretrained on the export is compared with `pathvlm tokenize` (reported).
(c) With --write-golden, writes tests/data/clip_golden/ (a tiny CLIPModel directory + golden.safetensors with
    pixel_values, input_ids and the expected embeddings, a few hundred KB) for tests/models/clip/golden_test.cpp.
Exits non-zero if a required check fails.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

from hf_compat import embeds, pil_image_processor

MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
TEXTS = [
    "An H&E image of colorectal adenocarcinoma epithelium.",
    "benign colonic tissue",
    "Scale bar = 50 \u00b5m. Magnification \u00d7400.",
    "HTML entities: &amp; &lt;b&gt; caf\u00e9",
    "A H&E image of adipose tissue. " * 12,
]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
failures = []


def check(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failures.append(name)


def random_clip(text, vision, projection_dim, seed, eos_token_id=49407):
    torch.manual_seed(seed)
    config = CLIPConfig(text_config=dict(text, eos_token_id=eos_token_id, bos_token_id=49406, pad_token_id=1),
                        vision_config=vision, projection_dim=projection_dim)
    model = CLIPModel(config).eval()
    with torch.no_grad():  # non-trivial norms and biases so every parameter matters
        for name, p in model.named_parameters():
            if "bias" in name or "norm" in name:
                p.add_(torch.randn_like(p) * 0.1)
    return model


def make_images(folder, size, seed):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(3):
        # Smooth random colour fields (like tissue), saved losslessly.
        low = rng.integers(0, 256, size=(size // 8 + 1, size // 8 + 1, 3)).astype(np.uint8)
        img = Image.fromarray(low).resize((size, size), Image.BILINEAR)
        arr = np.asarray(img).copy()
        arr = np.clip(arr.astype(np.int16) + rng.integers(-20, 21, size=arr.shape), 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"img{i}.png")
        Image.fromarray(arr).save(path)
        paths.append(path)
    odd = Image.fromarray(rng.integers(0, 256, size=(size + 37, size + 11, 3)).astype(np.uint8))
    odd_path = os.path.join(folder, "odd.png")
    odd.save(odd_path)
    return paths, odd_path


def pixel_values(paths):
    arrays = [(np.asarray(Image.open(p).convert("RGB")).astype(np.float32) / 255.0 - MEAN) / STD for p in paths]
    return torch.from_numpy(np.stack(arrays).transpose(0, 3, 1, 2).copy())


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        print(" ".join(cmd), "\n", result.stdout, result.stderr, file=sys.stderr)
        raise SystemExit(f"command failed: {cmd[1]}")
    return result.stdout


def our_ids(args, texts, context, folder):
    path = os.path.join(folder, "texts.jsonl")
    with open(path, "w") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
    with open(path) as stdin:
        out = subprocess.run([args.pathvlm, "tokenize", "--vocab", args.vocab, "--context", str(context), "--jsonl"],
                             stdin=stdin, capture_output=True, text=True, check=True).stdout
    return torch.tensor([json.loads(line) for line in out.splitlines()], dtype=torch.int64)


def compare(name, ours, expected, tolerance):
    scale = expected.abs().max().item()
    diff = (ours - expected).abs().max().item()
    check(name, diff <= tolerance * scale, f"max abs diff {diff:.3e}, scale {scale:.3e}, ratio {diff / scale:.2e}")


def parity(args, label, model, folder):
    cfg = model.config
    size = cfg.vision_config.image_size
    model_dir = os.path.join(folder, label)
    model.save_pretrained(model_dir, safe_serialization=True)
    images, odd = make_images(folder, size, seed=len(label))
    texts_file = os.path.join(folder, "texts.txt")
    with open(texts_file, "w") as f:
        f.write("\n".join(TEXTS) + "\n")
    out = os.path.join(folder, f"{label}_embeds.safetensors")
    run([args.pathvlm, "encode", "--model", model_dir, "--images", *images, odd, "--texts-file", texts_file,
         "--vocab", args.vocab, "--out", out, "--device", args.device])
    ours = load_file(out)
    ids = our_ids(args, TEXTS, cfg.text_config.max_position_embeddings, folder)
    with torch.no_grad():
        expected_images = embeds(model.get_image_features(pixel_values=pixel_values(images)))
        expected_texts = embeds(model.get_text_features(input_ids=ids))
        processor_class = pil_image_processor("CLIPImageProcessor")  # PIL's resize, as ours
        processor = processor_class(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
        odd_pixels = processor(images=Image.open(odd).convert("RGB"), return_tensors="pt")["pixel_values"]
        expected_odd = embeds(model.get_image_features(pixel_values=odd_pixels))
    compare(f"{label} image_embeds ({size}px, normalise only)", ours["image_embeds"][:3], expected_images, 1e-4)
    compare(f"{label} text_embeds", ours["text_embeds"], expected_texts, 1e-4)
    compare(f"{label} image_embeds (resize + center crop, {processor_class.__name__} vs ours)",
            ours["image_embeds"][3:], expected_odd, 1e-4)

    exported = os.path.join(folder, f"{label}_export")
    run([args.pathvlm, "export", model_dir, "--format", "hf-clip", exported, "--vocab", args.vocab])
    reloaded = CLIPModel.from_pretrained(exported).eval()
    with torch.no_grad():
        reloaded_images = embeds(reloaded.get_image_features(pixel_values=pixel_values(images)))
        compare(f"{label} export image features", reloaded_images, expected_images, 1e-6)
        reloaded_texts = embeds(reloaded.get_text_features(input_ids=ids))
        compare(f"{label} export text features", reloaded_texts, expected_texts, 1e-6)
    try:  # INFO only: a tokenizer that fails to load must not stop the checks (or --write-golden)
        tokenizer = CLIPTokenizer.from_pretrained(exported)
        hf_ids = tokenizer(TEXTS, padding="max_length", truncation=True, max_length=ids.shape[1], return_tensors="pt")
        # HF pads with <|endoftext|>; ours with 0. Compare up to and including the first eot.
        same = all(
            hf_ids["input_ids"][i][: int((ids[i] == 49407).nonzero()[0]) + 1].tolist()
            == ids[i][: int((ids[i] == 49407).nonzero()[0]) + 1].tolist()
            for i in range(len(TEXTS)))
        print(f"INFO {label}: HF CLIPTokenizer on the export {'matches' if same else 'differs from'} pathvlm "
              "tokenize (HF's tokenizer without ftfy uses BERT's BasicTokenizer; not required)")
    except Exception as e:
        print(f"INFO {label}: HF CLIPTokenizer comparison not run ({type(e).__name__}: {e}; not required)")


def write_golden(args, folder):
    golden = os.path.join(ROOT, "tests", "data", "clip_golden")
    shutil.rmtree(golden, ignore_errors=True)
    # A small vocabulary keeps the files small. Each row's eot is 999, its only largest id, and eos_token_id is 999:
    # transformers pools at the first id equal to eos_token_id (or, for the legacy eos_token_id 2, at the argmax of
    # the ids), ours at the argmax of the ids: the same position either way.
    model = random_clip(dict(vocab_size=1000, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, max_position_embeddings=16, hidden_act="quick_gelu"),
                        dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3,
                             image_size=32, patch_size=8, hidden_act="quick_gelu"),
                        projection_dim=24, seed=1234, eos_token_id=999)
    model.save_pretrained(os.path.join(golden, "model"), safe_serialization=True)
    torch.manual_seed(99)
    pixels = torch.randn(4, 3, 32, 32)
    ids = torch.randint(1, 998, (4, 16))  # 1..997: under the bos 998 and the eot 999
    for row, eot in enumerate([5, 15, 9, 2]):
        ids[row, 0] = 998
        ids[row, eot] = 999
        ids[row, eot + 1:] = 0
    with torch.no_grad():
        save_file({"pixel_values": pixels.contiguous(), "input_ids": ids.contiguous(),
                   "image_embeds": embeds(model.get_image_features(pixel_values=pixels)).contiguous(),
                   "text_embeds": embeds(model.get_text_features(input_ids=ids)).contiguous()},
                  os.path.join(golden, "golden.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(golden, "README.md"), "w") as f:
        f.write("Golden CLIP vectors from transformers (scripts/gpu/clip_parity.py --write-golden): a tiny random\n"
                "CLIPModel (model/) and golden.safetensors with pixel_values, input_ids and the fp32\n"
                "get_image_features / get_text_features. Used by tests/models/clip/golden_test.cpp.\n")
    total = sum(os.path.getsize(os.path.join(d, n)) for d, _, names in os.walk(golden) for n in names)
    print(f"wrote {golden} ({total / 1024:.0f} KB)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pathvlm", required=True, help="path of the pathvlm program")
    parser.add_argument("--vocab", required=True, help="bpe_simple_vocab_16e6.txt.gz")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--write-golden", action="store_true")
    args = parser.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 parity, not TF32
    torch.backends.cudnn.allow_tf32 = False
    folder = tempfile.mkdtemp(prefix="clip_parity_")
    try:
        for act in ["quick_gelu", "gelu"]:
            small = random_clip(dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=2,
                                     max_position_embeddings=20, hidden_act=act),
                                dict(hidden_size=96, intermediate_size=192, num_hidden_layers=3, num_attention_heads=3,
                                     image_size=64, patch_size=16, hidden_act=act),
                                projection_dim=48, seed=7)
            parity(args, f"small_{act}", small, folder)
        vitb16 = random_clip(dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8),
                             dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                                  image_size=224, patch_size=16),
                             projection_dim=512, seed=16)
        parity(args, "vit_b16", vitb16, folder)
        if args.write_golden:
            write_golden(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if failures:
        print(f"{len(failures)} check(s) failed: {failures}")
        sys.exit(1)
    print("all CLIP parity checks passed")


if __name__ == "__main__":
    main()
