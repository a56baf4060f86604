#!/usr/bin/env python3
"""Golden vectors for tests/models/llama/golden_test.cpp, made with transformers (run where it is installed).

  python3 scripts/gpu/llama_golden.py tests/models/llama/golden

Builds a tiny random LlamaForCausalLM (GQA: 4 query heads over 2 key/value heads, untied lm_head, rope_theta
500000, weights redrawn far from their initialisation so every tensor moves the logits), saves it with
save_pretrained (safetensors) to OUT/model, and writes OUT/golden.safetensors: input_ids [2, 9] int64, the fp32
logits [2, 9, vocab] and greedy_tokens [2, 8] int64 (argmax of the last position, appended, 8 times; checked against
generate(do_sample=False)).
Everything runs in fp32 on the CPU with eager attention, so the numbers do not depend on the GPU. A few tens
of KB; commit OUT.
"""
import argparse
import os

import torch
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM


def greedy_by_full_forwards(model, input_ids, steps):
    tokens = input_ids
    for _ in range(steps):
        next_token = model(tokens).logits[:, -1].argmax(-1, keepdim=True)
        tokens = torch.cat([tokens, next_token], 1)
    return tokens[:, input_ids.shape[1]:].contiguous()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out")
    args = parser.parse_args()
    torch.manual_seed(0)
    # 5.x moved the rope settings into rope_parameters (4.x reads a top-level rope_theta).
    rope = ({"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}
            if int(transformers.__version__.split(".")[0]) >= 5 else {"rope_theta": 500000.0})
    config = LlamaConfig(vocab_size=101, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                         rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
                         attn_implementation="eager", **rope)
    model = LlamaForCausalLM(config).float().eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    model.save_pretrained(os.path.join(args.out, "model"), safe_serialization=True)

    input_ids = torch.randint(3, config.vocab_size, (2, 9), dtype=torch.int64)
    with torch.no_grad():
        logits = model(input_ids).logits.float().contiguous()
        greedy = greedy_by_full_forwards(model, input_ids, 8)
        # The same through generate() (KV cache), with no eos so that all 8 steps run.
        model.generation_config.eos_token_id = None
        generated = model.generate(input_ids, attention_mask=torch.ones_like(input_ids), max_new_tokens=8,
                                   do_sample=False, pad_token_id=0)
    if not torch.equal(generated[:, input_ids.shape[1]:], greedy):
        print(f"warning: generate() gave {generated[:, 9:].tolist()}, full forwards {greedy.tolist()}")
    save_file({"input_ids": input_ids, "logits": logits, "greedy_tokens": greedy},
              os.path.join(args.out, "golden.safetensors"), metadata={"format": "pt"})
    print(f"wrote {args.out}/model and {args.out}/golden.safetensors; greedy tokens {greedy.tolist()}")


if __name__ == "__main__":
    main()
