// A transformers ViT's config.json and preprocessor_config.json (Phikon, Phikon-v2, Midnight hub directories) through
// hf_vit_config, against the tensor shapes of one of four checkpoints picked by the input's first byte (ViTModel;
// Dinov2Model with a task prefix and 518 px position embeddings; DINOv2's SwiGLU; registers). The rest is the
// config.json text, then after a NUL byte the preprocessor's (none without one). Invariants: what is accepted
// validates, its input is a whole number of patches, its position grid is the checkpoint's, ViTModel never resamples.
#include <map>
#include <optional>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "models/vit/config.h"

using pathvlm::fuzz::require;
namespace models = pathvlm::models;

namespace {

using Shapes = std::map<std::string, std::vector<int64_t>>;

Shapes checkpoint(unsigned kind, int& positions) {
  const std::string p = kind % 4 == 1 ? "dinov2." : "";
  Shapes s = {{p + "embeddings.patch_embeddings.projection.weight", {768, 3, 16, 16}},
              {p + "embeddings.cls_token", {1, 1, 768}}};
  positions = kind % 4 == 1 ? 1370 : 197;
  s[p + "embeddings.position_embeddings"] = {1, positions, 768};
  const bool vit = kind % 4 == 0;
  for (int i = 0; i < 2; ++i) {
    const std::string b = p + "encoder.layer." + std::to_string(i) + ".";
    s[b + (vit ? "layernorm_before.weight" : "norm1.weight")] = {768};
    if (vit) {
      s[b + "intermediate.dense.weight"] = {3072, 768};
      s[b + "output.dense.weight"] = {768, 3072};
    } else if (kind % 4 == 2) {
      s[b + "mlp.weights_in.weight"] = {4096, 768};
      s[b + "mlp.weights_out.weight"] = {768, 2048};
    } else {
      s[b + "mlp.fc1.weight"] = {3072, 768};
      s[b + "mlp.fc2.weight"] = {768, 3072};
    }
  }
  if (kind % 4 == 3) s["embeddings.register_tokens"] = {1, 4, 768};
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  int positions = 0;
  const Shapes shapes = checkpoint(data[0], positions);
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nul = text.find('\0');
  const std::string config = text.substr(0, nul), preprocessor = nul == std::string::npos ? "" : text.substr(nul + 1);
  auto shape_of = [&](const std::string& name) -> std::optional<std::vector<int64_t>> {
    const auto it = shapes.find(name);
    if (it == shapes.end()) return std::nullopt;
    return it->second;
  };
  models::HfVitLayout layout;
  try {
    layout = models::hf_vit_config(shape_of, config, preprocessor, "fuzz/config.json", "fuzz/preprocessor_config.json",
                                   "fuzz/model.safetensors");
  } catch (const pathvlm::Error&) {
    return 0;
  }
  const auto& c = layout.config;
  try {
    c.validate("accepted");
  } catch (const pathvlm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    require(false, "an accepted config does not validate");
  }
  require(c.image_size % c.patch_size == 0, "the input is not a whole number of patches");
  require(layout.position_grid * layout.position_grid + 1 == positions, "the position grid is not the checkpoint's");
  require(c.grid() == layout.position_grid || layout.model_type != "vit", "ViTModel resamples");
  require(c.reg_tokens == (layout.model_type == "dinov2_with_registers" ? 4 : 0), "registers differ");
  return 0;
}
