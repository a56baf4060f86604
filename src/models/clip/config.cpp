#include "models/clip/config.h"

#include <algorithm>
#include <cstdint>
#include <utility>

#include "core/error.h"
#include "models/model_size.h"

namespace pathvlm::models {

namespace {
// Far beyond any real CLIP, and small enough that products of sizes stay in range.
constexpr int kMaxSize = 1 << 20, kMaxLayers = 1024;
}  // namespace

ClipModelConfig resolve_clip_config(const ClipModelConfig& config) {
  struct Preset {
    const char* name;
    int embed, image, patch, vw, vl, vh, tw, tl, th;
  };
  static const Preset kPresets[] = {
      {"tiny", 128, 64, 16, 128, 4, 4, 128, 4, 4},
      {"ViT-B-32", 512, 224, 32, 768, 12, 12, 512, 12, 8},
      {"ViT-B-16", 512, 224, 16, 768, 12, 12, 512, 12, 8},
      {"ViT-L-14", 768, 224, 14, 1024, 24, 16, 768, 12, 12},
  };
  const Preset* preset = nullptr;
  for (const auto& p : kPresets) {
    if (config.preset == p.name) preset = &p;
  }
  PATHVLM_CHECK(preset != nullptr, "clip model: unknown preset '", config.preset,
                "' (known: tiny, ViT-B-32, ViT-B-16, ViT-L-14)");
  ClipModelConfig c = config;
  auto fill = [](int& v, int preset_value) {
    if (v == 0) v = preset_value;
  };
  fill(c.embed_dim, preset->embed);
  fill(c.image_size, preset->image);
  fill(c.patch_size, preset->patch);
  fill(c.vision_width, preset->vw);
  fill(c.vision_layers, preset->vl);
  fill(c.vision_heads, preset->vh);
  // 4 x a width too large to be real stays in range; the width's own check below says what is wrong.
  auto four_times = [](int width) { return static_cast<int>(std::min<int64_t>(4ll * width, kMaxSize)); };
  fill(c.vision_mlp_dim, four_times(c.vision_width));
  fill(c.text_width, preset->tw);
  fill(c.text_layers, preset->tl);
  fill(c.text_heads, preset->th);
  fill(c.text_mlp_dim, four_times(c.text_width));
  fill(c.context_length, 77);
  fill(c.vocab_size, 49408);

  const std::pair<const char*, int> sizes[] = {
      {"embed_dim", c.embed_dim},         {"image_size", c.image_size},         {"patch_size", c.patch_size},
      {"vision_width", c.vision_width},   {"vision_layers", c.vision_layers},   {"vision_heads", c.vision_heads},
      {"vision_mlp_dim", c.vision_mlp_dim}, {"text_width", c.text_width},       {"text_layers", c.text_layers},
      {"text_heads", c.text_heads},       {"text_mlp_dim", c.text_mlp_dim},     {"context_length", c.context_length},
      {"vocab_size", c.vocab_size}};
  for (const auto& [key, value] : sizes) {
    const bool layers = std::string(key).find("layers") != std::string::npos;
    check_model_size("clip model", key, value, layers ? kMaxLayers : kMaxSize);
  }
  PATHVLM_CHECK(c.image_size % c.patch_size == 0, "clip model: patch_size ", c.patch_size,
                " does not divide image_size ", c.image_size);
  PATHVLM_CHECK(c.vision_width % c.vision_heads == 0, "clip model: vision_heads ", c.vision_heads,
                " does not divide vision_width ", c.vision_width);
  PATHVLM_CHECK(c.text_width % c.text_heads == 0, "clip model: text_heads ", c.text_heads,
                " does not divide text_width ", c.text_width);
  PATHVLM_CHECK(c.hidden_act == "quick_gelu" || c.hidden_act == "gelu", "clip model: hidden_act '", c.hidden_act,
                "' is not one of quick_gelu, gelu");
  PATHVLM_CHECK(c.context_length >= 2, "clip model: context_length ", c.context_length, " is too short");
  return c;
}

std::string describe(const ClipModelConfig& c) {
  return str("CLIP image ", c.image_size, "/", c.patch_size, " ", c.vision_layers, "x", c.vision_width,
             ", text ", c.context_length, " ", c.text_layers, "x", c.text_width, ", embed ", c.embed_dim, ", ",
             c.hidden_act);
}

double train_flops_per_sample(const ClipModelConfig& c) {
  // Per token and block: q, k, v, out (4 D^2) and the MLP (2 D M) multiply-adds, scores and weighted sum (2 S D).
  auto tower = [](double tokens, double width, double mlp, double layers) {
    return 2.0 * layers * tokens * (4 * width * width + 2 * width * mlp + 2 * tokens * width);
  };
  const double patches = double(c.image_size / c.patch_size) * double(c.image_size / c.patch_size);
  const double forward = tower(patches + 1, c.vision_width, c.vision_mlp_dim, c.vision_layers) +
                         tower(c.context_length, c.text_width, c.text_mlp_dim, c.text_layers) +
                         2.0 * patches * 3 * c.patch_size * c.patch_size * c.vision_width +
                         2.0 * (c.vision_width + c.text_width) * c.embed_dim;
  return 3 * forward;  // backward: twice the forward
}

void ClipModelConfig::validate(const std::string& where) const {
  try {
    resolve_clip_config(*this);
  } catch (const Error& e) {
    throw Error(str(where, ": ", e.what()));
  }
}

}  // namespace pathvlm::models
