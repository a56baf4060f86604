// The `clip` task; see task.h.
#include "train/clip/task.h"

#include <algorithm>
#include <array>
#include <filesystem>

#include "core/error.h"
#include "core/log.h"
#include "dist/reducer.h"
#include "models/clip/weights.h"
#include "models/conch/weights.h"
#include "eval/zeroshot.h"
#include "eval/retrieval.h"
#include "dist/gather.h"
#include "losses/contrastive.h"
#include "train/job_config.h"

namespace pathvlm::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

template <size_t N>
std::array<double, N> fixed(const std::vector<double>& v, const char* key) {
  PATHVLM_CHECK(v.size() == N, key, " must have ", N, " values, got ", v.size());
  std::array<double, N> a{};
  std::copy(v.begin(), v.end(), a.begin());
  return a;
}

// Tiles on `device`, tokenized by the loader's workers when a tokenizer is given.
data::TileLoaderOptions loader_options(const ClipTaskConfig& cfg, int64_t batch, int rank, int world, bool train,
                                       torch::Device device,
                                       std::shared_ptr<const text::ClipTokenizer> tokenizer) {
  data::TileLoaderOptions o;
  o.batch_size = batch;
  o.rank = rank;
  o.world_size = world;
  o.train = train;
  o.image_size = cfg.data.image_size;
  o.workers = cfg.data.workers;
  o.prefetch = cfg.data.prefetch;
  o.crop_scale = fixed<2>(cfg.data.crop_scale, "clip.data.crop_scale");
  o.crop_ratio = fixed<2>(cfg.data.crop_ratio, "clip.data.crop_ratio");
  o.mean = fixed<3>(cfg.data.image_mean, "clip.data.image_mean");
  o.std = fixed<3>(cfg.data.image_std, "clip.data.image_std");
  o.hflip_prob = cfg.data.hflip_prob;
  o.vflip_prob = cfg.data.vflip_prob;
  if (!cfg.data.color_jitter.empty()) o.color.jitter = fixed<4>(cfg.data.color_jitter, "clip.data.color_jitter");
  o.color.jitter_prob = cfg.data.color_jitter_prob;
  o.color.gray_prob = cfg.data.gray_scale_prob;
  o.device = device;
  o.pin_memory = cfg.data.pin_memory;
  o.tokenizer = std::move(tokenizer);
  o.skip_bad_records = train;
  return o;
}

// Image embeddings (and, for retrieval, caption embeddings) of this rank's share of a tile set.
struct Embedded {
  torch::Tensor images, texts, labels;  // on the device, so the gather can use any backend
};

Embedded embed_share(const ImageTextEncoder& encoder, const ClipTaskConfig& cfg, const std::string& tiles,
                     bool with_texts, int rank, int world, torch::Device device) {
  auto dataset = std::make_shared<const data::TileDataset>(data::TileDataset::open(tiles));
  auto options = loader_options(cfg, cfg.eval.batch_size, rank, world, /*train=*/false, device, nullptr);
  options.image_size = encoder.image_size;
  options.mean = encoder.mean;
  options.std = encoder.std;
  options.interpolation = encoder.interpolation;
  data::TileLoader loader(dataset, options);
  const int64_t cap = cfg.eval.max_samples > 0 ? (cfg.eval.max_samples + world - 1) / world : -1;
  std::vector<torch::Tensor> images, texts, labels;
  int64_t taken = 0;
  while (auto batch = loader.next()) {
    if (cap >= 0 && taken >= cap) break;
    int64_t n = batch->samples;
    if (cap >= 0) n = std::min(n, cap - taken);
    taken += n;
    images.push_back(encoder.images(batch->at("pixels").narrow(0, 0, n)).to(torch::kFloat));
    labels.push_back(batch->at("labels").narrow(0, 0, n));
    if (with_texts) {
      const auto& captions = batch->text("captions");
      texts.push_back(encoder.texts({captions.begin(), captions.begin() + n}).to(torch::kFloat));
    }
  }
  auto empty = torch::empty({0, encoder.embed_dim}, torch::TensorOptions().dtype(torch::kFloat).device(device));
  Embedded e;
  e.images = images.empty() ? empty : torch::cat(images);
  e.texts = texts.empty() ? empty : torch::cat(texts);
  e.labels = labels.empty() ? torch::empty({0}, torch::TensorOptions().dtype(torch::kLong).device(device))
                            : torch::cat(labels);
  return e;
}

}  // namespace

ImageTextEncoder clip_encoder(models::ClipModel model, std::shared_ptr<const text::ClipTokenizer> tokenizer,
                              const ClipTaskConfig& cfg, torch::Device device) {
  ImageTextEncoder e;
  e.description = models::describe(model->config());
  e.modules = model.ptr();
  e.embed_dim = model->config().embed_dim;
  e.image_size = model->config().image_size;
  e.mean = fixed<3>(cfg.data.image_mean, "clip.data.image_mean");
  e.std = fixed<3>(cfg.data.image_std, "clip.data.image_std");
  e.images = [model](const torch::Tensor& pixels) mutable { return model->encode_image(pixels); };
  e.texts = [model, tokenizer, device](const std::vector<std::string>& texts) mutable {
    return model->encode_text(tokenizer->batch(texts).to(device));
  };
  return e;
}

models::ClipModel build_clip_model(const ClipTaskConfig& cfg) {
  models::ClipModel model{nullptr};
  if (!cfg.pretrained.empty()) {
    models::ClipLoadOptions options;
    options.hidden_act = cfg.model.hidden_act;
    model = models::load_clip(cfg.pretrained, options);
  } else {
    model = models::ClipModel(cfg.model);
  }
  const int size = model->config().image_size;
  PATHVLM_CHECK(size == cfg.data.image_size, "clip.data.image_size is ", cfg.data.image_size, " but the model (",
                cfg.pretrained.empty() ? "clip.model" : "clip.pretrained '" + cfg.pretrained + "'", ") takes ", size,
                "x", size, " images: set clip.data.image_size: ", size);
  PATHVLM_CHECK(cfg.lock_image || cfg.lock_image_unlocked_blocks == 0,
                "clip.lock_image_unlocked_blocks is set but clip.lock_image is false");
  PATHVLM_CHECK(cfg.lock_text || cfg.lock_text_unlocked_layers == 0,
                "clip.lock_text_unlocked_layers is set but clip.lock_text is false");
  PATHVLM_CHECK(cfg.lock_image_unlocked_blocks <= model->config().vision_layers,
                "clip.lock_image_unlocked_blocks (", cfg.lock_image_unlocked_blocks, ") exceeds the ",
                model->config().vision_layers, " ViT blocks");
  PATHVLM_CHECK(cfg.lock_text_unlocked_layers <= model->config().text_layers, "clip.lock_text_unlocked_layers (",
                cfg.lock_text_unlocked_layers, ") exceeds the ", model->config().text_layers, " text blocks");
  if (cfg.lock_image) model->lock_image(cfg.lock_image_unlocked_blocks);
  if (cfg.lock_text) model->lock_text(cfg.lock_text_unlocked_layers);
  return model;
}

text::ClipTokenizer make_clip_tokenizer(const ClipTaskConfig& cfg, int context_length) {
  return text::ClipTokenizer(
      text::clip_vocab_source(cfg.vocab, cfg.pretrained, "set clip.vocab (pathvlm eval: --vocab)"), context_length);
}

std::map<std::string, double> evaluate_clip(const ImageTextEncoder& encoder, const ClipTaskConfig& cfg,
                                            dist::Comm* comm, torch::Device device) {
  torch::NoGradGuard no_grad;
  const int rank = comm ? comm->rank() : 0, world = comm ? comm->world_size() : 1;
  std::map<std::string, double> out;

  if (!cfg.data.zeroshot.empty()) {
    PATHVLM_CHECK(!cfg.eval.classes.empty(), "clip.data.zeroshot is set ('", cfg.data.zeroshot,
                  "') but clip.eval.classes (pathvlm eval: --classes) names no zero-shot YAML (templates and class names)");
    auto spec = eval::load_zeroshot_spec(cfg.eval.classes);
    auto classifier = eval::zeroshot_classifier(spec, [&](const std::vector<std::string>& texts) {
      std::vector<torch::Tensor> parts;
      for (size_t i = 0; i < texts.size(); i += static_cast<size_t>(cfg.eval.batch_size)) {
        std::vector<std::string> chunk(texts.begin() + i,
                                       texts.begin() + std::min(texts.size(), i + cfg.eval.batch_size));
        parts.push_back(encoder.texts(chunk).to(torch::kFloat));
      }
      return torch::cat(parts).cpu();
    });
    auto share = embed_share(encoder, cfg, cfg.data.zeroshot, /*with_texts=*/false, rank, world, device);
    auto images = dist::gather_rows(share.images, comm).cpu();
    auto labels = dist::gather_rows(share.labels, comm).cpu();
    PATHVLM_CHECK(labels.size(0) > 0, "zero-shot tiles '", cfg.data.zeroshot, "' hold no records");
    const int64_t classes = static_cast<int64_t>(spec.classes.size());
    eval::check_class_labels(labels, classes, str("zero-shot tiles '", cfg.data.zeroshot, "'"), cfg.eval.classes);
    auto m = eval::metrics_from_logits(eval::zeroshot_logits(images, classifier, encoder.logit_scale), labels);
    for (auto& [k, v] : eval::metric_values(m, "zeroshot/")) out[k] = v;
    log_info("zero-shot (", spec.classes.size(), " classes, chance ", 1.0 / static_cast<double>(classes), "): ",
             eval::format_metrics(m));
    if (cfg.eval.confusion) log_info("zero-shot confusion matrix:\n", eval::format_confusion(m, spec.class_names()));
  }

  if (!cfg.data.val.empty()) {
    auto share = embed_share(encoder, cfg, cfg.data.val, /*with_texts=*/true, rank, world, device);
    auto images = dist::gather_rows(share.images, comm).cpu();
    auto texts = dist::gather_rows(share.texts, comm).cpu();
    PATHVLM_CHECK(images.size(0) > 0, "validation tiles '", cfg.data.val, "' hold no records");
    auto m = eval::retrieval_metrics(images, texts);
    for (auto& [k, v] : eval::metric_values(m, "retrieval/")) out[k] = v;
    log_info("retrieval: ", eval::format_metrics(m));
  }
  return out;
}

// ---- the task ---------------------------------------------------------------------------------------

void ClipTask::build(const TaskContext& ctx) {
  cfg_ = ctx.job.task_config<ClipTaskConfig>();
  device_ = ctx.device;
  comm_ = &ctx.comm;
  PATHVLM_CHECK(!cfg_.data.train.empty(),
                "clip.data.train is empty: name the training tiles (a manifest from `pathvlm shards build`)");
  PATHVLM_CHECK(cfg_.data.zeroshot.empty() || !cfg_.eval.classes.empty(),
                "clip.data.zeroshot is set but clip.eval.classes names no zero-shot YAML");
  if (!cfg_.eval.classes.empty()) eval::load_zeroshot_spec(cfg_.eval.classes);  // a bad YAML stops the run now
  data::set_max_image_pixels(cfg_.data.max_image_pixels);

  model_ = build_clip_model(cfg_);
  head_ = ContrastiveHead(*model_, model_->logit_scale, cfg_.loss, /*fresh=*/cfg_.pretrained.empty());
  for (const auto& name : ctx.job.train.activation_checkpointing) {
    PATHVLM_CHECK(name == "vision_model" || name == "text_model" || name == "all", "train.activation_checkpointing: '",
                  name, "' is not a part of the clip model (known: vision_model, text_model, all)");
    if (name != "text_model") model_->vision_model->encoder->checkpointing = true;
    if (name != "vision_model") model_->text_model->encoder->checkpointing = true;
  }
  model_->to(device_);
  tokenizer_ = std::make_shared<const text::ClipTokenizer>(make_clip_tokenizer(cfg_, model_->config().context_length));
  encoder_ = clip_encoder(model_, tokenizer_, cfg_, device_);

  auto dataset = std::make_shared<const data::TileDataset>(data::TileDataset::open(cfg_.data.train));
  auto options =
      loader_options(cfg_, ctx.micro_batch_size, ctx.rank, ctx.world_size, /*train=*/true, device_, tokenizer_);
  options.seed = ctx.seed;
  loader_ = std::make_unique<data::TileLoader>(dataset, options);
  const std::string bad_csv = ctx.run_dir.empty() ? "" : (fs::path(ctx.run_dir) / "bad_records.csv").string();
  bad_records_ = std::make_unique<data::BadRecordLog>(dataset, tokenizer_, bad_csv, ctx.rank == 0 && !bad_csv.empty(),
                                                      cfg_.data.max_bad_fraction, "clip.data.max_bad_fraction");
  PATHVLM_CHECK(loader_->batches_per_epoch() > 0, "clip.data.train '", cfg_.data.train, "' has ", dataset->size(),
                " tiles: fewer than one global micro-batch (", ctx.micro_batch_size, " x ", ctx.world_size, " ranks)");

  log_info("clip: ", models::describe(model_->config()), "; ",
           format_count(static_cast<double>(models::count_parameters(*model_))), " parameters (",
           format_count(static_cast<double>(models::count_parameters(*model_, true))), " trainable); loss ", cfg_.loss,
           "; ", dataset->size(), " training tiles, global contrastive batch ",
           ctx.micro_batch_size * ctx.grad_accum * ctx.world_size);
}

void ClipTask::build_for_eval(const TaskContext& ctx, const std::string& weights) {
  cfg_ = ctx.job.task_config<ClipTaskConfig>();
  device_ = ctx.device;
  comm_ = &ctx.comm;
  if (!weights.empty()) cfg_.pretrained = weights;
  data::set_max_image_pixels(cfg_.data.max_image_pixels);
  PATHVLM_CHECK(!cfg_.pretrained.empty(), "no CLIP to evaluate: give the weights (pathvlm eval --model) or set "
                "clip.pretrained");
  PATHVLM_CHECK(!cfg_.data.zeroshot.empty() || !cfg_.data.val.empty(),
                "nothing to evaluate: set clip.data.zeroshot (with clip.eval.classes) and/or clip.data.val "
                "(pathvlm eval: --zeroshot TILES --classes YAML, --val TILES)");
  if (models::is_conch(cfg_.pretrained)) {
    encoder_ = conch_encoder(cfg_.pretrained, cfg_.vocab, device_);
  } else {
    models::ClipLoadOptions options;
    options.hidden_act = cfg_.model.hidden_act;
    model_ = models::load_clip(cfg_.pretrained, options);
    head_ = ContrastiveHead(*model_, model_->logit_scale, "clip", /*fresh=*/false);
    model_->to(device_);
    tokenizer_ =
        std::make_shared<const text::ClipTokenizer>(make_clip_tokenizer(cfg_, model_->config().context_length));
    encoder_ = clip_encoder(model_, tokenizer_, cfg_, device_);
  }
  log_info("eval: ", cfg_.pretrained, " (", encoder_.description, ", ", encoder_.image_size, " px input, ",
           data::interpolation_name(encoder_.interpolation), " resize) on ", ctx.world_size,
           ctx.world_size == 1 ? " rank" : " ranks");
}

std::vector<std::pair<std::string, torch::Tensor>> ClipTask::state_tensors() {
  head_.clamp();
  return Task::state_tensors();
}

Batch ClipTask::next_batch() {
  auto batch = loader_->next();
  PATHVLM_CHECK(batch.has_value(), "clip: the training loader ended unexpectedly");
  return std::move(*batch);
}

std::pair<torch::Tensor, torch::Tensor> ClipTask::encode(const Batch& batch) {
  auto image = model_->encode_image(batch.at("pixels"));
  auto text = model_->encode_text(batch.at("input_ids"));
  return {F::normalize(image, F::NormalizeFuncOptions().dim(1)), F::normalize(text, F::NormalizeFuncOptions().dim(1))};
}

LossOutput ClipTask::loss(const Batch& batch) {
  head_.clamp();
  auto [image, text] = encode(batch);
  return {head_.loss(image, text, true, comm_), {}};
}

void ClipTask::count_bad_records(const std::vector<Batch>& micro, dist::Comm& comm) {
  // Host memory over the host communicator: the step does not wait for the device.
  std::vector<int64_t> mine;
  for (const auto& b : micro) {
    const auto replaced = b.host_at("bad_records").contiguous();
    for (int64_t k = 0; k < replaced.numel(); ++k)
      if (const int64_t record = replaced.data_ptr<int64_t>()[k]; record >= 0) mine.push_back(record);
  }
  auto all = dist::gather_rows(torch::tensor(mine, torch::kInt64), &comm.host()).contiguous();
  std::vector<int64_t> records(all.data_ptr<int64_t>(), all.data_ptr<int64_t>() + all.numel());
  std::sort(records.begin(), records.end());  // the order of a 1-rank run
  bad_records_->add(records);
}

StepOutput ClipTask::forward_backward(const std::vector<Batch>& micro, StepContext& ctx) {
  comm_ = &ctx.comm;
  count_bad_records(micro, ctx.comm);
  return head_.step(micro, ctx, [&](const Batch& b) { return encode(b); });
}

std::map<std::string, double> ClipTask::evaluate(dist::Comm& comm) {
  if (model_) head_.clamp();  // CONCH, evaluated as it is, has no head
  return evaluate_clip(encoder_, cfg_, &comm, device_);
}

void ClipTask::export_model(const std::string& dir) {
  head_.clamp();
  models::export_hf_clip(model_, model_->config(), dir);
  tokenizer_->save_hf(dir);
}

nlohmann::json ClipTask::data_state() const {
  auto state = loader_state(*loader_);
  state["bad_records"] = bad_records_->records();
  return state;
}

void ClipTask::restore_data_state(const nlohmann::json& state) {
  restore_loader_state(*loader_, state, "clip");
  if (state.contains("bad_records")) bad_records_->restore(state.at("bad_records").get<std::vector<int64_t>>());
}

double ClipTask::epoch() const { return loader_epoch(*loader_); }

}  // namespace pathvlm::train
