// A timm ViT's config.json (UNI, Virchow, H-optimus hub directories) through timm_vit_config, against the tensor
// shapes of one of four checkpoints picked by the input's first byte (UNI-like; registers with patch-only positions
// and a packed SwiGLU; a split SwiGLU; shapes that fit no ViT). Invariants: what is accepted validates, has as many
// position embeddings as the checkpoint, and reads fc2's width as its MLP width.
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

Shapes checkpoint(unsigned kind) {
  Shapes s = {{"patch_embed.proj.weight", {768, 3, 16, 16}}, {"cls_token", {1, 1, 768}},
              {"blocks.0.norm1.weight", {768}},             {"blocks.1.norm1.weight", {768}}};
  switch (kind % 4) {
    case 0:
      s["pos_embed"] = {1, 197, 768};
      s["blocks.0.mlp.fc1.weight"] = {3072, 768};
      s["blocks.0.mlp.fc2.weight"] = {768, 3072};
      break;
    case 1:
      s["reg_token"] = {1, 4, 768};
      s["pos_embed"] = {1, 196, 768};
      s["blocks.0.mlp.fc1.weight"] = {4096, 768};
      s["blocks.0.mlp.fc2.weight"] = {768, 2048};
      break;
    case 2:
      s["pos_embed"] = {1, 50, 768};
      s["blocks.0.mlp.fc1_g.weight"] = {2048, 768};
      s["blocks.0.mlp.fc2.weight"] = {768, 2048};
      break;
    default:
      s["reg_token"] = {4, 768};
      s["pos_embed"] = {1, 200, 768};
      s["blocks.0.mlp.fc1.weight"] = {3072, 768};
      s["blocks.0.mlp.fc2.weight"] = {768, 1000};
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const Shapes shapes = checkpoint(data[0]);
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto shape_of = [&](const std::string& name) -> std::optional<std::vector<int64_t>> {
    const auto it = shapes.find(name);
    if (it == shapes.end()) return std::nullopt;
    return it->second;
  };
  models::VitConfig c;
  try {
    c = models::timm_vit_config(shape_of, text, "fuzz/config.json", "fuzz/model.safetensors");
  } catch (const pathvlm::Error&) {
    return 0;
  }
  try {
    c.validate("accepted");
  } catch (const pathvlm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    require(false, "an accepted config does not validate");
  }
  require(c.position_embeddings() == shapes.at("pos_embed")[1], "position embeddings differ from the checkpoint's");
  require(c.mlp_hidden == shapes.at("blocks.0.mlp.fc2.weight")[1], "MLP width is not fc2's");
  require(c.features() == c.width || c.features() == 2 * c.width, "features are neither the width nor twice it");
  return 0;
}
