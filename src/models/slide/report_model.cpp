#include "models/slide/report_model.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/clip/weights.h"

namespace pathvlm::models::slide {

SlideReportModelImpl::SlideReportModelImpl(const SlideEncoderConfig& encoder, const ClipModelConfig& text)
    : encoder_config_(encoder), text_config_(resolve_clip_config(text)) {
  const auto& t = text_config_;
  slide_encoder = register_module("slide_encoder", SlideEncoder(encoder));
  slide_projection = register_module(
      "slide_projection",
      torch::nn::Linear(torch::nn::LinearOptions(slide_encoder->width(), t.embed_dim).bias(false)));
  text_model = register_module("text_model", ClipTextTransformer(t));
  text_projection = register_module(
      "text_projection", torch::nn::Linear(torch::nn::LinearOptions(t.text_width, t.embed_dim).bias(false)));
  logit_scale = register_parameter("logit_scale", torch::tensor(std::log(1.0 / 0.07), torch::kFloat32));
  init_clip_text_weights(*text_model, text_projection, t);
  torch::NoGradGuard no_grad;
  slide_projection->weight.normal_(0.0, std::pow(static_cast<double>(slide_encoder->width()), -0.5));
}

torch::Tensor SlideReportModelImpl::encode_slide(const torch::Tensor& features, const torch::Tensor& coords,
                                                 const torch::Tensor& mask) {
  return slide_projection(slide_encoder(features, coords, mask).pooled);
}

torch::Tensor SlideReportModelImpl::encode_report(const torch::Tensor& ids) {
  return text_projection(text_model->pooled(ids));
}

void SlideReportModelImpl::load_text(ClipModelImpl& clip, const std::string& where) {
  const auto& c = clip.config();
  const auto& t = text_config_;
  PATHVLM_CHECK(c.text_width == t.text_width && c.text_layers == t.text_layers && c.text_heads == t.text_heads &&
                    c.text_mlp_dim == t.text_mlp_dim && c.vocab_size == t.vocab_size && c.embed_dim == t.embed_dim &&
                    c.hidden_act == t.hidden_act,
                "text tower of '", where, "' (", describe(c), ") does not match the configured one (", describe(t),
                ")");
  torch::NoGradGuard no_grad;
  auto source = clip.text_model->named_parameters();
  for (auto& item : text_model->named_parameters()) {
    auto from = source[item.key()];
    if (item.key() == "embeddings.position_embedding.weight") from = resize_text_positions(from, t.context_length);
    item.value().copy_(from);
  }
  text_projection->weight.copy_(clip.text_projection->weight);
  logit_scale.copy_(clip.logit_scale);
}

void save_slide_report_model(SlideReportModel& model, const std::string& dir) {
  std::filesystem::create_directories(dir);
  SlideReportShape shape{model->encoder_config(), model->text_config()};
  write_text_file(dir + "/slide_model.yaml", cfg::to_yaml(shape));
  safetensors::NamedTensors tensors;
  for (const auto& item : model->named_parameters())
    tensors.push_back({item.key(), item.value().detach().to(torch::kCPU, torch::kFloat).contiguous()});
  safetensors::save(dir + "/model.safetensors", tensors, {{"format", "pt"}});
}

std::string slide_export_dir(const std::string& path) {
  namespace fs = std::filesystem;
  if (!fs::exists(fs::path(path) / "slide_model.yaml") && fs::exists(fs::path(path) / "export" / "slide_model.yaml"))
    return (fs::path(path) / "export").string();
  return path;
}

SlideReportModel load_slide_report_model(const std::string& path) {
  const std::string dir = slide_export_dir(path);
  const std::string yaml = dir + "/slide_model.yaml", weights = dir + "/model.safetensors";
  PATHVLM_CHECK(std::filesystem::exists(yaml) && std::filesystem::exists(weights), "'", dir,
                "' is not a slide model export: it needs slide_model.yaml and model.safetensors (`pathvlm export` or "
                "a slide run's export/)");
  const auto shape = cfg::read<SlideReportShape>(cfg::Document::from_file(yaml));
  SlideReportModel model(shape.encoder, shape.text);
  auto file = safetensors::File::open(weights);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto t = file.get(item.key());
    PATHVLM_CHECK(t.sizes() == item.value().sizes(), "'", weights, "': tensor ", item.key(), " has shape ", t.sizes(),
                  " but slide_model.yaml makes it ", item.value().sizes());
    safetensors::check_convertible(t.scalar_type(), item.value().scalar_type(), str("'", weights, "'"), item.key());
    item.value().copy_(t);
  }
  return model;
}

}  // namespace pathvlm::models::slide
