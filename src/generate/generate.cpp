#include "generate/generate.h"

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "generate/sampling.h"
#include "generate/stop.h"

namespace pathvlm::generate {

const char* to_string(FinishReason reason) {
  switch (reason) {
    case FinishReason::eos:
      return "eos";
    case FinishReason::stop:
      return "stop";
    case FinishReason::length:
      return "length";
  }
  return "?";
}

namespace {

// Eval mode for the duration of a call; the caller's training flag comes back afterwards (the instruct trainer
// generates in the middle of training).
class EvalModeGuard {
 public:
  explicit EvalModeGuard(models::LlamaForCausalLM& model) : model_(model), was_training_(model->is_training()) {
    model_->eval();
  }
  ~EvalModeGuard() { model_->train(was_training_); }

 private:
  models::LlamaForCausalLM& model_;
  bool was_training_;
};

void check_options(const models::LlamaForCausalLM& model, const GenerateOptions& options, const DecodeFn& decode) {
  const auto vocab = model->config().vocab_size;
  PATHVLM_CHECK(options.max_new_tokens >= 1, "generate: max_new_tokens must be at least 1, got ",
                options.max_new_tokens);
  PATHVLM_CHECK(options.pad_id >= 0 && options.pad_id < vocab, "generate: pad id ", options.pad_id,
                " is outside the vocabulary [0, ", vocab, ")");
  PATHVLM_CHECK(options.eos_id >= -1 && options.eos_id < vocab, "generate: eos id ", options.eos_id,
                " is outside the vocabulary [0, ", vocab, ") (-1: none)");
  PATHVLM_CHECK(options.stop.empty() || decode, "generate: stop strings need a decode function");
}

void check_prompts(const models::LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts) {
  const auto vocab = model->config().vocab_size;
  PATHVLM_CHECK(!prompts.empty(), "generate: no prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    PATHVLM_CHECK(!prompts[i].empty(), "generate: prompt ", i, " has no tokens");
    for (const auto id : prompts[i]) {
      PATHVLM_CHECK(id >= 0 && id < vocab, "generate: prompt ", i, " has token id ", id, " outside the vocabulary [0, ",
                    vocab, ")");
    }
  }
}

void check_prompt_embeds(const models::LlamaForCausalLM& model, const PromptEmbeds& prompts) {
  const auto& e = prompts.embeds;
  const auto hidden = model->config().hidden_size;
  PATHVLM_CHECK(e.defined() && e.dim() == 3 && e.size(0) > 0 && e.size(1) > 0 && e.size(2) == hidden,
                "generate: expected prompt embeddings [B, L, ", hidden, "] with B, L >= 1, got ",
                e.defined() ? e.sizes() : c10::IntArrayRef{});
  PATHVLM_CHECK(prompts.keep.defined() && prompts.keep.dim() == 2 && prompts.keep.size(0) == e.size(0) &&
                    prompts.keep.size(1) == e.size(1),
                "generate: keep flags ", prompts.keep.defined() ? prompts.keep.sizes() : c10::IntArrayRef{},
                " do not match the prompt embeddings ", e.sizes());
  PATHVLM_CHECK(prompts.keep.select(1, e.size(1) - 1).to(torch::kBool).all().item<bool>(),
                "generate: prompt embeddings must be left-padded (every row's last column kept)");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The decoding loop shared by both entry points: `embeds` [B, L, H] left-padded prompt rows, `keep` [B, L].
std::vector<Generation> run(models::LlamaForCausalLM& model, torch::Tensor embeds, torch::Tensor keep,
                            const GenerateOptions& options, const DecodeFn& decode, GenerationStats* stats) {
  const StopStrings stops(options.stop);
  const auto device = embeds.device();
  const auto batch = embeds.size(0);
  const int64_t prompt_tokens = keep.to(torch::kLong).sum().item<int64_t>();
  keep = keep.to(torch::kBool);

  std::vector<Generation> out(static_cast<size_t>(batch));
  std::vector<TokenSampler> samplers;
  for (int64_t b = 0; b < batch; ++b) samplers.emplace_back(options.seed, options.temperature, options.top_p);
  std::vector<bool> done(static_cast<size_t>(batch), false);
  int64_t running = batch;

  auto caches = model->make_caches();
  torch::Tensor step_embeds = embeds;  // what the next forward pass reads
  for (int64_t step = 0; step < options.max_new_tokens && running > 0; ++step) {
    const auto start = std::chrono::steady_clock::now();
    models::LlamaInputs inputs;
    inputs.attention_mask = keep;  // positions follow from it (each row's count of kept tokens)
    if (options.use_cache) inputs.caches = &caches;
    // Only the last position's logits are needed: the head runs on one row per sequence, not on the prompt.
    const auto hidden = model->model->forward(options.use_cache ? step_embeds : embeds, inputs);
    const auto logits = model->head(hidden.select(1, hidden.size(1) - 1)).to(torch::kCPU, torch::kFloat);

    std::vector<int64_t> next(static_cast<size_t>(batch), options.pad_id);
    const int64_t stepping = running;
    for (int64_t b = 0; b < batch; ++b) {
      if (done[b]) continue;
      auto& gen = out[b];
      const int64_t id = samplers[b].pick(logits[b]);
      next[b] = id;
      gen.ids.push_back(id);
      if (id == options.eos_id) {
        gen.finish = FinishReason::eos;
      } else if (!stops.empty()) {
        // The whole generated text: a stop string may span this token and earlier ones.
        const auto text = decode(gen.ids);
        const auto at = stops.find(text);
        if (at != std::string::npos) {
          gen.finish = FinishReason::stop;
          gen.text = text.substr(0, at);
        }
      }
      const auto produced = static_cast<int64_t>(gen.ids.size());
      if (gen.finish != FinishReason::length || produced == options.max_new_tokens) {
        done[b] = true;
        --running;
      }
    }
    if (stats != nullptr) {
      if (step == 0) {
        stats->prefill_tokens += prompt_tokens;
        stats->prefill_seconds += seconds_since(start);
      } else {
        stats->decode_tokens += stepping;
        stats->decode_seconds += seconds_since(start);
      }
    }
    if (running == 0) break;
    step_embeds = model->embed(torch::tensor(next, torch::kLong).unsqueeze(1).to(device));
    keep = torch::cat({keep, torch::ones({batch, 1}, keep.options())}, 1);
    if (!options.use_cache) embeds = torch::cat({embeds, step_embeds}, 1);
  }

  if (decode) {
    for (auto& gen : out) {
      if (gen.finish != FinishReason::stop) gen.text = decode(gen.ids);
    }
  }
  return out;
}

}  // namespace

std::vector<Generation> generate(models::LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateOptions& options, const DecodeFn& decode, GenerationStats* stats) {
  check_prompts(model, prompts);
  check_options(model, options, decode);
  torch::NoGradGuard no_grad;
  EvalModeGuard eval_mode(model);
  const auto device = model->parameters().front().device();
  const auto batch = static_cast<int64_t>(prompts.size());

  // Left padding: every prompt ends at the last column, so each step appends one column for all sequences.
  int64_t longest = 0;
  for (const auto& p : prompts) longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
  auto tokens = torch::full({batch, longest}, options.pad_id, torch::kLong);
  auto keep = torch::zeros({batch, longest}, torch::kBool);
  for (int64_t b = 0; b < batch; ++b) {
    const auto n = static_cast<int64_t>(prompts[b].size());
    tokens[b].narrow(0, longest - n, n).copy_(torch::tensor(prompts[b], torch::kLong));
    keep[b].narrow(0, longest - n, n).fill_(true);
  }
  return run(model, model->embed(tokens.to(device)), keep.to(device), options, decode, stats);
}

std::vector<Generation> generate_from_embeds(models::LlamaForCausalLM& model, const PromptEmbeds& prompts,
                                             const GenerateOptions& options, const DecodeFn& decode,
                                             GenerationStats* stats) {
  check_prompt_embeds(model, prompts);
  check_options(model, options, decode);
  torch::NoGradGuard no_grad;
  EvalModeGuard eval_mode(model);
  const auto& weight = model->model->embed_tokens->weight;
  return run(model, prompts.embeds.to(weight.device(), weight.scalar_type()), prompts.keep.to(weight.device()),
             options, decode, stats);
}

}  // namespace pathvlm::generate
