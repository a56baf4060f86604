// The shape of a LLaMA-family decoder (LLaMA 1/2/3, Vicuna, TinyLlama; Mistral, Qwen2 / Qwen2.5 and Qwen3, whose
// layers are LLaMA's, Qwen2's with biases on q/k/v, Qwen3's with q and k normalised per head), in Hugging Face's
// `LlamaConfig` / `MistralConfig` / `Qwen2Config` / `Qwen3Config` terms, read from and written to `config.json` as
// transformers 4.x and 5.x write it, plus the presets users run.
//
//   auto cfg = models::llama_preset("tinyllama-1.1b");
//   auto cfg = models::parse_hf_llama_config(read_file("vicuna-13b-v1.5/config.json"), "vicuna-13b-v1.5/config.json");
//   write_file("out/config.json", models::hf_llama_config_json(cfg, torch::kBFloat16));
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "models/layers/rope.h"

namespace pathvlm::models {

struct LlamaConfig {
  // "llama", "mistral" (LLaVA-Med v1.5, BioMistral), "qwen2" (Qwen2, Qwen2.5) or "qwen3": the same arithmetic
  // but for the qkv_bias and qk_norm they imply, written back as read.
  std::string model_type = "llama";
  int64_t vocab_size = 32000;
  int64_t hidden_size = 4096;
  int64_t intermediate_size = 11008;
  int64_t num_hidden_layers = 32;
  int64_t num_attention_heads = 32;
  int64_t num_key_value_heads = 32;  // < heads: grouped-query attention
  int64_t head_dim = 128;            // hidden_size / heads unless the config says otherwise
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  // rope_type "linear" (Vicuna v1.5-16k, LongChat) or "llama3" (LLaMA-3.1 and later); models/layers/rope.h. The
  // other scalings (dynamic, yarn, longrope, ...) are refused by name on load.
  RopeScaling rope_scaling;
  bool attention_bias = false;  // biases on q/k/v/o
  bool qkv_bias = false;        // biases on q/k/v only (Qwen2)
  bool qk_norm = false;         // q and k RMS-normalised per head before the rotation (Qwen3)
  bool mlp_bias = false;        // biases on gate/up/down
  bool tie_word_embeddings = false;
  // Mistral: a token attends to at most this many keys (itself included); 0 = no window. Only sequences within it
  // run (the window then changes nothing); longer ones are refused rather than computed without it.
  int64_t sliding_window = 0;
  int64_t bos_token_id = 1;  // -1: none (a tokenizer without BOS, as Qwen's)
  int64_t eos_token_id = 2;
  int64_t pad_token_id = -1;  // -1: none
  double initializer_range = 0.02;

  // Checks the consistency of the numbers; errors name `where`.
  void validate(const std::string& where) const;
  // Parameters of the model this config describes (embedding, layers, norm, head unless tied).
  int64_t num_parameters() const;
};

// "tiny" (tests and demos: 2 layers, width 64, GQA 4/2 heads, vocab 512, untied), "tinyllama-1.1b",
// "llama2-7b", "llama2-13b" (= Vicuna v1.5 shapes). Unknown names list the known ones.
LlamaConfig llama_preset(const std::string& name);
std::vector<std::string> llama_preset_names();

// HF config.json (model_type llama, mistral, qwen2 or qwen3) as 4.x writes it (top-level rope_theta / rope_scaling)
// or as 5.x writes it (rope_parameters {rope_type, rope_theta}); also the language model a LLaVA config.json holds:
// one of LLaVA's original checkpoints (model_type llava_llama, llava_mistral, llava), or a transformers
// LlavaForConditionalGeneration's text_config (the keys it leaves out take its model_type's defaults, as
// transformers reads them). Rope types other than default, linear and llama3 are refused by name. Errors name
// `where`.
LlamaConfig parse_hf_llama_config(const std::string& json_text, const std::string& where);
// config.json for LlamaForCausalLM (MistralForCausalLM) that both transformers 4.x and 5.x read: rope_theta (and
// a linear rope_scaling) at the top level and rope_parameters, an explicit head_dim, `dtype` and `torch_dtype`
// naming `dtype`.
std::string hf_llama_config_json(const LlamaConfig& config, torch::ScalarType dtype);

}  // namespace pathvlm::models
