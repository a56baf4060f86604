#include "train/lm/task.h"
#include "core/random.h"

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "dist/comm.h"
#include "models/layers/activation_checkpoint.h"
#include "models/layers/transformer_block.h"
#include "io/safetensors.h"
#include "train/job_config.h"

namespace pathvlm::train {

TinyLmImpl::TinyLmImpl(const LmConfig& cfg, std::vector<std::string> checkpointed)
    : cfg_(cfg), checkpoint_blocks_(models::checkpointing_enabled(checkpointed, "blocks")) {
  PATHVLM_CHECK(cfg.dim % cfg.heads == 0, "lm: dim (", cfg.dim, ") must be divisible by heads (", cfg.heads, ")");
  tok_embed_ = register_module("tok_embed", torch::nn::Embedding(cfg.vocab, cfg.dim));
  pos_embed_ = register_module("pos_embed", torch::nn::Embedding(cfg.seq_len, cfg.dim));
  blocks_ = register_module("blocks", torch::nn::ModuleList());
  const auto block = models::TransformerBlockOptions(models::AttentionOptions(cfg.dim, cfg.heads).causal(true))
                         .mlp_hidden(static_cast<int64_t>(cfg.mlp_ratio) * cfg.dim)
                         .mlp_act("gelu")
                         .dropout(cfg.dropout)
                         .attention_name("attn")
                         .norm1_name("ln1")
                         .norm2_name("ln2");
  for (int i = 0; i < cfg.layers; ++i) blocks_->push_back(models::TransformerBlock(block));
  ln_f_ = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({cfg.dim})));
  head_ = register_module("head", torch::nn::Linear(torch::nn::LinearOptions(cfg.dim, cfg.vocab).bias(false)));
  torch::NoGradGuard no_grad;
  tok_embed_->weight.normal_(0, 0.02);
  pos_embed_->weight.normal_(0, 0.02);
}

torch::Tensor TinyLmImpl::forward(const torch::Tensor& tokens) {
  const auto T = tokens.size(1);
  PATHVLM_CHECK(T <= cfg_.seq_len, "lm: sequence of ", T, " tokens exceeds seq_len ", cfg_.seq_len);
  auto positions = torch::arange(T, tokens.options().dtype(torch::kLong));
  auto x = tok_embed_(tokens) + pos_embed_(positions).unsqueeze(0);
  for (const auto& module : *blocks_) {
    auto block = module->as<models::TransformerBlockImpl>();
    x = checkpoint_blocks_ ? models::checkpoint([block](const torch::Tensor& h) { return block->forward(h); }, x)
                           : block->forward(x);
  }
  return head_(ln_f_(x));
}

std::vector<int64_t> lm_sequence(const LmConfig& cfg, uint64_t seed, int64_t index) {
  const uint64_t h = splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(index));
  const int64_t start = static_cast<int64_t>(h % static_cast<uint64_t>(cfg.vocab));
  const int64_t stride = 1 + static_cast<int64_t>((h >> 32) % static_cast<uint64_t>(cfg.max_stride));
  std::vector<int64_t> seq(cfg.seq_len + 1);
  for (int t = 0; t <= cfg.seq_len; ++t) seq[t] = (start + stride * t) % cfg.vocab;
  return seq;
}

void LmTask::build(const TaskContext& ctx) {
  cfg_ = ctx.job.task_config<LmConfig>();
  seed_ = ctx.seed;
  device_ = ctx.device;
  rank_ = ctx.rank;
  world_size_ = ctx.world_size;
  model_ = TinyLm(cfg_, ctx.job.train.activation_checkpointing);
  model_->to(device_);
  sampler_.emplace(cfg_.train_sequences, ctx.micro_batch_size, ctx.rank, ctx.world_size, ctx.seed);
  PATHVLM_CHECK(sampler_->batches_per_epoch() > 0, "lm: lm.train_sequences (", cfg_.train_sequences,
                ") is smaller than one global micro-batch (", ctx.micro_batch_size * ctx.world_size, ")");
}

torch::Tensor LmTask::tokens_for(const std::vector<int64_t>& indices, int64_t offset) const {
  std::vector<int64_t> flat;
  flat.reserve(indices.size() * (cfg_.seq_len + 1));
  for (auto i : indices) {
    auto seq = lm_sequence(cfg_, seed_, offset + i);
    flat.insert(flat.end(), seq.begin(), seq.end());
  }
  return torch::tensor(flat, torch::kLong).view({static_cast<int64_t>(indices.size()), cfg_.seq_len + 1}).to(device_);
}

Batch LmTask::next_batch() {
  auto indices = sampler_->next_batch();
  auto tokens = tokens_for(indices, 0);
  Batch b;
  b.tensors["input"] = tokens.narrow(1, 0, cfg_.seq_len);
  b.tensors["target"] = tokens.narrow(1, 1, cfg_.seq_len);
  b.samples = static_cast<int64_t>(indices.size());
  b.tokens = b.samples * cfg_.seq_len;
  return b;
}

LossOutput LmTask::loss(const Batch& batch) {
  auto logits = model_->forward(batch.at("input"));
  auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, cfg_.vocab}).to(torch::kFloat32),
                                                   batch.at("target").reshape({-1}));
  auto accuracy = (logits.argmax(-1) == batch.at("target")).to(torch::kFloat32).mean().detach();
  return {loss, {{"accuracy", accuracy}}};
}

std::map<std::string, double> LmTask::evaluate(dist::Comm& comm) {
  // Held-out sequences (indices after the training set), dealt round-robin to the ranks.
  std::vector<int64_t> mine;
  for (int64_t i = rank_; i < cfg_.eval_sequences; i += world_size_) mine.push_back(i);
  auto totals = torch::zeros({3}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  if (!mine.empty()) {
    auto tokens = tokens_for(mine, cfg_.train_sequences);
    auto input = tokens.narrow(1, 0, cfg_.seq_len), target = tokens.narrow(1, 1, cfg_.seq_len);
    auto logits = model_->forward(input).to(torch::kFloat32);
    auto nll = torch::nn::functional::cross_entropy(
        logits.reshape({-1, cfg_.vocab}), target.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    auto correct = (logits.argmax(-1) == target).sum();
    totals = torch::stack({nll.to(torch::kDouble), correct.to(torch::kDouble),
                           torch::tensor(static_cast<double>(target.numel()), totals.options())});
  }
  comm.allreduce(totals, dist::ReduceOp::Sum);
  auto t = totals.cpu();
  const double count = std::max(1.0, t[2].item<double>());
  return {{"eval/loss", t[0].item<double>() / count}, {"eval/accuracy", t[1].item<double>() / count}};
}

void LmTask::export_model(const std::string& dir) {
  std::filesystem::create_directories(dir);
  safetensors::save(dir + "/model.safetensors", state_tensors(), {{"format", "pt"}, {"pathvlm_task", "lm"}});
  nlohmann::json config = {{"model_type", "pathvlm_tiny_lm"}, {"vocab", cfg_.vocab}, {"seq_len", cfg_.seq_len},
                           {"dim", cfg_.dim},     {"layers", cfg_.layers},           {"heads", cfg_.heads},
                           {"mlp_ratio", cfg_.mlp_ratio}};
  std::ofstream out(dir + "/config.json");
  out << config.dump(2) << "\n";
  PATHVLM_CHECK(out.good(), "lm export: cannot write '", dir, "/config.json'");
}

nlohmann::json LmTask::data_state() const {
  auto c = sampler_->cursor();
  return {{"epoch", c.epoch}, {"batch", c.batch}};
}

void LmTask::restore_data_state(const nlohmann::json& state) {
  PATHVLM_CHECK(state.contains("epoch") && state.contains("batch"), "lm: data state ", state.dump(),
                " lacks epoch/batch");
  sampler_->restore({state.at("epoch").get<int64_t>(), state.at("batch").get<int64_t>()});
}

int64_t LmTask::epoch() const { return sampler_->cursor().epoch; }

}  // namespace pathvlm::train
