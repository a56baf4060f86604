#include "models/clip/fixed_random.h"

namespace pathvlm::models {

namespace {
constexpr uint64_t kFixedSeed = 20240;
}  // namespace

bool is_clip_preset(const std::string& name) {
  for (const char* preset : {"tiny", "ViT-B-32", "ViT-B-16", "ViT-L-14"})
    if (name == preset) return true;
  return false;
}

ClipModel fixed_random_clip(const ClipModelConfig& config) {
  const auto resolved = resolve_clip_config(config);
  KeepCpuRandomStream keep;
  torch::manual_seed(kFixedSeed);
  return ClipModel(resolved);
}

}  // namespace pathvlm::models
