// Text generation with a LLaMA-family model: a batch of tokenized prompts, left-padded, one prefill pass then
// one token per step with the KV cache, until every sequence has hit EOS, a stop string or max_new_tokens.
// Independent of the tokenizer: text is made by the caller's decode function (stop strings need it).
//
//   generate::GenerateOptions options;
//   options.max_new_tokens = 128;  options.eos_id = tokenizer.eos_id();  options.stop = {"###"};
//   generate::GenerationStats stats;
//   auto out = generate::generate(model, {tokenizer.encode("Describe the slide.")}, options,
//                                 [&](const std::vector<int64_t>& ids) { return tokenizer.decode(ids); }, &stats);
//   out[0].ids;   // generated ids only (with the EOS or the tokens that completed a stop string)
//   out[0].text;  // decode(ids), cut before the stop string
//   // a multimodal prompt: image rows spliced into the embeddings (src/models/llava)
//   auto in = llava->prompt_embeds(prompts, image_rows);
//   auto out = generate::generate_from_embeds(llava->language_model, {in.embeds, in.attention_mask}, options,
//                                           decode);
//
// Runs under NoGradGuard with the model in eval mode (its training flag is restored afterwards), on the
// model's device and dtype. Sequences that finish early keep being fed a padding token until the batch is done;
// they take no more tokens and are not counted in the stats.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "models/llama/model.h"

namespace pathvlm::generate {

struct GenerateOptions {
  int64_t max_new_tokens = 128;
  double temperature = 0.0;  // 0: greedy
  double top_p = 1.0;        // nucleus mass; 1: no cut
  // Every sequence's sampler is seeded with this seed, so a prompt's samples do not depend on the batch.
  uint64_t seed = 0;
  std::vector<std::string> stop;  // stop strings, matched in the decoded text
  int64_t eos_id = -1;            // -1: no EOS stop
  // The token at left-padding positions and fed to finished sequences: any id of the vocabulary (masked out).
  int64_t pad_id = 0;
  // false: recompute the whole sequence at every step (the reference the cached path is tested against).
  bool use_cache = true;
};

enum class FinishReason { eos, stop, length };
const char* to_string(FinishReason reason);

struct Generation {
  std::vector<int64_t> ids;  // generated ids only
  std::string text;          // empty without a decode function
  FinishReason finish = FinishReason::length;
};

// Added to (not reset) by each call, so a caller can sum over batches. The first token of every sequence comes
// from the prefill pass; decode counts the tokens of the later steps.
struct GenerationStats {
  int64_t prefill_tokens = 0;  // prompt tokens (padding excluded)
  double prefill_seconds = 0;
  int64_t decode_tokens = 0;
  double decode_seconds = 0;
};

using DecodeFn = std::function<std::string(const std::vector<int64_t>& ids)>;

// One Generation per prompt, in order. Prompts are token ids (BOS included when the model expects it).
std::vector<Generation> generate(models::LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateOptions& options, const DecodeFn& decode = {},
                                 GenerationStats* stats = nullptr);

// Prompts given as input embeddings (a multimodal model's image rows spliced between the text rows, see
// models::LlavaModelImpl::prompt_embeds), left-padded: the prefill reads them, then decoding feeds token ids.
struct PromptEmbeds {
  torch::Tensor embeds;  // [B, L, hidden] on the model's device and dtype (made under NoGradGuard)
  torch::Tensor keep;    // [B, L] keep flags, false at the left padding; every row's last column is kept
};

// generate() from embeddings: with `prompts.embeds` = the model's embeddings of left-padded token prompts,
// it generates exactly what the token-id call does.
std::vector<Generation> generate_from_embeds(models::LlamaForCausalLM& model, const PromptEmbeds& prompts,
                                             const GenerateOptions& options, const DecodeFn& decode = {},
                                             GenerationStats* stats = nullptr);

}  // namespace pathvlm::generate
