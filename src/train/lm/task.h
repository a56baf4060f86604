// The `lm` task: a tiny causal transformer LM (token + position embeddings, pre-norm blocks, final LayerNorm,
// untied head) learning arithmetic progressions modulo the vocabulary. Every sequence is a pure function of
// (seed, index), so the data set needs no files and every rank and world size sees the same samples.
// The model visibly learns: the loss falls from ln(vocab) towards ~ln(vocab * max_stride) / seq_len.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <optional>

#include "data/sampler.h"
#include "train/lm/config.h"
#include "train/task.h"

namespace pathvlm::train {

// Parameter names: tok_embed.weight, pos_embed.weight,
// blocks.<i>.{ln1, attn.{q,k,v,out}_proj, ln2, mlp.{fc1,fc2}}.* (models::TransformerBlock), ln_f.*, head.weight.
class TinyLmImpl : public torch::nn::Module {
 public:
  TinyLmImpl(const LmConfig& cfg, std::vector<std::string> checkpointed);
  torch::Tensor forward(const torch::Tensor& tokens);  // [B, T] int64 -> logits [B, T, vocab]

 private:
  LmConfig cfg_;
  bool checkpoint_blocks_;
  torch::nn::Embedding tok_embed_{nullptr}, pos_embed_{nullptr};
  torch::nn::ModuleList blocks_{nullptr};
  torch::nn::LayerNorm ln_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(TinyLm);

// Sequence `index` of the data set with seed `seed`: seq_len + 1 tokens.
std::vector<int64_t> lm_sequence(const LmConfig& cfg, uint64_t seed, int64_t index);

class LmTask : public Task {
 public:
  void build(const TaskContext& ctx) override;
  torch::nn::Module& model() override { return *model_; }
  Batch next_batch() override;
  LossOutput loss(const Batch& batch) override;
  std::map<std::string, double> evaluate(dist::Comm& comm) override;
  void export_model(const std::string& dir) override;
  nlohmann::json data_state() const override;
  void restore_data_state(const nlohmann::json& state) override;
  int64_t epoch() const override;

 private:
  torch::Tensor tokens_for(const std::vector<int64_t>& indices, int64_t offset) const;

  LmConfig cfg_;
  uint64_t seed_ = 0;
  torch::Device device_{torch::kCPU};
  int rank_ = 0, world_size_ = 1;
  TinyLm model_{nullptr};
  std::optional<data::DistributedSampler> sampler_;
};

}  // namespace pathvlm::train
