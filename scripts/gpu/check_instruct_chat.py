#!/usr/bin/env python3
"""transformers generates what `pathvlm generate --image` generates, from an instruct run's hf-llava export.

  B=build/release/pathvlm
  $B export runs/instruct_demo_phase2 --format hf-llava /tmp/llava_chat
  $B generate --model runs/instruct_demo_phase2 --image demo/instruct/tiles/images/zeroshot/tumor_00000.png \\
      --prompt "What is the predominant tissue in this image?" --prompt "Is this necrosis?" \\
      --max-new-tokens 16 --format jsonl --device cpu > /tmp/llava_chat/ours.jsonl
  python3 scripts/gpu/check_instruct_chat.py /tmp/llava_chat /tmp/llava_chat/ours.jsonl \\
      demo/instruct/tiles/images/zeroshot/tumor_00000.png

Each line of ours.jsonl holds our prompt ids (the conversation template applied, -200 where the image goes) and the
ids we generated greedily. For each line this script expands -200 into image_seq_length copies of the export's
image_token_index (what LlavaProcessor does), takes pixel_values from the export's image processor (its PIL class:
transformers 5.x's no-suffix class is torchvision-based, and our resize is PIL's), runs
LlavaForConditionalGeneration.generate(do_sample=False) in fp32 for as many tokens, and checks the tokens are ours.
Exits non-zero on a mismatch.
"""
import argparse
import json
import sys

import torch
from PIL import Image
from transformers import AutoProcessor, LlavaForConditionalGeneration

from hf_compat import use_pil_image_processor

IMAGE_SENTINEL = -200


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export")
    parser.add_argument("ours")
    parser.add_argument("image")
    args = parser.parse_args()
    try:
        model = LlavaForConditionalGeneration.from_pretrained(args.export, dtype=torch.float32)
    except TypeError:  # transformers 4.x before `dtype`
        model = LlavaForConditionalGeneration.from_pretrained(args.export, torch_dtype=torch.float32)
    model.eval()
    processor = use_pil_image_processor(AutoProcessor.from_pretrained(args.export), args.export)
    print(f"image processor: {type(processor.image_processor).__name__}")
    pixels = processor.image_processor(Image.open(args.image).convert("RGB"), return_tensors="pt")["pixel_values"]
    image_token = model.config.image_token_index
    image_rows = model.config.image_seq_length

    failures = 0
    with open(args.ours) as lines:
        for n, line in enumerate(l for l in lines if l.strip()):
            ours = json.loads(line)
            ids = []
            for token in ours["prompt_ids"]:
                ids.extend([image_token] * image_rows if token == IMAGE_SENTINEL else [token])
            inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
                      "pixel_values": pixels.float()}
            with torch.no_grad():
                out = model.generate(**inputs, max_new_tokens=len(ours["ids"]), do_sample=False, num_beams=1)
            got = out[0, len(ids):].tolist()
            ok = got == ours["ids"]
            failures += not ok
            print(f"prompt {n}: {'ok' if ok else 'FAIL'}: transformers {got} vs pathvlm {ours['ids']} ({ours['text']!r})")
    if failures:
        print(f"FAILED: {failures} prompt(s) differ")
        sys.exit(1)
    print("all prompts generate the same tokens")


if __name__ == "__main__":
    main()
