// The `slide` task; see task.h.
#include "train/slide/task.h"

#include <algorithm>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "core/join.h"
#include "core/log.h"
#include "data/csv.h"
#include "dist/gather.h"
#include "eval/retrieval.h"
#include "eval/zeroshot.h"
#include "models/clip/weights.h"
#include "models/conch/weights.h"
#include "train/init_from.h"
#include "train/job_config.h"

namespace pathvlm::train {

namespace fs = std::filesystem;
namespace F = torch::nn::functional;

namespace {

// The dataset's batches plus the reports as CLIP ids ("input_ids"), tokenized by the loader's workers.
data::BatchBuilder with_report_ids(data::BatchBuilder bags, std::shared_ptr<const text::ClipTokenizer> tokenizer) {
  return [bags = std::move(bags), tokenizer = std::move(tokenizer)](const data::BatchRequest& request) {
    auto batch = bags(request);
    batch.tensors["input_ids"] = tokenizer->batch(batch.text("report"));
    return batch;
  };
}

text::ClipTokenizer slide_tokenizer(const SlideTextConfig& text) {
  return text::ClipTokenizer(text::clip_vocab_source(text.vocab, text.pretrained, "set slide.text.vocab"),
                             text.context_length);
}

// slide.data.labels: slide id -> label.
std::unordered_map<std::string, std::string> read_labels(const std::string& path) {
  std::unordered_map<std::string, std::string> labels;
  if (path.empty()) return labels;
  const auto rows = data::parse_csv(data::read_text_file(path, "slide.data.labels"), ',', path, "slide.data.labels");
  PATHVLM_CHECK(!rows.empty(), "slide.data.labels '", path, "' is empty");
  const int id = data::find_csv_column(rows[0].fields, {"slide_id", "slide"});
  const int label = data::find_csv_column(rows[0].fields, {"label"});
  PATHVLM_CHECK(id >= 0 && label >= 0, "slide.data.labels '", path, "' needs a header with slide_id and label columns");
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& f = rows[r].fields;
    PATHVLM_CHECK(static_cast<int>(f.size()) > std::max(id, label), "slide.data.labels '", path, "' line ",
                  rows[r].line, ": ", f.size(), " fields, fewer than the header's");
    labels[f[id]] = f[label];
  }
  return labels;
}

// Class index of every slide's label (its source's, else slide.data.labels'); errors name the slide whose label is
// not a class.
torch::Tensor class_indices(const data::SlideBagDataset& slides, const torch::Tensor& index,
                            const std::unordered_map<std::string, std::string>& labels,
                            const eval::ZeroShotSpec& spec, const std::string& where) {
  auto names = spec.class_names();
  auto idx = index.cpu();
  auto out = torch::empty({idx.size(0)}, torch::kLong);
  for (int64_t i = 0; i < idx.size(0); ++i) {
    const auto& slide = slides.slide(idx[i].item<int64_t>());
    std::string label = slide.label;
    if (auto it = labels.find(slide.id); label.empty() && it != labels.end()) label = it->second;
    auto it = std::find(names.begin(), names.end(), label);
    PATHVLM_CHECK(it != names.end(), where, ": slide '", slide.id, "' (", slide.source, ") has label '", label,
                  "', which is not a class of '", spec.source, "' (", join(names),
                  "); give labels with slide.data.labels or a label column");
    out[i] = static_cast<int64_t>(it - names.begin());
  }
  return out;
}

// Every rank's `parts` concatenated, in rank order, on the host; `empty` stands for a rank that has none.
torch::Tensor gather_parts(const std::vector<torch::Tensor>& parts, const torch::Tensor& empty, dist::Comm& comm) {
  return dist::gather_rows(parts.empty() ? empty : torch::cat(parts), &comm).cpu();
}

}  // namespace

models::ClipModelConfig text_tower_config(const SlideTextConfig& text) {
  models::ClipModelConfig c;
  c.preset = text.preset;
  c.hidden_act = text.hidden_act;
  c.context_length = text.context_length;
  return c;
}

data::SlideBagOptions slide_bag_options(const SlideDataConfig& data) {
  data::SlideBagOptions o;
  o.max_tiles = data.max_tiles;
  o.eval_max_tiles = data.eval_max_tiles;
  o.max_bad_fraction = data.max_bad_fraction;
  return o;
}

SlideModelFiles open_slide_model(const std::string& path) {
  const std::string dir = models::slide::slide_export_dir(path);
  SlideModelFiles files;
  files.model = models::slide::load_slide_report_model(dir);
  files.model->eval();
  files.tokenizer =
      std::make_shared<const text::ClipTokenizer>(dir, files.model->text_config().context_length);
  return files;
}

// ---- building --------------------------------------------------------------------------------------

void SlideTask::build_model(int64_t feature_dim) {
  PATHVLM_CHECK(cfg_.encoder.input_dim == feature_dim, "slide.encoder.input_dim is ", cfg_.encoder.input_dim,
                " but the tile features of the slides are ", feature_dim, "-dimensional: set slide.encoder.input_dim: ",
                feature_dim);
  if (cfg_.text.pretrained.empty()) {
    model_ = models::slide::SlideReportModel(cfg_.encoder, text_tower_config(cfg_.text));
  } else {
    auto clip = models::load_clip(cfg_.text.pretrained);
    auto text = clip->config();
    text.context_length = cfg_.text.context_length;
    model_ = models::slide::SlideReportModel(cfg_.encoder, text);
    model_->load_text(*clip, cfg_.text.pretrained);
  }
  head_ = ContrastiveHead(*model_, model_->logit_scale, cfg_.loss, /*fresh=*/cfg_.text.pretrained.empty());
  model_->to(device_);
  tokenizer_ = std::make_shared<const text::ClipTokenizer>(slide_tokenizer(cfg_.text));
}

void SlideTask::take_context(const TaskContext& ctx) {
  cfg_ = ctx.job.task_config<SlideTaskConfig>();
  device_ = ctx.device;
  comm_ = &ctx.comm;
  rank_ = ctx.rank;
  world_size_ = ctx.world_size;
  loader_options_ = task_loader_options(ctx, cfg_.data.workers, cfg_.data.prefetch);
}

void SlideTask::build(const TaskContext& ctx) {
  take_context(ctx);
  PATHVLM_CHECK(!cfg_.data.train.empty(), "slide.data.train is empty: name the training slides (`slides` shards from "
                "`pathvlm embed`, or a CSV manifest of TRIDENT/CLAM feature files with reports)");
  if (!cfg_.eval.classes.empty()) eval::load_zeroshot_spec(cfg_.eval.classes);  // bad files stop the run now
  labels_ = read_labels(cfg_.data.labels);

  train_data_ = std::make_shared<const data::SlideBagDataset>(
      data::SlideBagDataset::open(cfg_.data.train, slide_bag_options(cfg_.data)));
  build_model(train_data_->feature_dim());
  loader_ = std::make_unique<data::Loader>(str("slides ", join(cfg_.data.train)), train_data_->size(),
                                           with_report_ids(train_data_->builder(true), tokenizer_),
                                           loader_options_.batches(ctx.micro_batch_size, true));
  PATHVLM_CHECK(loader_->batches_per_epoch() > 0, "slide.data.train has ", train_data_->size(),
                " slides: fewer than one global micro-batch (", ctx.micro_batch_size, " x ", ctx.world_size, " ranks)");
  if (!cfg_.data.val.empty()) val_data_ = open_val_data();

  log_info("slide: encoder ", cfg_.encoder.kind, " (", models::count_parameters(*model_->slide_encoder),
           " parameters), text tower ", model_->text_config().text_layers, "x", model_->text_config().text_width,
           " (context ", model_->text_config().context_length, ", embed ", model_->text_config().embed_dim, "); ",
           format_count(static_cast<double>(models::count_parameters(*model_, true))), " trainable; loss ", cfg_.loss,
           "; ", train_data_->size(), " training slides of ", train_data_->feature_dim(),
           "-d tiles, up to ", cfg_.data.max_tiles, " tiles each per step; global contrastive batch ",
           ctx.micro_batch_size * ctx.grad_accum * ctx.world_size, " slides");
}

void SlideTask::build_for_eval(const TaskContext& ctx, const std::string& weights) {
  take_context(ctx);
  PATHVLM_CHECK(!cfg_.data.val.empty(), "nothing to evaluate: set slide.data.val (pathvlm eval: --val SLIDES)");
  if (!weights.empty() && models::is_conch(weights)) {
    PATHVLM_CHECK(!cfg_.eval.classes.empty(), "CONCH '", weights, "' classifies slides zero-shot: give the classes ",
                  "(pathvlm eval: --classes, a zero-shot YAML or CONCH's prompt JSON)");
    PATHVLM_CHECK(!cfg_.eval.topj.empty(), "slide.eval.topj is empty: list how many best tiles score a class");
    val_data_ = open_val_data(/*reports_required=*/false);
    labels_ = read_labels(cfg_.data.labels);
    const bool projected = cfg_.eval.tile_features == "projected";
    conch_ = std::make_unique<ConchSlideZeroShot>(weights, cfg_.text.vocab, projected, device_);
    PATHVLM_CHECK(val_data_->feature_dim() == conch_->feature_dim(), "slide.data.val (", join(cfg_.data.val),
                  ") holds ", val_data_->feature_dim(), "-d tile features but CONCH's ", cfg_.eval.tile_features,
                  " ones are ", conch_->feature_dim(), "-d (slide.eval.tile_features: pooled for TRIDENT's and ",
                  "CLAM's conch_v1, projected for pathvlm embed pool=proj)");
    conch_->set_classes(eval::load_zeroshot_spec(cfg_.eval.classes), cfg_.eval.batch_size);
    std::vector<std::string> topj;
    for (const int64_t j : cfg_.eval.topj) topj.push_back(std::to_string(j));
    log_info("eval: CONCH '", weights, "' zero-shot on ", val_data_->size(), " slides (", cfg_.eval.tile_features,
             " tile features; a class's score is the mean of its j best tiles, j = ", join(topj), ") on ",
             ctx.world_size, ctx.world_size == 1 ? " rank" : " ranks");
    return;
  }
  val_data_ = open_val_data();
  labels_ = read_labels(cfg_.data.labels);
  build_model(val_data_->feature_dim());
  if (!weights.empty()) load_init_from({{"pathvlm eval --model", InitSource{weights, {}, true}}}, state_tensors());
  log_info("eval: ", weights.empty() ? std::string("the configured initial weights") : weights, " on ", ctx.world_size,
           ctx.world_size == 1 ? " rank" : " ranks");
}

std::shared_ptr<const data::SlideBagDataset> SlideTask::open_val_data(bool reports_required) const {
  auto options = slide_bag_options(cfg_.data);
  options.reports_required = reports_required;
  return std::make_shared<const data::SlideBagDataset>(data::SlideBagDataset::open(cfg_.data.val, options));
}

std::vector<std::pair<std::string, torch::Tensor>> SlideTask::state_tensors() {
  head_.clamp();
  return Task::state_tensors();
}

// ---- training --------------------------------------------------------------------------------------

Batch SlideTask::next_batch() {
  auto batch = loader_->next();
  PATHVLM_CHECK(batch.has_value(), "slide: the training loader ended unexpectedly");
  return std::move(*batch);
}

std::pair<torch::Tensor, torch::Tensor> SlideTask::encode(const Batch& batch) {
  auto slide = model_->encode_slide(batch.at("features"), batch.at("coords"), batch.at("mask"));
  auto report = model_->encode_report(batch.at("input_ids"));
  const auto unit = F::NormalizeFuncOptions().dim(1);
  return {F::normalize(slide, unit), F::normalize(report, unit)};
}

LossOutput SlideTask::loss(const Batch& batch) {
  head_.clamp();
  auto [slide, report] = encode(batch);
  return {head_.loss(slide, report, true, comm_), {}};
}

StepOutput SlideTask::forward_backward(const std::vector<Batch>& micro, StepContext& ctx) {
  comm_ = &ctx.comm;
  return head_.step(micro, ctx, [&](const Batch& b) { return encode(b); });
}

// ---- evaluation ------------------------------------------------------------------------------------

std::map<std::string, double> SlideTask::evaluate(dist::Comm& comm) {
  if (conch_) return evaluate_conch(comm);
  head_.clamp();
  if (!val_data_) return {};
  torch::NoGradGuard no_grad;
  const std::string where = str("slide.data.val (", join(cfg_.data.val), ")");
  data::Loader loader(where, val_data_->size(), with_report_ids(val_data_->builder(false), tokenizer_),
                      loader_options_.batches(cfg_.eval.batch_size, false));
  std::vector<torch::Tensor> slides, reports, index;
  while (auto batch = loader.next()) {
    auto [slide, report] = encode(*batch);
    slides.push_back(slide.to(torch::kFloat));
    reports.push_back(report.to(torch::kFloat));
    index.push_back(batch->at("slide_index"));
  }
  const int64_t dim = model_->text_config().embed_dim;
  auto on_device = torch::TensorOptions().device(device_);
  auto all_slides = gather_parts(slides, torch::empty({0, dim}, on_device), comm);
  auto all_reports = gather_parts(reports, torch::empty({0, dim}, on_device), comm);
  auto all_index = gather_parts(index, torch::empty({0}, on_device.dtype(torch::kLong)), comm);
  PATHVLM_CHECK(all_slides.size(0) > 0, where, " holds no slides");

  std::map<std::string, double> out;
  auto retrieval = eval::retrieval_metrics(all_slides, all_reports, "slide", "report");
  for (auto& [k, v] : eval::metric_values(retrieval, "retrieval/")) out[k] = v;
  log_info("retrieval: ", eval::format_metrics(retrieval));

  if (!cfg_.eval.classes.empty()) {
    auto spec = eval::load_zeroshot_spec(cfg_.eval.classes);
    auto classifier = eval::zeroshot_classifier(spec, [&](const std::vector<std::string>& texts) {
      return model_->encode_report(tokenizer_->batch(texts).to(device_)).to(torch::kFloat).cpu();
    });
    auto labels = class_indices(*val_data_, all_index, labels_, spec, where);
    const auto classes = static_cast<int64_t>(spec.classes.size());
    auto m = eval::metrics_from_logits(eval::zeroshot_logits(all_slides, classifier), labels);
    for (auto& [k, v] : eval::metric_values(m, "zeroshot/")) out[k] = v;
    log_info("zero-shot slides (", classes, " classes, chance ", 1.0 / static_cast<double>(classes), "): ",
             eval::format_metrics(m));
    if (cfg_.eval.confusion) log_info("zero-shot confusion matrix:\n", eval::format_confusion(m, spec.class_names()));
  }
  return out;
}

std::map<std::string, double> SlideTask::evaluate_conch(dist::Comm& comm) {
  torch::NoGradGuard no_grad;
  const std::string where = str("slide.data.val (", join(cfg_.data.val), ")");
  const auto spec = eval::load_zeroshot_spec(cfg_.eval.classes);
  const auto& topj = cfg_.eval.topj;
  const auto ways = static_cast<int64_t>(topj.size()), classes = static_cast<int64_t>(spec.classes.size());
  data::Loader loader(where, val_data_->size(), val_data_->builder(false),
                      loader_options_.batches(cfg_.eval.batch_size, false));
  std::vector<torch::Tensor> scores, index;
  while (auto batch = loader.next()) {
    const auto& features = batch->at("features");
    const auto& mask = batch->at("mask");
    for (int64_t b = 0; b < features.size(0); ++b)
      scores.push_back(conch_->slide_scores(features[b].index({mask[b]}), topj).view({1, ways * classes}));
    index.push_back(batch->at("slide_index"));
  }
  auto on_device = torch::TensorOptions().device(device_);
  auto all_scores =
      gather_parts(scores, torch::empty({0, ways * classes}, on_device), comm).view({-1, ways, classes});
  auto all_index = gather_parts(index, torch::empty({0}, on_device.dtype(torch::kLong)), comm);
  PATHVLM_CHECK(all_index.size(0) > 0, where, " holds no slides");
  const auto labels = class_indices(*val_data_, all_index, labels_, spec, where);

  std::map<std::string, double> out;
  for (int64_t k = 0; k < ways; ++k) {
    auto m = eval::metrics_from_logits(all_scores.select(1, k) * conch_->logit_scale(), labels);
    for (auto& [key, v] : eval::metric_values(m, str("zeroshot_topj", topj[k], "/"))) out[key] = v;
    log_info("zero-shot slides, classes scored by their ", topj[k], " best tiles (", classes, " classes, chance ",
             1.0 / static_cast<double>(classes), "): ", eval::format_metrics(m));
    if (cfg_.eval.confusion) log_info("confusion matrix:\n", eval::format_confusion(m, spec.class_names()));
  }
  return out;
}

// ---- export and data state -------------------------------------------------------------------------

void SlideTask::export_model(const std::string& dir) {
  head_.clamp();
  models::slide::save_slide_report_model(model_, dir);
  tokenizer_->save_hf(dir);
}

nlohmann::json SlideTask::data_state() const { return loader_state(*loader_); }

void SlideTask::restore_data_state(const nlohmann::json& state) { restore_loader_state(*loader_, state, "slide"); }

double SlideTask::epoch() const { return loader_epoch(*loader_); }

}  // namespace pathvlm::train
