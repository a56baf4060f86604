#!/usr/bin/env python3
"""transformers loads pathvlm's LLaMA exports as they are (run where transformers is installed).

  PATHVLM_LLAMA_EXPORT_CHECK_DIR=/tmp/llama_export build/tests/test_models \
      --gtest_filter=LlamaWeights.ExportForTransformersCheck
  python3 scripts/gpu/check_llama_export.py /tmp/llama_export

The test writes seven exports of a tiny random LLaMA (GQA, untied head) with the LLaMA-2 tokenizer, fp32/ (one
model.safetensors), bf16_sharded/ (shards + model.safetensors.index.json), fp32_linear_rope/ (the same weights
with rope_scaling linear, factor 4), fp32_llama3_rope/ (LLaMA-3.1's rope_scaling llama3), fp32_mistral/ (the same weights as a Mistral with a 4096-token window,
loaded as MistralForCausalLM), fp32_qwen2/ (a Qwen2: biases on q/k/v, loaded as Qwen2ForCausalLM) and fp32_qwen3/
(a Qwen3: q and k normalised per head, loaded as Qwen3ForCausalLM), and reference.safetensors with the token ids of a text and pathvlm's fp32 logits of
each export. For each export this script checks that
AutoModelForCausalLM.from_pretrained (fp32, eager attention) gives the same logits (max abs diff <= 1e-4 x the
logit scale), that GenerationConfig loads, and that AutoTokenizer encodes the text to the same ids. Where an export
has tokenizer.model, SentencePiece itself ([bos] + encode) must give AutoTokenizer's ids on PLAIN_TEXT and ours on the
text when it holds no special-token string (transformers 5.x's AutoTokenizer ignores use_fast=False, so it is no
slow-tokenizer check). Exits non-zero if a check fails.
"""
import argparse
import os
import sys

import sentencepiece
import torch
from safetensors import safe_open
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig


SPECIAL_TOKENS = ("<s>", "</s>", "<unk>")  # LLaMA-2's: SentencePiece's encode splits them as plain text
PLAIN_TEXT = "The slide shows invasive ductal carcinoma, grade 2 of 3 (Nottingham)."


def check_sentencepiece(export, path, text, ours, tokenizer, failures):
    """[bos] + SentencePiece's ids from the export's tokenizer.model against ours on `text` (skipped when it holds a
    special-token string) and against the AutoTokenizer's on PLAIN_TEXT."""
    model_file = os.path.join(path, "tokenizer.model")
    if not os.path.exists(model_file):
        print(f"{export}: sentencepiece tokenizer.model check skipped: the export has no tokenizer.model")
        return
    sp = sentencepiece.SentencePieceProcessor(model_file=model_file)
    cases = [(PLAIN_TEXT, tokenizer(PLAIN_TEXT)["input_ids"], "AutoTokenizer")]
    special = [t for t in SPECIAL_TOKENS if t in text]
    if special:
        print(f"{export}: sentencepiece tokenizer.model skipped on {text!r}: it holds {special}, which SentencePiece "
              "encodes as plain text")
    else:
        cases.insert(0, (text, ours, "ours"))
    for case, expected, whose in cases:
        ids = [sp.bos_id()] + sp.encode(case)
        ok = ids == expected
        print(f"{export}: sentencepiece tokenizer.model on {case!r} {'ok' if ok else 'FAIL'}: {ids} vs {whose} "
              f"{expected}")
        if not ok:
            failures.append(f"{export} sentencepiece tokenizer.model vs {whose}")


def load_model(path):
    try:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    except TypeError:  # transformers 4.x before `dtype`
        return AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32, attn_implementation="eager")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir")
    args = parser.parse_args()
    reference_path = os.path.join(args.dir, "reference.safetensors")
    with safe_open(reference_path, "pt") as f:
        text = f.metadata()["text"]
        reference = {name: f.get_tensor(name) for name in f.keys()}
    input_ids = reference["input_ids"]
    failures = []
    for export, key in (("fp32", "logits_fp32"), ("bf16_sharded", "logits_bf16_sharded"),
                        ("fp32_linear_rope", "logits_fp32_linear_rope"),
                        ("fp32_llama3_rope", "logits_fp32_llama3_rope"), ("fp32_mistral", "logits_fp32_mistral"),
                        ("fp32_qwen2", "logits_fp32_qwen2"), ("fp32_qwen3", "logits_fp32_qwen3")):
        path = os.path.join(args.dir, export)
        model = load_model(path).eval()
        expected_class = {"fp32_mistral": "MistralForCausalLM", "fp32_qwen2": "Qwen2ForCausalLM",
                          "fp32_qwen3": "Qwen3ForCausalLM"}.get(export, "LlamaForCausalLM")
        if type(model).__name__ != expected_class:
            print(f"{export}: loaded as {type(model).__name__}, expected {expected_class} FAIL")
            failures.append(f"{export} class")
        with torch.no_grad():
            logits = model(input_ids).logits.float()
        expected = reference[key]
        scale = expected.abs().max().item()
        diff = (logits - expected).abs().max().item()
        ok = logits.shape == expected.shape and diff <= 1e-4 * scale
        print(f"{export}: logits max abs diff {diff:.3g} (scale {scale:.3g}) {'ok' if ok else 'FAIL'}")
        if not ok:
            failures.append(f"{export} logits")
        generation = GenerationConfig.from_pretrained(path)
        print(f"{export}: generation config bos {generation.bos_token_id} eos {generation.eos_token_id}")
        tokenizer = AutoTokenizer.from_pretrained(path)
        ids = tokenizer(text)["input_ids"]
        ok = ids == input_ids[0].tolist()
        print(f"{export}: AutoTokenizer ({type(tokenizer).__name__}) {'ok' if ok else 'FAIL'}: {ids} vs "
              f"{input_ids[0].tolist()}")
        if not ok:
            failures.append(f"{export} AutoTokenizer")
        check_sentencepiece(export, path, text, input_ids[0].tolist(), tokenizer, failures)
    if failures:
        print("FAILED: " + ", ".join(failures))
        sys.exit(1)
    print("all checks passed")


if __name__ == "__main__":
    main()
