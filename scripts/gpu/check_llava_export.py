#!/usr/bin/env python3
"""transformers loads pathvlm's LLaVA exports as they are (run where transformers and torch are installed).

  PATHVLM_LLAVA_EXPORT_CHECK_DIR=/tmp/llava_export build/tests/test_models \\
      --gtest_filter=LlavaWeights.ExportForTransformersCheck
  python3 scripts/gpu/check_llava_export.py /tmp/llava_export

The test writes five fp32 exports of a tiny random LLaVA (CLIP tiny preset: 64 px, 16 px patches; a 2-layer LLaMA
with LLaMA-2's tokenizer), each in DIR/<form>/model with DIR/<form>/images/0.png, reference.jsonl and
reference.safetensors:
  mlp2x_gelu_patch  Linear-GELU-Linear projector, CLS row dropped ("default": 16 image tokens)
  linear_full       PathAsst's single FC exported as linear_1 + identity linear_2, CLS row kept (17 tokens)
  mlp2x_gelu_patch_pad  as the first, with image_aspect_ratio pad: a 40 x 64 image that LlavaImageProcessor's do_pad
                    must pad to 64 x 64 with the mean colour as pathvlm does (LLaVA-1.5's expand2square)
  mlp2x_gelu_patch_pad_mistral  as the third with a Mistral language model (LLaVA-Med v1.5's shape): the text_config
                    must load as MistralConfig
  mlp2x_gelu_patch_pad_vit  as the third with PathChat's kind of tower: a ViT tile encoder (timm's, two register
                    tokens, its own pixel mean/std; 32 px, 8 px patches) exported as a Dinov2WithRegistersModel:
                    18 image tokens (the registers kept, as LlavaModel keeps them), padding with the ViT's mean
Each JSONL line has the prompt text (with "<image>"), the image (or null), our input_ids in HF's expanded form
(<image> repeated image_seq_length times, id = image_token_index), our greedy tokens (up to 8, stopping at EOS), and
the names of our prompt logits and pixel values in reference.safetensors.

For each export this script loads LlavaForConditionalGeneration (fp32, eager attention) and AutoProcessor (its image
processor swapped for the PIL class of the same model: transformers 5.x's no-suffix class is torchvision-based), and
checks:
  - the processor's input_ids equal ours, and its pixel_values ours (max abs diff <= 1e-4);
  - the model's logits on our input_ids and the processor's pixel_values equal ours on our vocabulary
    (max abs diff <= 1e-4 x the logit scale; the exported extra <image> row is not compared);
  - generate(do_sample=False) gives our greedy tokens.
Then it saves the model and processor again with transformers (DIR/<form>/resaved), for the C++ side to read back
(LlavaWeights.ReadsWhatTransformersSavedInTheExportCheck). Exits non-zero if a check fails.
"""
import argparse
import json
import os
import sys

import torch
from PIL import Image
from safetensors import safe_open
from transformers import AutoProcessor, LlavaForConditionalGeneration

from hf_compat import use_pil_image_processor


def load_model(path):
    try:
        return LlavaForConditionalGeneration.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:  # transformers 4.x before `dtype`
        return LlavaForConditionalGeneration.from_pretrained(
            path, torch_dtype=torch.float32, attn_implementation="eager")


def check_form(form_dir, failures):
    name = os.path.basename(form_dir)
    path = os.path.join(form_dir, "model")
    model = load_model(path).eval()
    processor = use_pil_image_processor(AutoProcessor.from_pretrained(path), path)
    print(f"{name}: image processor {type(processor.image_processor).__name__}")
    # No slow-tokenizer check: transformers 5.x's AutoTokenizer ignores use_fast=False, and SentencePiece itself
    # cannot know "<image>" (the processor's input_ids check covers the tokenizer as users load it).
    with safe_open(os.path.join(form_dir, "reference.safetensors"), "pt") as f:
        reference = {key: f.get_tensor(key) for key in f.keys()}
    with open(os.path.join(form_dir, "reference.jsonl")) as lines:
        samples = [json.loads(line) for line in lines if line.strip()]

    def expect(ok, what):
        print(f"{name}: {what} {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"{name}: {what}")

    text_type = model.config.text_config.model_type
    expect(text_type == ("mistral" if name.endswith("_mistral") else "llama"), f"text_config model_type {text_type}")
    vision_type = model.config.vision_config.model_type
    expect(vision_type == ("dinov2_with_registers" if name.endswith("_vit") else "clip_vision_model"),
           f"vision_config model_type {vision_type}")

    for i, sample in enumerate(samples):
        image = Image.open(os.path.join(form_dir, sample["image"])).convert("RGB") if sample["image"] else None
        inputs = processor(text=sample["prompt"], images=image, return_tensors="pt")
        ours = sample["input_ids"]
        got = inputs["input_ids"][0].tolist()
        expect(got == ours, f"sample {i} processor input_ids ({len(got)} vs our {len(ours)})")

        model_inputs = {"input_ids": torch.tensor([ours]), "attention_mask": torch.ones(1, len(ours), dtype=torch.long)}
        if image is not None:
            pixels = inputs["pixel_values"].float()
            diff = (pixels - reference[sample["pixel_values"]]).abs().max().item()
            expect(diff <= 1e-4, f"sample {i} pixel_values max abs diff {diff:.3g}")
            model_inputs["pixel_values"] = pixels
        with torch.no_grad():
            logits = model(**model_inputs).logits.float()
        expected = reference[sample["logits"]]
        vocab = expected.shape[-1]
        scale = expected.abs().max().item()
        diff = (logits[..., :vocab] - expected).abs().max().item()
        expect(logits.shape[:-1] == expected.shape[:-1] and diff <= 1e-4 * scale,
               f"sample {i} logits max abs diff {diff:.3g} (scale {scale:.3g})")

        with torch.no_grad():
            out = model.generate(**model_inputs, max_new_tokens=len(sample["greedy"]), do_sample=False, num_beams=1)
        generated = out[0, len(ours):].tolist()
        expect(generated == sample["greedy"], f"sample {i} greedy tokens {generated} vs ours {sample['greedy']}")

    resaved = os.path.join(form_dir, "resaved")
    model.save_pretrained(resaved)
    processor.save_pretrained(resaved)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    args = parser.parse_args()
    failures = []
    for form in ("mlp2x_gelu_patch", "linear_full", "mlp2x_gelu_patch_pad", "mlp2x_gelu_patch_pad_mistral",
                 "mlp2x_gelu_patch_pad_vit"):
        check_form(os.path.join(args.dir, form), failures)
    if failures:
        print("FAILED: " + "; ".join(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
