// SlideReportModel: a slide encoder (encoder.h) and a CLIP text tower for the reports, each projected into one
// embedding space and trained contrastively (PathAlign's alignment stage, CLIP's recipe on slides).
//
//   SlideReportModel m(encoder_config, text_config);          // text_config: a CLIP config whose text_* keys count
//   m->load_text(*clip);                                       // optional: a CLIP's text tower (positions resized)
//   auto s = m->encode_slide(features, coords, mask);          // [B,E], not normalised
//   auto t = m->encode_report(ids);                            // [B,E]
//   save_slide_report_model(m, "export/");  auto back = load_slide_report_model("export/");
//
// Parameter names: slide_encoder.*, slide_projection.weight, and CLIP's text_model.*, text_projection.weight,
// logit_scale (HF names, so a CLIP checkpoint's text half loads by name).
#pragma once
#include <torch/torch.h>

#include "models/clip/model.h"
#include "models/slide/config.h"
#include "models/slide/encoder.h"

namespace pathvlm::models::slide {

class SlideReportModelImpl : public torch::nn::Module {
 public:
  // `text` is resolved here; its embed_dim is the shared embedding size.
  SlideReportModelImpl(const SlideEncoderConfig& encoder, const ClipModelConfig& text);

  // features [B,N,D], coords [B,N,2] int64, mask [B,N] bool -> [B,E].
  torch::Tensor encode_slide(const torch::Tensor& features, const torch::Tensor& coords, const torch::Tensor& mask);
  // [B,L] CLIP BPE ids (L <= the text context) -> [B,E].
  torch::Tensor encode_report(const torch::Tensor& ids);

  // Copies the text tower, text_projection and logit_scale of `clip`; its position table is resized to this
  // model's context length (models::resize_text_positions). Widths, layers, vocabulary and embed_dim must match.
  void load_text(ClipModelImpl& clip, const std::string& where);

  const SlideEncoderConfig& encoder_config() const { return encoder_config_; }
  const ClipModelConfig& text_config() const { return text_config_; }

  SlideEncoder slide_encoder{nullptr};
  torch::nn::Linear slide_projection{nullptr};
  ClipTextTransformer text_model{nullptr};
  torch::nn::Linear text_projection{nullptr};
  torch::Tensor logit_scale;  // scalar, ln(1/0.07) at init; the loss uses exp(logit_scale)

 private:
  SlideEncoderConfig encoder_config_;
  ClipModelConfig text_config_;
};
TORCH_MODULE(SlideReportModel);

// The shapes a SlideReportModel is rebuilt from: `slide_model.yaml` of an export.
struct SlideReportShape {
  SlideEncoderConfig encoder;
  ClipModelConfig text;
  template <class V>
  void visit(V& v) {
    v.section("encoder", encoder, "the slide encoder");
    v.section("text", text, "the CLIP text tower (its text_*, context_length, vocab_size, embed_dim keys)");
  }
};

// An export directory: slide_model.yaml + model.safetensors (every parameter, fp32, by the names above).
void save_slide_report_model(SlideReportModel& model, const std::string& dir);
// `path` itself when it holds slide_model.yaml, else the export/ of the run directory `path`.
std::string slide_export_dir(const std::string& path);
// Rebuilds one from an export directory or a run directory with one (slide_export_dir); errors name the directory
// and what is missing or mismatched.
SlideReportModel load_slide_report_model(const std::string& path);

}  // namespace pathvlm::models::slide
