// The `instruct` task; see task.h.
#include "train/instruct/task.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <unordered_map>

#include "core/error.h"
#include "core/log.h"
#include "core/text_file.h"
#include "data/image.h"
#include "data/length_grouped.h"
#include "dist/comm.h"
#include "dist/gather.h"
#include "dist/process_group.h"
#include "dist/reducer.h"
#include "eval/few_shot.h"
#include "eval/knn.h"
#include "generate/generate.h"
#include "models/clip/fixed_random.h"
#include "models/clip/weights.h"
#include "models/conch/weights.h"
#include "models/layers/activation_checkpoint.h"
#include "models/hidden_states.h"
#include "models/llama/weights.h"
#include "models/llava/weights.h"
#include "models/vit/hf_weights.h"
#include "models/vit/timm_weights.h"
#include "models/slide/report_model.h"
#include "models/swin/weights.h"
#include "train/init_from.h"
#include "train/job_config.h"
#include "train/lm/task.h"

namespace pathvlm::train {

namespace fs = std::filesystem;

namespace {

const char* const kVisionPrefix = "vision_tower.";

// The instruct keys an LmConfig made by language_model_section stands for, for its errors.
const LmConfigKeys kInstructKeys{"instruct.tokenizer", "instruct.max_length"};

// The lm section a language model entry amounts to, so instruct reuses lm's tokenizer and shape rules.
LmConfig language_model_section(const InstructConfig& cfg, const std::string& hf_dir) {
  LmConfig lm;
  if (hf_dir.empty()) lm.model = cfg.language_model;
  lm.pretrained = hf_dir;
  lm.tokenizer = cfg.tokenizer;
  lm.seq_len = cfg.max_length;
  return lm;
}

// The config of a preset tower (instruct.vision_tower names a preset).
models::ClipModelConfig preset_tower_config(const InstructConfig& cfg) {
  models::ClipModelConfig config;
  config.preset = cfg.vision_tower;
  config.hidden_act = cfg.vision_hidden_act.empty() ? "gelu" : cfg.vision_hidden_act;
  config.image_size = static_cast<int>(cfg.vision_image_size);
  return config;
}

}  // namespace

models::ClipModel make_instruct_vision_clip(const InstructConfig& cfg) {
  if (models::is_clip_preset(cfg.vision_tower)) return models::fixed_random_clip(preset_tower_config(cfg));
  PATHVLM_CHECK(fs::exists(cfg.vision_tower), "instruct.vision_tower '", cfg.vision_tower,
                "' is neither a CLIP preset (tiny, ViT-B-32, ViT-B-16, ViT-L-14) nor an existing path");
  models::ClipLoadOptions options;
  options.hidden_act = cfg.vision_hidden_act;
  return models::load_clip_image_tower(cfg.vision_tower, options);
}

namespace {

// A ViT tile encoder at `path` (timm's, transformers', or CONCH's trunk, whose hidden states `embed --tokens` caches
// too), else null.
models::Vit vit_tower_at(const std::string& path) {
  if (models::is_clip_preset(path)) return nullptr;
  PATHVLM_CHECK(!models::is_ctranspath(path), "instruct.vision_tower '", path, "' is CTransPath, a Swin whose "
                "stages differ in width: LLaVA's projector reads one hidden state's tokens of a CLIP or a ViT");
  if (models::is_conch(path)) return models::load_conch(path).model->trunk;
  if (models::is_timm_vit(path)) return models::load_timm_vit(path);
  return models::is_hf_vit(path) ? models::load_hf_vit(path) : nullptr;
}

}  // namespace

models::LlavaVisionTower make_instruct_vision_tower(const InstructConfig& cfg) {
  const int layer = cfg.model.vision_feature_layer;
  const bool keep_cls = cfg.model.vision_feature_select == "full";
  const auto& path = cfg.vision_tower;
  models::LlavaVisionTower tower{nullptr};
  if (models::Vit vit = vit_tower_at(path)) {
    PATHVLM_CHECK(cfg.vision_hidden_act.empty() && cfg.vision_image_size == 0, "instruct.vision_tower '", path,
                  "' is a ViT, whose activation and input size its own files give: leave instruct.vision_hidden_act "
                  "and instruct.vision_image_size unset");
    tower = models::LlavaVisionTower(vit, layer, keep_cls);
  } else {
    tower = models::LlavaVisionTower(make_instruct_vision_clip(cfg), layer, keep_cls);
  }
  tower->normalise_with(given_or(cfg.vision_image_mean, tower->shape().mean),
                        given_or(cfg.vision_image_std, tower->shape().std));
  return tower;
}

std::shared_ptr<const text::Tokenizer> make_instruct_tokenizer(const InstructConfig& cfg) {
  return make_lm_tokenizer(language_model_section(cfg, is_hf_dir(cfg.language_model) ? cfg.language_model : ""),
                           kInstructKeys);
}

models::LlamaForCausalLM make_instruct_language_model(const InstructConfig& cfg,
                                                      const text::Tokenizer& tokenizer,
                                                      bool checkpoint_layers) {
  const std::string hf_dir = is_hf_dir(cfg.language_model) ? cfg.language_model : "";
  PATHVLM_CHECK(!hf_dir.empty() || !fs::exists(cfg.language_model), "instruct.language_model '", cfg.language_model,
                "' exists but has no config.json: name a Hugging Face LLaMA directory or a preset");
  models::LlamaOptions options;
  options.checkpoint_layers = checkpoint_layers;
  options.init_weights = hf_dir.empty();  // loaded weights overwrite every tensor
  return models::LlamaForCausalLM(
      lm_model_config(language_model_section(cfg, hf_dir), tokenizer, hf_dir, kInstructKeys), options);
}

int64_t instruct_image_tokens(const InstructConfig& cfg) {
  if (!cfg.slide_encoder.empty())
    return models::slide::load_slide_report_model(cfg.slide_encoder)->slide_encoder->num_tokens();
  if (models::is_clip_preset(cfg.vision_tower)) {  // its shape needs no tower drawn (a ViT-L/14's takes seconds)
    const auto tower = models::resolve_clip_config(preset_tower_config(cfg));
    const int64_t side = tower.image_size / tower.patch_size;
    return side * side + (cfg.model.vision_feature_select == "full" ? 1 : 0);
  }
  return make_instruct_vision_tower(cfg)->num_tokens();
}

data::Interpolation tower_interpolation(const InstructConfig& cfg, const models::VisionTowerShape& tower) {
  return data::parse_interpolation(tower.interpolation, str("instruct.vision_tower '", cfg.vision_tower, "'"));
}

data::InstructImages open_instruct_images(const InstructConfig& cfg, const std::vector<std::string>& sources,
                                          const models::VisionTowerShape* tower) {
  data::InstructSlideOptions slides;
  slides.tiles = cfg.data.slide_tiles;
  slides.max_bad_fraction = cfg.data.max_bad_slide_fraction;
  return data::InstructImages::open(sources, tower ? tower->image_size : 0, slides, cfg.model.pads_to_square(),
                                    tower ? tower->mean : data::kOpenAiMean,
                                    tower ? tower_interpolation(cfg, *tower) : data::Interpolation::bicubic);
}

// ---- building --------------------------------------------------------------------------------------

void InstructTask::build_common(const TaskContext& ctx) {
  device_ = ctx.device;
  rank_ = ctx.rank;
  world_size_ = ctx.world_size;
  seed_ = ctx.seed;
  micro_batch_ = ctx.micro_batch_size;
  grad_accum_ = ctx.grad_accum;
  loader_options_ = task_loader_options(ctx, cfg_.data.workers, cfg_.data.prefetch);
  hf_language_model_ = is_hf_dir(cfg_.language_model) ? cfg_.language_model : "";
  tokenizer_ = make_instruct_tokenizer(cfg_);
  template_ = std::make_shared<const text::ConversationTemplate>(
      text::ConversationTemplate::named(cfg_.conversation_template));

  for (const auto& name : ctx.job.train.activation_checkpointing)
    PATHVLM_CHECK(name == "layers" || name == "all", "train.activation_checkpointing: '", name,
                  "' is not a part of the instruct model (known: layers, all: the language model's decoder layers)");
  auto language_model = make_instruct_language_model(
      cfg_, *tokenizer_, models::checkpointing_enabled(ctx.job.train.activation_checkpointing, "layers"));
  const auto& lm_config = language_model->config();
  if (cfg_.slide_encoder.empty()) {
    model_ = models::LlavaModel(cfg_.model, make_instruct_vision_tower(cfg_), language_model);
    const auto& tower = model_->vision_tower->shape();
    tower_pixels_ = data::PixelNormalizer(device_, tower.mean, tower.std);
  } else {
    slide_encoder_ = models::slide::load_slide_report_model(cfg_.slide_encoder)->slide_encoder;
    for (auto& p : slide_encoder_->parameters()) p.set_requires_grad(false);
    slide_encoder_->eval();
    slide_encoder_->to(device_);
    model_ = models::LlavaModel(cfg_.model, slide_encoder_->num_tokens(), slide_encoder_->width(), language_model);
  }
  model_->to(device_);
  llava_checkpoint_ = models::read_llava_checkpoint(hf_language_model_);
  llava_projector_adopted_ = llava_checkpoint_ && adopts_llava_projector(*llava_checkpoint_);
  open_images(cfg_.data.images);
  if (images_->kind() == data::InstructImages::Kind::features) {
    const auto& tower = model_->vision_tower->shape();
    PATHVLM_CHECK(images_->feature_tokens() == tower.hidden_rows() && images_->feature_width() == tower.width,
                  "instruct.data.images: the cached features are [", images_->feature_tokens(), ",",
                  images_->feature_width(), "] per image but the tower '", cfg_.vision_tower, "' gives [",
                  tower.hidden_rows(), ",", tower.width,
                  "] (class token included): cache them with this tower (`pathvlm embed --tiles`)");
    const int layers = tower.layers;
    if (auto layer = images_->feature_layer())
      PATHVLM_CHECK(models::hidden_state_index(*layer, layers) ==
                        models::hidden_state_index(cfg_.model.vision_feature_layer, layers),
                    "instruct.data.images: the cached features come from tower layer ", *layer,
                    " but instruct.model.vision_feature_layer is ", cfg_.model.vision_feature_layer);
    const auto normalisation = data::describe_pixel_normalisation(tower.mean, tower.std);
    if (auto made = images_->feature_pixel_normalisation())
      PATHVLM_CHECK(*made == normalisation, "instruct.data.images: the cached features were made from pixels "
                    "normalised with ", *made, " but the tower '", cfg_.vision_tower, "' takes ", normalisation,
                    ": cache them with the tower's statistics (embed without image_mean / image_std), or give the "
                    "tower theirs (instruct.vision_image_mean / vision_image_std)");
  }
  if (!cfg_.data.eval.empty()) eval_data_ = dataset(cfg_.data.eval, "instruct.data.eval");
  if (!cfg_.eval.questions.empty()) questions_ = eval::read_vqa_questions(cfg_.eval.questions);
  if (!cfg_.eval.support.empty())
    support_ = std::make_shared<const eval::SupportSet>(eval::read_support_set(cfg_.eval.support));
  PATHVLM_CHECK(cfg_.eval.few_shot.empty() || (support_ && !questions_.empty()),
                "instruct.eval.few_shot needs instruct.eval.support (the examples) and instruct.eval.questions (the "
                "query images: those of the open questions whose answer names a class)");
  const std::string encoder =
      slide_encoder_ ? "slide encoder '" + cfg_.slide_encoder + "' (frozen, "
                     : str("tower '", cfg_.vision_tower, "' (", model_->vision_tower->shape().kind, ", pixel ",
                           data::describe_pixel_normalisation(model_->vision_tower->shape().mean,
                                                              model_->vision_tower->shape().std),
                           ", frozen, ");
  log_info("instruct: ", encoder, model_->image_tokens(), " rows per image of width ",
           model_->vision_hidden(), "), projector ", cfg_.model.projector, ", LLaMA ",
           hf_language_model_.empty() ? "preset '" + cfg_.language_model + "'" : "'" + hf_language_model_ + "'", " (",
           lm_config.num_hidden_layers, " layers, width ", lm_config.hidden_size, "), ",
           format_count(static_cast<double>(lm_config.num_parameters())), " LLM parameters; template ",
           template_->name(), "; images as ", image_kind_text());
}

bool InstructTask::adopts_llava_projector(const models::LlavaCheckpoint& llava) const {
  const std::string source = "instruct.language_model '" + llava.dir + "' (" + llava.description() + ")";
  const int64_t text_width = model_->language_model->config().hidden_size;
  const bool fits = model_->vision_tower && llava.projector == cfg_.model.projector &&
                    llava.vision_width == model_->vision_hidden();
  if (!fits) {
    log_info(source, ": its projector (", llava.projector, ", ", llava.vision_width, " -> ", text_width,
             ") is not this model's (", cfg_.model.projector, ", ", model_->vision_hidden(), " -> ", text_width,
             slide_encoder_ ? ", after a slide encoder" : "", "): the projector starts from random weights");
    return false;
  }
  const auto keys = llava.keys();
  const int layers = model_->vision_tower->shape().layers;
  PATHVLM_CHECK(models::hidden_state_index(llava.vision_feature_layer, layers) ==
                    models::hidden_state_index(cfg_.model.vision_feature_layer, layers),
                source, ": its projector was trained on tower layer ", llava.vision_feature_layer,
                " (", keys.feature_layer, ") but instruct.model.vision_feature_layer is ",
                cfg_.model.vision_feature_layer, ": set it to ", llava.vision_feature_layer);
  PATHVLM_CHECK(llava.vision_feature_select == cfg_.model.vision_feature_select, source,
                ": its projector was trained on the ",
                llava.vision_feature_select == "patch" ? "patch rows" : "CLS and patch rows",
                " (", keys.feature_select, ") but instruct.model.vision_feature_select is ",
                cfg_.model.vision_feature_select, ": set it to ", llava.vision_feature_select);
  if (llava.image_aspect_ratio != cfg_.model.image_aspect_ratio)
    log_warn(source, " was trained with image_aspect_ratio ", llava.image_aspect_ratio,
             " but instruct.model.image_aspect_ratio is ", cfg_.model.image_aspect_ratio);
  log_info(source, ": its projector (", llava.projector, ", ", llava.vision_width, " -> ", text_width,
           ") is loaded with its language model; it was trained with the tower ",
           llava.vision_tower.empty() ? "(not named)" : "'" + llava.vision_tower + "'", ", this run's is '",
           cfg_.vision_tower, "'");
  return true;
}

std::string InstructTask::image_kind_text() const {
  switch (images_->kind()) {
    case data::InstructImages::Kind::features: return "cached tower features";
    case data::InstructImages::Kind::slides: return "slides (bags of up to " + std::to_string(cfg_.data.slide_tiles) +
                                                    " tiles)";
    case data::InstructImages::Kind::pixels: return "pixels";
    default: return "none (text only)";
  }
}

void InstructTask::open_images(const std::vector<std::string>& sources) {
  const auto* tower = model_->vision_tower ? &model_->vision_tower->shape() : nullptr;
  images_ = std::make_shared<const data::InstructImages>(open_instruct_images(cfg_, sources, tower));
  const bool slides_given = images_->kind() == data::InstructImages::Kind::slides;
  PATHVLM_CHECK(!slides_given || slide_encoder_, "instruct.data.images names slide sources (", images_->sources_text(),
                ") but instruct.slide_encoder is empty: name the `slide` run whose encoder reads them");
  PATHVLM_CHECK(!slide_encoder_ || slides_given || images_->kind() == data::InstructImages::Kind::none,
                "instruct.slide_encoder is set, so instruct.data.images must list slide sources (`slides` shards, "
                "slide CSV manifests), not ", images_->sources_text());
  if (cfg_.model.pads_to_square() && images_->kind() == data::InstructImages::Kind::features)
    log_warn("instruct.model.image_aspect_ratio is pad, but the images are cached tower features (",
             images_->sources_text(), "): they were made from center crops by `pathvlm embed`, so images that are "
             "not square are cropped, not padded; give the tiles shards or image folders to pad them");
  if (slides_given)
    PATHVLM_CHECK(images_->feature_width() == slide_encoder_->config().input_dim, "instruct.data.images: the slides' "
                  "tile features are ", images_->feature_width(), "-dimensional but the slide encoder of '",
                  cfg_.slide_encoder, "' takes ", slide_encoder_->config().input_dim,
                  ": give the slides embedded with the encoder that run was trained on");
}

std::shared_ptr<const data::InstructDataset> InstructTask::dataset(const std::vector<std::string>& paths,
                                                                   const std::string& key) const {
  data::InstructDatasetOptions o;
  o.key = key;
  o.max_malformed_fraction = cfg_.data.max_malformed_fraction;
  o.max_missing_images_fraction = cfg_.data.max_missing_images_fraction;
  o.max_length = cfg_.max_length;
  o.image_tokens = model_->image_tokens();
  auto ds = std::make_shared<const data::InstructDataset>(
      data::InstructDataset::build(paths, *template_, *tokenizer_, images_, o));
  std::istringstream report(ds->report());
  for (std::string line; std::getline(report, line);) log_info(line);
  return ds;
}

void InstructTask::build(const TaskContext& ctx) {
  cfg_ = ctx.job.task_config<InstructConfig>();
  PATHVLM_CHECK(!cfg_.data.train.empty(), "instruct.data.train is empty: name LLaVA record files (.json / .jsonl; "
                "`pathvlm synth instruct --out DIR` writes a demo set)");
  build_common(ctx);
  train_data_ = dataset(cfg_.data.train, "instruct.data.train");
  auto options = loader_options_.batches(ctx.micro_batch_size, /*train=*/true);
  if (cfg_.data.group_by_length) {
    const auto lengths = train_data_->modality_lengths();
    const data::LengthGrouping grouping{world_size_, micro_batch_, grad_accum_};
    const uint64_t seed = seed_;
    options.epoch_order = [lengths, grouping, seed](int64_t epoch) {
      return data::length_grouped_order(lengths, grouping, seed, epoch);
    };
    const auto padding = data::length_grouping_padding(lengths, grouping, seed, 0);
    log_info("instruct: length-grouped batches pad ", padding.grouped_padding_per_batch,
             " positions per micro-batch against ", padding.random_padding_per_batch, " shuffled (",
             padding.saved_per_batch(), " saved)");
  }
  auto data = train_data_;
  loader_ = std::make_unique<data::Loader>(
      "instruct.data.train", data->size(), [data](const data::BatchRequest& r) { return data->batch(r); }, options);
  PATHVLM_CHECK(loader_->batches_per_epoch() > 0, "instruct.data.train has ", data->size(),
                " samples: fewer than one global micro-batch (", ctx.micro_batch_size, " x ", ctx.world_size,
                " ranks)");
}

void InstructTask::build_for_eval(const TaskContext& ctx, const std::string& weights) {
  cfg_ = ctx.job.task_config<InstructConfig>();
  build_common(ctx);
  auto sources = init_sources();
  if (!weights.empty()) sources.push_back({"pathvlm eval --model", InitSource{weights, {}, false}});
  if (!sources.empty()) load_init_from(sources, state_tensors());
  log_info("eval: ", weights.empty() ? cfg_.language_model : weights, " on ", ctx.world_size,
           ctx.world_size == 1 ? " rank" : " ranks");
}

std::vector<std::pair<std::string, torch::Tensor>> InstructTask::state_tensors() {
  auto all = Task::state_tensors();
  all.erase(std::remove_if(all.begin(), all.end(), [](const auto& t) { return t.first.rfind(kVisionPrefix, 0) == 0; }),
            all.end());
  return all;
}

std::vector<KeyedInitSource> InstructTask::init_sources() const {
  if (hf_language_model_.empty()) return {};
  // Not strict: the projector is not in a LLaMA release. A LLaVA checkpoint's tower is loaded as the tower.
  InitSource source{hf_language_model_, {"model. -> language_model.model.", "lm_head. -> language_model.lm_head."},
                    false};
  if (llava_checkpoint_) {
    source.map = llava_checkpoint_->init_renames(llava_projector_adopted_);
    source.skip = llava_checkpoint_->init_skipped(llava_projector_adopted_);
  }
  // The language model is built without initialising its weights: every one must come from the source.
  return {{"instruct.language_model", source, {"language_model."}}};
}

// ---- training --------------------------------------------------------------------------------------

torch::Tensor InstructTask::slide_tokens(const torch::Tensor& features, const torch::Tensor& coords,
                                        const torch::Tensor& mask) {
  if (features.size(0) == 0) return no_image_features();
  torch::NoGradGuard no_grad;
  return slide_encoder_->forward(features.to(device_), coords.to(device_), mask.to(device_)).tokens;
}

torch::Tensor InstructTask::select_cached(const torch::Tensor& features) const {
  return model_->vision_tower->keep_cls() ? features : features.narrow(1, 1, features.size(1) - 1);
}

models::LlavaBatch InstructTask::llava_batch(const Batch& batch) {
  models::LlavaBatch b;
  b.input_ids = batch.at("input_ids");
  b.labels = batch.at("labels");
  b.attention_mask = batch.at("attention_mask");
  if (auto it = batch.tensors.find("features"); it != batch.tensors.end()) b.features = select_cached(it->second);
  if (auto it = batch.tensors.find("slide_features"); it != batch.tensors.end())
    b.features = slide_tokens(it->second, batch.at("slide_coords"), batch.at("slide_mask"));
  if (auto it = batch.tensors.find("pixels"); it != batch.tensors.end() && it->second.size(0) > 0)
    b.pixels = tower_pixels_(it->second);
  return b;
}

Batch InstructTask::next_batch() {
  auto batch = loader_->next();
  PATHVLM_CHECK(batch.has_value(), "instruct: the training loader ended unexpectedly");
  return std::move(*batch);
}

LossOutput InstructTask::loss(const Batch& batch) {
  auto l = model_->forward(llava_batch(batch));
  return {l.sum / static_cast<float>(std::max<int64_t>(l.tokens, 1)), {}};
}

namespace {
// Supervised targets of a batch: labels that are predicted (every position but the first can be).
torch::Tensor supervised_targets(const Batch& b) {
  const auto& labels = b.at("labels");
  return (labels.narrow(1, 1, labels.size(1) - 1) != text::kIgnoreIndex).sum().to(torch::kDouble);
}
}  // namespace

StepOutput InstructTask::forward_backward(const std::vector<Batch>& micro, StepContext& ctx) {
  PATHVLM_CHECK(!micro.empty(), "instruct: no micro-batches");
  // The step's loss is the mean over every supervised token of the global batch: this rank's summed losses divided
  // by the global count, times the world size because the Reducer averages the gradients over the ranks.
  auto count = torch::zeros({1}, torch::TensorOptions().dtype(torch::kDouble).device(device_));
  for (const auto& b : micro) count += supervised_targets(b);
  const auto scale = global_mean_scale(count, ctx.comm);
  StepOutput out;
  for (size_t i = 0; i < micro.size(); ++i) {
    ctx.reducer.prepare_backward(/*sync=*/i + 1 == micro.size());
    auto loss = model_->forward(llava_batch(micro[i])).sum * scale;
    loss.backward();
    out.loss = out.loss.defined() ? out.loss + loss.detach() : loss.detach();
  }
  ctx.reducer.finish_backward();
  return out;
}

// ---- evaluation ------------------------------------------------------------------------------------

std::map<std::string, double> InstructTask::evaluate(dist::Comm& comm) {
  torch::NoGradGuard no_grad;
  std::map<std::string, double> metrics;
  for (auto part : {&InstructTask::evaluate_loss, &InstructTask::evaluate_vqa, &InstructTask::evaluate_few_shot})
    for (const auto& [name, value] : (this->*part)(comm)) metrics[name] = value;
  return metrics;
}

std::map<std::string, double> InstructTask::evaluate_loss(dist::Comm& comm) {
  if (!eval_data_) return {};
  const int64_t records =
      cfg_.eval.max_samples > 0 ? std::min(cfg_.eval.max_samples, eval_data_->size()) : eval_data_->size();
  auto data = eval_data_;
  data::Loader loader("instruct.data.eval", records, [data](const data::BatchRequest& r) { return data->batch(r); },
                      loader_options_.batches(cfg_.eval.batch_size, /*train=*/false));
  // One row (loss sum, tokens) per batch; gathered in rank order they are the one-process pass's batches.
  std::vector<torch::Tensor> rows;
  while (auto batch = loader.next()) {
    auto l = model_->forward(llava_batch(*batch));
    rows.push_back(torch::stack({l.sum.detach().to(torch::kDouble).cpu(),
                                 torch::tensor(static_cast<double>(l.tokens), torch::kDouble)}));
  }
  auto mine = rows.empty() ? torch::empty({0, 2}, torch::kDouble) : torch::stack(rows);
  auto all = dist::gather_rows(mine.to(device_), &comm).cpu();
  double sum = 0, tokens = 0;
  auto a = all.accessor<double, 2>();
  for (int64_t i = 0; i < all.size(0); ++i) sum += a[i][0], tokens += a[i][1];
  const double loss = sum / std::max(1.0, tokens);
  log_info("instruct.data.eval: loss ", loss, ", perplexity ", std::exp(loss), " (", static_cast<int64_t>(tokens),
           " supervised tokens)");
  return {{"eval/loss", loss}, {"eval/perplexity", std::exp(loss)}};
}

torch::Tensor InstructTask::no_image_features() const {
  return torch::empty({0, model_->image_tokens(), model_->vision_hidden()}, torch::kFloat).to(device_);
}

torch::Tensor InstructTask::image_features(const std::vector<std::string>& names) {
  torch::NoGradGuard no_grad;
  PATHVLM_CHECK(images_, "instruct: no image sources");
  std::vector<torch::Tensor> rows;
  std::vector<data::InstructImages::Ref> refs;
  for (const auto& name : names) {
    auto ref = images_->find(name);
    PATHVLM_CHECK(ref.has_value(), "instruct: image '", name, "' is in none of: ", images_->sources_text());
    refs.push_back(*ref);
  }
  if (refs.empty()) return no_image_features();
  if (images_->kind() == data::InstructImages::Kind::slides) {
    const auto bags = images_->slide_bags(refs);
    return slide_tokens(bags.features, bags.coords, bags.mask);
  }
  for (const auto& ref : refs)
    rows.push_back(images_->kind() == data::InstructImages::Kind::features ? images_->features(ref)
                                                                           : images_->pixels(ref));
  auto stacked = torch::stack(rows);
  if (images_->kind() == data::InstructImages::Kind::features) return select_cached(stacked.to(device_));
  return model_->image_features(tower_pixels_(stacked));
}

torch::Tensor InstructTask::image_file_features(const std::vector<std::string>& files) {
  torch::NoGradGuard no_grad;
  PATHVLM_CHECK(model_->vision_tower, "instruct: this run reads slides (instruct.slide_encoder '", cfg_.slide_encoder,
                "'), not image files");
  const auto& tower = model_->vision_tower->shape();
  std::vector<torch::Tensor> pixels;
  for (const auto& file : files)
    pixels.push_back(data::instruct_pixels(data::read_image(file), tower.image_size, cfg_.model.pads_to_square(),
                                           tower.mean, tower_interpolation(cfg_, tower)));
  if (pixels.empty()) return no_image_features();
  return model_->image_features(tower_pixels_(torch::stack(pixels)));
}

std::vector<generate::Generation> InstructTask::reply(const std::vector<text::Conversation>& conversations,
                                                      const std::vector<torch::Tensor>& images,
                                                      generate::GenerateOptions options,
                                                      generate::GenerationStats* stats) {
  torch::NoGradGuard no_grad;
  PATHVLM_CHECK(conversations.size() == images.size(), "instruct: ", conversations.size(), " conversations but ",
                images.size(), " image sets");
  std::vector<std::vector<int64_t>> prompts;
  std::vector<torch::Tensor> features;
  for (size_t i = 0; i < conversations.size(); ++i) {
    prompts.push_back(template_->generation_prompt(conversations[i], *tokenizer_).input_ids);
    if (images[i].defined() && images[i].size(0) > 0) features.push_back(images[i]);
  }
  const auto rows = features.empty() ? torch::Tensor() : model_->project(torch::cat(features));
  const auto in = model_->prompt_embeds(prompts, rows);
  for (const auto& stop : template_->stop_strings()) options.stop.push_back(stop);
  options.eos_id = template_->reply_end_id(*tokenizer_);
  const auto tokenizer = tokenizer_;
  return generate::generate_from_embeds(model_->language_model, {in.embeds, in.attention_mask}, options,
                                        [tokenizer](const std::vector<int64_t>& ids) { return tokenizer->decode(ids); },
                                        stats);
}

std::vector<std::string> InstructTask::answer(const std::vector<text::Conversation>& conversations,
                                              const std::vector<torch::Tensor>& images) {
  generate::GenerateOptions options;
  options.max_new_tokens = cfg_.eval.max_new_tokens;
  std::vector<std::string> out;
  for (auto& g : reply(conversations, images, options)) {
    auto& t = g.text;
    t.erase(0, t.find_first_not_of(" \n"));
    t.erase(t.find_last_not_of(" \n") + 1);
    out.push_back(std::move(t));
  }
  return out;
}

std::vector<std::string> InstructTask::answer_all(int64_t n, const std::function<EvalPrompt(int64_t)>& prompt,
                                                  dist::Comm& comm) {
  const auto [begin, end] = data::eval_share(n, cfg_.eval.batch_size, rank_, world_size_);
  nlohmann::json mine = nlohmann::json::array();
  for (int64_t first = begin; first < end; first += cfg_.eval.batch_size) {
    std::vector<text::Conversation> conversations;
    std::vector<torch::Tensor> images;
    for (int64_t i = first; i < std::min(end, first + cfg_.eval.batch_size); ++i) {
      auto p = prompt(i);
      conversations.push_back(std::move(p.conversation));
      images.push_back(std::move(p.images));
    }
    for (auto& a : answer(conversations, images)) mine.push_back(std::move(a));
  }
  std::vector<std::string> answers;
  for (const auto& part : dist::allgather_strings(comm, device_, mine.dump()))
    for (const auto& a : nlohmann::json::parse(part)) answers.push_back(a.get<std::string>());
  PATHVLM_CHECK(static_cast<int64_t>(answers.size()) == n, "instruct: gathered ", answers.size(), " answers for ", n,
                " prompts");
  return answers;
}

std::map<std::string, double> InstructTask::evaluate_vqa(dist::Comm& comm) {
  if (questions_.empty()) return {};
  const int64_t n = cfg_.eval.max_samples > 0 ? std::min<int64_t>(cfg_.eval.max_samples, questions_.size())
                                              : static_cast<int64_t>(questions_.size());
  const auto answers = answer_all(n, [this](int64_t i) {
    const auto& q = questions_[i];
    const std::string prompt = q.image.empty() ? q.text : std::string(text::kImagePlaceholder) + "\n" + q.text;
    return EvalPrompt{{q.question_id, {{text::Speaker::human, prompt}}},
                      image_features(q.image.empty() ? std::vector<std::string>{} : std::vector{q.image})};
  }, comm);
  std::vector<eval::VqaItem> items;
  for (int64_t i = 0; i < n; ++i)
    items.push_back({questions_[i].question_id, questions_[i].answer, answers[i], questions_[i].type});
  const auto scores = eval::score_vqa(items);
  std::istringstream report(eval::format_vqa_report(scores));
  for (std::string line; std::getline(report, line);) log_info("vqa: ", line);
  std::map<std::string, double> metrics;
  for (const auto& [name, value] : eval::vqa_metric_values(scores, "eval/vqa_")) metrics[name] = value;
  return metrics;
}

std::map<std::string, double> InstructTask::evaluate_few_shot(dist::Comm& comm) {
  if (cfg_.eval.few_shot.empty()) return {};
  // Queries: the images of the open questions whose answer names a support class, each once, in file order.
  const auto names = support_->class_names();
  std::vector<std::string> queries;
  std::vector<int64_t> expected;
  for (const auto& q : questions_) {
    if (q.image.empty() || q.type != eval::VqaQuestionType::Open) continue;
    const int64_t c = eval::predicted_class(q.answer, names);
    if (c < 0 || std::find(queries.begin(), queries.end(), q.image) != queries.end()) continue;
    queries.push_back(q.image);
    expected.push_back(c);
  }
  if (cfg_.eval.max_samples > 0 && static_cast<int64_t>(queries.size()) > cfg_.eval.max_samples)
    queries.resize(cfg_.eval.max_samples), expected.resize(cfg_.eval.max_samples);
  const auto n = static_cast<int64_t>(queries.size());
  PATHVLM_CHECK(n > 0, "instruct.eval.few_shot: no open question of '", cfg_.eval.questions,
                "' has an image and an answer naming a class of '", cfg_.eval.support, "'");

  // The support tiles go through the tower once: every prompt's examples and the kNN baseline use these features.
  std::vector<std::string> support_tiles;
  std::vector<int64_t> support_labels;
  std::unordered_map<std::string, int64_t> support_row;
  for (size_t c = 0; c < support_->classes.size(); ++c)
    for (const auto& tile : support_->classes[c].tiles) {
      support_row.emplace(tile, static_cast<int64_t>(support_tiles.size()));
      support_tiles.push_back(tile), support_labels.push_back(static_cast<int64_t>(c));
    }
  const auto support_features = image_features(support_tiles);
  // The kNN baseline's embeddings: the tower features pooled over their rows.
  auto pooled = [](const torch::Tensor& features) { return features.mean(1).to(torch::kFloat); };
  const auto [begin, end] = data::eval_share(n, cfg_.eval.batch_size, rank_, world_size_);
  const auto mine = pooled(image_features(std::vector<std::string>(queries.begin() + begin, queries.begin() + end)));
  const auto query_embeddings = dist::gather_rows(mine, &comm);

  std::vector<eval::FewShotResult> results;
  for (const int64_t k : cfg_.eval.few_shot) {
    const auto answers = answer_all(n, [&](int64_t i) {
      auto prompt = eval::few_shot_prompt(*support_, k, queries[i], cfg_.eval.question, seed_, i);
      // image_ids: the k examples' tiles, then the query.
      std::vector<int64_t> rows;
      for (size_t j = 0; j + 1 < prompt.image_ids.size(); ++j) rows.push_back(support_row.at(prompt.image_ids[j]));
      const auto examples =
          support_features.index_select(0, torch::tensor(rows, torch::kInt64).to(support_features.device()));
      return EvalPrompt{std::move(prompt.conversation),
                        torch::cat({examples, image_features({prompt.image_ids.back()})})};
    }, comm);
    eval::FewShotResult result;
    result.k = k;
    result.answers = eval::score_class_answers(answers, expected, names);
    if (k > 0) {
      const auto predicted = eval::knn_predict(pooled(support_features), torch::tensor(support_labels),
                                               query_embeddings,
                                               std::min<int64_t>(k, static_cast<int64_t>(support_tiles.size())));
      result.knn_accuracy = eval::knn_accuracy(predicted, torch::tensor(expected));
    }
    results.push_back(result);
  }
  std::istringstream report(eval::format_few_shot_report(results));
  for (std::string line; std::getline(report, line);) log_info(line);
  std::map<std::string, double> metrics;
  for (const auto& [name, value] : eval::few_shot_metric_values(results, "eval/")) metrics[name] = value;
  return metrics;
}

// ---- export and data position -----------------------------------------------------------------------

void InstructTask::export_model(const std::string& dir) {
  export_model(dir, model_->language_model->parameters().front().scalar_type());
}

void InstructTask::export_model(const std::string& dir, torch::ScalarType dtype) {
  // A Hugging Face language model's own tokenizer files travel with it; a tokenizer.model alone becomes them.
  const std::string tokenizer_source =
      cfg_.tokenizer.empty() && !hf_language_model_.empty() ? hf_language_model_ : tokenizer_->path();
  if (slide_encoder_) {
    // No LlavaForConditionalGeneration takes slides: the three parts go out in the forms their readers load.
    models::export_hf_llama(model_->language_model, dir + "/language_model", dtype, kHfExportShardBytes,
                            tokenizer_source);
    models::export_projector(model_, dir + "/mm_projector.safetensors", dtype);
    const auto source = fs::path(models::slide::slide_export_dir(cfg_.slide_encoder));
    fs::create_directories(fs::path(dir) / "slide_encoder");
    for (const auto& entry : fs::directory_iterator(source))
      if (entry.is_regular_file())
        fs::copy_file(entry.path(), fs::path(dir) / "slide_encoder" / entry.path().filename(),
                      fs::copy_options::overwrite_existing);
    return;
  }
  models::export_hf_llava(model_, dir, dtype, kHfExportShardBytes, tokenizer_source);
  models::export_projector(model_, dir + "/mm_projector.safetensors", dtype);
}

nlohmann::json InstructTask::data_state() const { return loader_state(*loader_); }

void InstructTask::restore_data_state(const nlohmann::json& state) { restore_loader_state(*loader_, state, "instruct"); }

double InstructTask::epoch() const { return loader_epoch(*loader_); }

namespace {

// The job's model on one process in eval mode, `weights` loaded over its init sources ("": those alone).
InstructRun open_for_inference(const JobConfig& job, torch::Device device, const std::string& weights) {
  InstructRun run;
  run.comm = dist::make_local_comm();
  run.task = std::make_unique<InstructTask>();
  TaskContext ctx{job, device, *run.comm, 0, 1, 1, 1, static_cast<uint64_t>(job.run.seed), ""};
  run.task->build_for_eval(ctx, weights);
  run.task->model().eval();
  return run;
}

}  // namespace

InstructRun open_instruct_run(const std::string& path, torch::Device device) {
  fs::path config = fs::path(path) / "config.yaml";
  if (!fs::exists(config)) config = fs::path(path).parent_path().parent_path() / "config.yaml";
  PATHVLM_CHECK(fs::exists(config), "'", path, "' is not an instruct run: no config.yaml in it or two levels up "
                "(give a run directory or one of its checkpoints/step_* directories)");
  JobConfig job = cfg::read<JobConfig>(cfg::Document::from_file(config.string()));
  PATHVLM_CHECK(job.run.task == "instruct", "'", path, "' is a run of the '", job.run.task,
                "' task, not an instruct run");
  PATHVLM_CHECK(!job.train.lora.enabled(), "'", path, "' trained LoRA adapters: use its export (",
                (fs::path(path) / "export").string(), "), where they are merged into the language model");
  auto& cfg = job.task_config<InstructConfig>();
  const int64_t slide_tiles = cfg.data.slide_tiles;  // a slide's bag as the run saw it
  cfg.data = InstructDataConfig{};
  cfg.data.slide_tiles = slide_tiles;
  cfg.eval = InstructEvalConfig{};
  job.train.activation_checkpointing.clear();
  return open_for_inference(job, device, path);
}

InstructRun open_llava_checkpoint(const models::LlavaCheckpoint& llava, const LlavaCheckpointOptions& options,
                                  torch::Device device) {
  const std::string& dir = llava.dir;
  const std::string source = "'" + dir + "' (" + llava.description() + ")";
  JobConfig job;
  job.run.task = "instruct";
  auto& cfg = job.task_config<InstructConfig>();
  cfg.language_model = dir;
  cfg.vision_tower = options.vision_tower.empty() ? llava.vision_tower : options.vision_tower;
  PATHVLM_CHECK(!cfg.vision_tower.empty(), source,
                " names no vision tower (mm_vision_tower): give the one it was trained with (--vision-tower)");
  PATHVLM_CHECK(!options.vision_tower.empty() || fs::exists(cfg.vision_tower), source, " was trained with the tower '",
                llava.vision_tower, "', which is not a local directory: download it (huggingface-cli download ",
                llava.vision_tower, " --local-dir DIR) and name DIR as the vision tower (--vision-tower)");
  const auto config_file = (fs::path(dir) / "config.json").string();
  const auto language_model = models::parse_hf_llama_config(read_text_file(config_file), config_file);
  const auto& type = language_model.model_type;
  cfg.conversation_template = !options.conversation_template.empty() ? options.conversation_template
                              : type == "mistral"                    ? "mistral_instruct"
                              : type == "qwen2" || type == "qwen3"   ? "chatml"
                                                                     : "vicuna_v1";
  cfg.max_length = std::min(cfg.max_length, language_model.max_position_embeddings);
  cfg.model.projector = llava.projector;
  cfg.model.vision_feature_layer = llava.vision_feature_layer;
  cfg.model.vision_feature_select = llava.vision_feature_select;
  cfg.model.image_aspect_ratio = llava.image_aspect_ratio;
  auto run = open_for_inference(job, device, "");
  PATHVLM_CHECK(run.task->llava()->vision_hidden() == llava.vision_width, source, ": its projector takes ",
                llava.vision_width, "-wide tower features (", llava.keys().vision_width, ") but the tower '",
                cfg.vision_tower, "' gives ", run.task->llava()->vision_hidden(),
                ": give the tower it was trained with ('", llava.vision_tower, "')");
  log_info(source, ": template ", cfg.conversation_template,
           options.conversation_template.empty() ? " (its default)" : "");
  return run;
}

InstructRun open_instruct_model(const std::string& path, const LlavaCheckpointOptions& options, torch::Device device) {
  if (const auto llava = models::read_llava_checkpoint(path)) return open_llava_checkpoint(*llava, options, device);
  PATHVLM_CHECK(options.vision_tower.empty() && options.conversation_template.empty(), "'", path,
                "' is an instruct run: it brings its own vision tower and template (those options are for LLaVA "
                "checkpoints)");
  return open_instruct_run(path, device);
}

}  // namespace pathvlm::train
