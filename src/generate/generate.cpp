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

void check_inputs(const models::LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                  const GenerateOptions& options, const DecodeFn& decode) {
  const auto vocab = model->config().vocab_size;
  PATHVLM_CHECK(!prompts.empty(), "generate: no prompts");
  for (size_t i = 0; i < prompts.size(); ++i) {
    PATHVLM_CHECK(!prompts[i].empty(), "generate: prompt ", i, " has no tokens");
    for (const auto id : prompts[i]) {
      PATHVLM_CHECK(id >= 0 && id < vocab, "generate: prompt ", i, " has token id ", id, " outside the vocabulary [0, ",
                    vocab, ")");
    }
  }
  PATHVLM_CHECK(options.max_new_tokens >= 1, "generate: max_new_tokens must be at least 1, got ",
                options.max_new_tokens);
  PATHVLM_CHECK(options.pad_id >= 0 && options.pad_id < vocab, "generate: pad id ", options.pad_id,
                " is outside the vocabulary [0, ", vocab, ")");
  PATHVLM_CHECK(options.eos_id >= -1 && options.eos_id < vocab, "generate: eos id ", options.eos_id,
                " is outside the vocabulary [0, ", vocab, ") (-1: none)");
  PATHVLM_CHECK(options.stop.empty() || decode, "generate: stop strings need a decode function");
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::vector<Generation> generate(models::LlamaForCausalLM& model, const std::vector<std::vector<int64_t>>& prompts,
                                 const GenerateOptions& options, const DecodeFn& decode, GenerationStats* stats) {
  check_inputs(model, prompts, options, decode);
  const StopStrings stops(options.stop);
  torch::NoGradGuard no_grad;
  EvalModeGuard eval_mode(model);
  const auto device = model->parameters().front().device();
  const auto batch = static_cast<int64_t>(prompts.size());

  // Left padding: every prompt ends at the last column, so each step appends one column for all sequences.
  int64_t longest = 0, prompt_tokens = 0;
  for (const auto& p : prompts) {
    longest = std::max<int64_t>(longest, static_cast<int64_t>(p.size()));
    prompt_tokens += static_cast<int64_t>(p.size());
  }
  auto tokens = torch::full({batch, longest}, options.pad_id, torch::kLong);
  auto keep = torch::zeros({batch, longest}, torch::kBool);
  for (int64_t b = 0; b < batch; ++b) {
    const auto n = static_cast<int64_t>(prompts[b].size());
    tokens[b].narrow(0, longest - n, n).copy_(torch::tensor(prompts[b], torch::kLong));
    keep[b].narrow(0, longest - n, n).fill_(true);
  }
  tokens = tokens.to(device);
  keep = keep.to(device);

  std::vector<Generation> out(prompts.size());
  std::vector<TokenSampler> samplers;
  for (int64_t b = 0; b < batch; ++b) samplers.emplace_back(options.seed, options.temperature, options.top_p);
  std::vector<bool> done(prompts.size(), false);
  int64_t running = batch;

  auto caches = model->make_caches();
  torch::Tensor step_tokens = tokens;  // what the next forward pass reads
  for (int64_t step = 0; step < options.max_new_tokens && running > 0; ++step) {
    const auto start = std::chrono::steady_clock::now();
    models::LlamaInputs inputs;
    inputs.attention_mask = keep;  // positions follow from it (each row's count of kept tokens)
    if (options.use_cache) inputs.caches = &caches;
    // Only the last position's logits are needed: the head runs on one row per sequence, not on the prompt.
    const auto hidden = model->model->forward(model->embed(options.use_cache ? step_tokens : tokens), inputs);
    const auto logits = model->head(hidden.select(1, hidden.size(1) - 1)).to(torch::kCPU, torch::kFloat);

    std::vector<int64_t> next(prompts.size(), options.pad_id);
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
    step_tokens = torch::tensor(next, torch::kLong).unsqueeze(1).to(device);
    keep = torch::cat({keep, torch::ones({batch, 1}, keep.options())}, 1);
    if (!options.use_cache) tokens = torch::cat({tokens, step_tokens}, 1);
  }

  if (decode) {
    for (auto& gen : out) {
      if (gen.finish != FinishReason::stop) gen.text = decode(gen.ids);
    }
  }
  return out;
}

}  // namespace pathvlm::generate
