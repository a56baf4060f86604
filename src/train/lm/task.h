// The `lm` task: causal-LM training of a LLaMA (models/llama) on text packed into fixed-length sequences.
//
// The model is a preset trained from scratch (its vocabulary set to the tokenizer's) or a Hugging Face LLaMA
// directory (lm.pretrained: its config.json gives the shape; its weights are one of the task's init_sources(),
// loaded by the Trainer like a train.init_from entry, so frozen weights stay out of partial checkpoints and a
// resumed run reads its checkpoint instead). The text (data/text_corpus.h) is tokenized once at build and packed
// (data/packing.h): attention is block-diagonal causal within a document, positions restart per document and no
// target crosses into another document.
// Loss: cross-entropy in fp32, the mean over every non-ignored target of the step's *global* batch (all micro-
// batches, all ranks), so any world size and accumulation computes the same step. Evaluation: loss, perplexity
// and accuracy over lm.data.eval, each batch the same as in a one-process pass (data::eval_share) and the sums
// taken in that order, so the metrics are bitwise equal on any number of ranks. Export: a Hugging Face LLaMA
// directory (config.json, model.safetensors, tokenizer files).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>

#include "data/packing.h"
#include "models/llama/model.h"
#include "text/tokenizer.h"
#include "train/lm/config.h"
#include "train/task.h"

namespace pathvlm::train {

// Shards of a Hugging Face export stay below transformers' default max_shard_size ("5GB").
inline constexpr uint64_t kHfExportShardBytes = 5000ull * 1000 * 1000;
// A directory with a config.json: a Hugging Face model (or one of our exports) rather than a preset name.
bool is_hf_dir(const std::string& path);

// The keys errors name for an LmConfig's tokenizer and sequence length: the lm section's, or those of the section it
// was made from (instruct.tokenizer, instruct.max_length).
struct LmConfigKeys {
  std::string tokenizer = "lm.tokenizer";
  std::string seq_len = "lm.seq_len";
};

// The tokenizer an lm config names: lm.tokenizer, else lm.pretrained's tokenizer.model or tokenizer.json. Errors
// say what to set.
std::shared_ptr<const text::Tokenizer> make_lm_tokenizer(const LmConfig& cfg, const LmConfigKeys& keys = {});
// The model shape: the config.json of `hf_dir` when given, else the lm.model preset with the tokenizer's
// vocabulary and special tokens. Checks that the tokenizer and the sequence length fit the model.
models::LlamaConfig lm_model_config(const LmConfig& cfg, const text::Tokenizer& tokenizer, const std::string& hf_dir,
                                    const LmConfigKeys& keys = {});

class LmTask : public Task {
 public:
  void build(const TaskContext& ctx) override;
  void build_for_eval(const TaskContext& ctx, const std::string& weights) override;
  torch::nn::Module& model() override { return *model_; }
  std::vector<KeyedInitSource> init_sources() const override;
  Batch next_batch() override;
  LossOutput loss(const Batch& batch) override;
  StepOutput forward_backward(const std::vector<Batch>& micro, StepContext& ctx) override;
  std::map<std::string, double> evaluate(dist::Comm& comm) override;
  void export_model(const std::string& dir) override;
  nlohmann::json data_state() const override;
  void restore_data_state(const nlohmann::json& state) override;
  double epoch() const override;

 private:
  // Over one batch's non-ignored targets: summed negative log-likelihood (fp32, with grad), correct argmax
  // predictions and the target count.
  struct Sums {
    torch::Tensor nll, correct, count;
  };
  Sums sums(const Batch& batch);
  // Tokenizer, model (options from the job) and evaluation data; `hf_dir` as for lm_model_config.
  void build_common(const TaskContext& ctx, const std::string& hf_dir);

  LmConfig cfg_;
  torch::Device device_{torch::kCPU};
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  models::LlamaForCausalLM model_{nullptr};
  std::shared_ptr<const data::PackedSequences> train_data_, eval_data_;
  data::LoaderOptions loader_options_;  // this rank's; each loader sets its batch size and mode
  std::unique_ptr<data::Loader> loader_;
};

}  // namespace pathvlm::train
