// The `lm` task; see task.h.
#include "train/lm/task.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/text_file.h"
#include "core/log.h"
#include "dist/comm.h"
#include "dist/gather.h"
#include "dist/reducer.h"
#include "models/layers/activation_checkpoint.h"
#include "models/llama/weights.h"
#include "train/init_from.h"
#include "train/job_config.h"

namespace pathvlm::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

// The packed sequences of `paths` for `key` (lm.data.train / lm.data.eval).
std::shared_ptr<const data::PackedSequences> pack(const std::vector<std::string>& paths, const std::string& key,
                                                   const text::Tokenizer& tokenizer, int64_t seq_len) {
  auto documents = data::read_text_corpus(paths);
  PATHVLM_CHECK(!documents.empty(), key, ": the files hold no document");
  auto packed =
      std::make_shared<const data::PackedSequences>(data::PackedSequences::tokenize(documents, tokenizer, seq_len));
  PATHVLM_CHECK(packed->size() > 0, key, ": ", packed->stream_tokens(), " tokens in ", packed->documents(),
                " documents do not fill one sequence of lm.seq_len ", seq_len, " + 1 tokens");
  log_info("lm: ", key, ": ", packed->documents(), " documents, ", packed->stream_tokens(), " tokens, ",
           packed->size(), " sequences of ", seq_len);
  return packed;
}

}  // namespace

bool is_hf_dir(const std::string& path) { return !path.empty() && fs::exists(fs::path(path) / "config.json"); }

std::shared_ptr<const text::Tokenizer> make_lm_tokenizer(const LmConfig& cfg, const LmConfigKeys& keys) {
  if (!cfg.tokenizer.empty()) return text::open_tokenizer(cfg.tokenizer);
  PATHVLM_CHECK(!cfg.pretrained.empty(), keys.tokenizer,
                " is not set: name a tokenizer.model or tokenizer.json (`pathvlm synth text` writes one for its demo "
                "corpus), or start from a model directory that has one");
  return text::open_tokenizer(cfg.pretrained);
}

models::LlamaConfig lm_model_config(const LmConfig& cfg, const text::Tokenizer& tokenizer, const std::string& hf_dir,
                                    const LmConfigKeys& keys) {
  models::LlamaConfig config;
  if (!hf_dir.empty()) {
    const auto file = (fs::path(hf_dir) / "config.json").string();
    PATHVLM_CHECK(fs::exists(file), "'", hf_dir, "' is not a Hugging Face LLaMA directory: it has no config.json");
    config = models::parse_hf_llama_config(read_text_file(file), file);
    PATHVLM_CHECK(tokenizer.vocab_size() <= config.vocab_size, "the tokenizer '", tokenizer.path(), "' has ",
                  tokenizer.vocab_size(), " tokens but the model '", hf_dir, "' only ", config.vocab_size,
                  " embeddings");
  } else {
    config = models::llama_preset(cfg.model);
    config.vocab_size = tokenizer.vocab_size();
    config.bos_token_id = tokenizer.bos_id();
    config.eos_token_id = tokenizer.eos_id();
  }
  PATHVLM_CHECK(cfg.seq_len <= config.max_position_embeddings, keys.seq_len, " (", cfg.seq_len,
                ") exceeds the model's max_position_embeddings (", config.max_position_embeddings, ")");
  return config;
}

// ---- the task ---------------------------------------------------------------------------------------

void LmTask::build_common(const TaskContext& ctx, const std::string& hf_dir) {
  device_ = ctx.device;
  loader_options_ = task_loader_options(ctx, cfg_.data.workers, cfg_.data.prefetch);
  tokenizer_ = make_lm_tokenizer(cfg_);
  models::LlamaOptions options;
  for (const auto& name : ctx.job.train.activation_checkpointing)
    PATHVLM_CHECK(name == "layers" || name == "all", "train.activation_checkpointing: '", name,
                  "' is not a part of the lm model (known: layers, all)");
  options.checkpoint_layers = models::checkpointing_enabled(ctx.job.train.activation_checkpointing, "layers");
  options.init_weights = hf_dir.empty();  // loaded weights overwrite every tensor
  const auto config = lm_model_config(cfg_, *tokenizer_, hf_dir);
  model_ = models::LlamaForCausalLM(config, options);
  model_->to(device_);
  if (!cfg_.data.eval.empty()) eval_data_ = pack(cfg_.data.eval, "lm.data.eval", *tokenizer_, cfg_.seq_len);
  log_info("lm: LLaMA ", hf_dir.empty() ? "preset '" + cfg_.model + "'" : "'" + hf_dir + "'", " (",
           config.num_hidden_layers, " layers, width ", config.hidden_size, ", vocabulary ", config.vocab_size,
           "), ", format_count(static_cast<double>(config.num_parameters())), " parameters; tokenizer ",
           tokenizer_->path());
}

void LmTask::build(const TaskContext& ctx) {
  cfg_ = ctx.job.task_config<LmConfig>();
  PATHVLM_CHECK(!cfg_.data.train.empty(), "lm.data.train is empty: name the training text (.jsonl / .txt files or "
                "directories; `pathvlm synth text --out DIR` writes a demo corpus)");
  build_common(ctx, cfg_.pretrained);
  train_data_ = pack(cfg_.data.train, "lm.data.train", *tokenizer_, cfg_.seq_len);
  auto data = train_data_;
  loader_ = std::make_unique<data::Loader>(
      "lm.data.train", data->size(), [data](const data::BatchRequest& r) { return data->batch(r); },
      loader_options_.batches(ctx.micro_batch_size, /*train=*/true));
  PATHVLM_CHECK(loader_->batches_per_epoch() > 0, "lm.data.train has ", data->size(),
                " sequences: fewer than one global micro-batch (", ctx.micro_batch_size, " x ", ctx.world_size,
                " ranks)");
}

void LmTask::build_for_eval(const TaskContext& ctx, const std::string& weights) {
  cfg_ = ctx.job.task_config<LmConfig>();
  const std::string source = weights.empty() ? cfg_.pretrained : weights;
  PATHVLM_CHECK(!source.empty(), "no LLaMA to evaluate: give the weights (pathvlm eval --model) or set lm.pretrained");
  PATHVLM_CHECK(!cfg_.data.eval.empty(), "nothing to evaluate: set lm.data.eval (pathvlm eval: the override lm.data.eval=[FILES])");
  // An export (or lm.pretrained) carries its shape and tokenizer; a run or checkpoint has the job's.
  const std::string hf_dir = is_hf_dir(source) ? source : cfg_.pretrained;
  if (cfg_.tokenizer.empty() && is_hf_dir(source) && fs::exists(fs::path(source) / "tokenizer.model"))
    cfg_.tokenizer = source;
  build_common(ctx, hf_dir);
  load_init_from({{weights.empty() ? "lm.pretrained" : "pathvlm eval --model", InitSource{source, {}, true}}},
                 state_tensors());
  log_info("eval: ", source, " on ", ctx.world_size, ctx.world_size == 1 ? " rank" : " ranks");
}

std::vector<KeyedInitSource> LmTask::init_sources() const {
  if (cfg_.pretrained.empty()) return {};
  return {{"lm.pretrained", InitSource{cfg_.pretrained, {}, true}}};
}

Batch LmTask::next_batch() {
  auto batch = loader_->next();
  PATHVLM_CHECK(batch.has_value(), "lm: the training loader ended unexpectedly");
  return std::move(*batch);
}

LmTask::Sums LmTask::sums(const Batch& batch) {
  const auto& labels = batch.at("labels");
  models::LlamaInputs inputs;
  inputs.position_ids = batch.at("position_ids");
  inputs.attention_mask = data::packed_attention_mask(batch.at("document_ids"));
  auto embeds = model_->embed(batch.at("input_ids"));
  if (cfg_.dropout > 0) embeds = F::dropout(embeds, F::DropoutFuncOptions().p(cfg_.dropout).training(model_->is_training()));
  auto logits = model_->forward_embeds(embeds, inputs).to(torch::kFloat32);
  const auto vocab = logits.size(-1);
  Sums s;
  s.nll = F::cross_entropy(logits.reshape({-1, vocab}), labels.reshape({-1}),
                           F::CrossEntropyFuncOptions().ignore_index(data::kIgnoreIndex).reduction(torch::kSum));
  const auto valid = labels != data::kIgnoreIndex;
  s.correct = (logits.detach().argmax(-1) == labels).logical_and(valid).sum().to(torch::kDouble);
  s.count = valid.sum().to(torch::kDouble);
  return s;
}

LossOutput LmTask::loss(const Batch& batch) {
  auto s = sums(batch);
  auto count = s.count.clamp_min(1);
  return {s.nll / count.to(torch::kFloat32), {{"accuracy", (s.correct / count).to(torch::kFloat32)}}};
}

StepOutput LmTask::forward_backward(const std::vector<Batch>& micro, StepContext& ctx) {
  PATHVLM_CHECK(!micro.empty(), "lm: no micro-batches");
  // The step's loss is the mean over every target of the global batch: this rank's summed losses divided by the
  // global target count, times the world size because the Reducer averages the gradients over the ranks.
  auto count = torch::zeros({1}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  for (const auto& b : micro) count += (b.at("labels") != data::kIgnoreIndex).sum().to(torch::kDouble);
  const auto scale = global_mean_scale(count, ctx.comm);
  StepOutput out;
  torch::Tensor correct;
  for (size_t i = 0; i < micro.size(); ++i) {
    ctx.reducer.prepare_backward(/*sync=*/i + 1 == micro.size());
    auto s = sums(micro[i]);
    auto loss = s.nll * scale;
    loss.backward();
    out.loss = out.loss.defined() ? out.loss + loss.detach() : loss.detach();
    correct = correct.defined() ? correct + s.correct : s.correct;
  }
  ctx.reducer.finish_backward();
  out.metrics["accuracy"] = (correct * scale).to(torch::kFloat32);
  return out;
}

std::map<std::string, double> LmTask::evaluate(dist::Comm& comm) {
  if (!eval_data_) return {};
  torch::NoGradGuard no_grad;
  const int64_t records =
      cfg_.eval.max_sequences > 0 ? std::min(cfg_.eval.max_sequences, eval_data_->size()) : eval_data_->size();
  auto data = eval_data_;
  data::Loader loader("lm.data.eval", records, [data](const data::BatchRequest& r) { return data->batch(r); },
                      loader_options_.batches(cfg_.eval.batch_size, /*train=*/false));
  // One row (nll, correct, count) per batch; gathered in rank order they are the one-process pass's batches.
  std::vector<torch::Tensor> rows;
  while (auto batch = loader.next()) {
    auto s = sums(*batch);
    rows.push_back(torch::stack({s.nll.to(torch::kDouble), s.correct, s.count}));
  }
  auto mine = rows.empty() ? torch::empty({0, 3}, torch::TensorOptions().dtype(torch::kDouble).device(device_))
                           : torch::stack(rows);
  auto all = dist::gather_rows(mine, &comm).cpu();
  double nll = 0, correct = 0, count = 0;
  auto a = all.accessor<double, 2>();
  for (int64_t i = 0; i < all.size(0); ++i) nll += a[i][0], correct += a[i][1], count += a[i][2];
  count = std::max(1.0, count);
  const double loss = nll / count;
  log_info("lm.data.eval: loss ", loss, ", perplexity ", std::exp(loss), ", next-token accuracy ", correct / count,
           " (", static_cast<int64_t>(count), " tokens)");
  return {{"eval/loss", loss}, {"eval/perplexity", std::exp(loss)}, {"eval/accuracy", correct / count}};
}

void LmTask::export_model(const std::string& dir) {
  // A pretrained model's own tokenizer files travel with it; a tokenizer.model alone becomes LlamaTokenizer files.
  const std::string tokenizer_source =
      cfg_.tokenizer.empty() && !cfg_.pretrained.empty() ? cfg_.pretrained : tokenizer_->path();
  models::export_hf_llama(model_, dir, model_->parameters().front().scalar_type(), kHfExportShardBytes,
                          tokenizer_source);
}

nlohmann::json LmTask::data_state() const { return loader_state(*loader_); }

void LmTask::restore_data_state(const nlohmann::json& state) { restore_loader_state(*loader_, state, "lm"); }

double LmTask::epoch() const { return loader_epoch(*loader_); }

}  // namespace pathvlm::train
