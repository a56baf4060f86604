// A downloaded CLIP's config.json (transformers' CLIPConfig, legacy *_config_dict included) through
// parse_hf_clip_config. Invariants: what parses is a resolved, consistent config, and the config.json pathvlm
// exports for it parses back to the same config.
#include "core/error.h"
#include "fuzz_util.h"
#include "models/clip/hf_config.h"

using pathvlm::fuzz::require;
namespace models = pathvlm::models;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  models::ClipModelConfig config;
  try {
    config = models::parse_hf_clip_config(text, "fuzz/config.json");
  } catch (const pathvlm::Error&) {
    return 0;
  }
  const std::string exported = models::hf_clip_config_json(config);
  require(models::hf_clip_config_json(models::resolve_clip_config(config)) == exported,
          "a parsed config is not resolved");
  models::hf_clip_preprocessor_config_json(config);
  pathvlm::fuzz::require_reads_back(
      exported, [](const std::string& json) { return models::parse_hf_clip_config(json, "exported/config.json"); },
      [](const models::ClipModelConfig& c) { return models::hf_clip_config_json(c); });
  return 0;
}
