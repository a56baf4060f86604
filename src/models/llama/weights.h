// LLaMA weights in and out: Hugging Face LlamaForCausalLM directories (config.json + model.safetensors or
// model.safetensors.index.json shards, as transformers 4.x and 5.x write them; also our exports) in, HF
// directories that transformers loads as they are out. safetensors only: pickles are refused.
//
//   auto lm = models::load_llama("vicuna-13b-v1.5/", torch::kBFloat16, torch::kCUDA);
//   models::export_hf_llama(lm, "out/", torch::kBFloat16, 5ull << 30, "vicuna-13b-v1.5/");
//   // AutoModelForCausalLM.from_pretrained("out/"), AutoTokenizer.from_pretrained("out/")
//
// Loading builds the model piece by piece and puts each piece's tensors in place before the next piece is
// allocated, straight in the target dtype; when the file already holds that dtype and the target is the CPU,
// parameters are views of the copy-on-write file mapping. A load needs about the model's own size of memory.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "models/llama/model.h"

namespace pathvlm::models {

// `dir_or_file`: an HF directory, or a .safetensors / model.safetensors.index.json file inside one (config.json
// is read beside it). Every parameter must be present with its exact shape; tensors the model does not have
// are an error, except the rotary_emb.inv_freq buffers of older checkpoints, a tied model's lm_head.weight, and the
// projector and tower that LLaVA's checkpoints (models/llava/checkpoint.h) keep beside it: its original ones, and
// transformers' LlavaForConditionalGeneration, whose language model is read under its prefixes (hf_layout.h).
// Errors name the file and the tensor; a directory of pytorch_model*.bin pickles is refused with the command
// that converts it (scripts/convert_to_safetensors.py). `options` sets checkpoint_layers; init_weights and
// on_built are the loader's own.
LlamaForCausalLM load_llama(const std::string& dir_or_file, torch::ScalarType dtype, torch::Device device,
                            const LlamaOptions& options = {});

// Writes `out_dir`: config.json (hf_llama_config_json), generation_config.json, model.safetensors or
// model-0000i-of-0000n.safetensors shards of at most `max_shard_bytes` + model.safetensors.index.json, tensors
// in `dtype` with HF names (no lm_head.weight when tied), and the tokenizer: `tokenizer_source` is a model
// directory (its tokenizer.model, tokenizer.json, tokenizer_config.json, special_tokens_map.json and
// added_tokens.json are copied; a tokenizer.json made from a LLaMA-style tokenizer.model when it has none), a
// tokenizer file (Tokenizer::save_hf: a .model as LlamaTokenizer files, a tokenizer.json with its config), or empty
// (no tokenizer).
void export_hf_llama(LlamaForCausalLM& model, const std::string& out_dir, torch::ScalarType dtype,
                     uint64_t max_shard_bytes, const std::string& tokenizer_source);

// generation_config.json of an export: the config's bos/eos/pad ids, greedy decoding.
std::string hf_llama_generation_config_json(const LlamaConfig& config);

}  // namespace pathvlm::models
