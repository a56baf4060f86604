// A downloaded LLaMA's config.json (transformers 4.x or 5.x layout) through parse_hf_llama_config. Invariants: a
// config that parses is consistent (validate), and the config.json pathvlm exports for it parses back to the same
// shape.
#include "core/error.h"
#include "fuzz_util.h"
#include "models/llama/config.h"

using pathvlm::fuzz::require;
namespace models = pathvlm::models;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  models::LlamaConfig config;
  try {
    config = models::parse_hf_llama_config(text, "fuzz/config.json");
  } catch (const pathvlm::Error&) {
    return 0;
  }
  try {
    config.validate("parsed");
  } catch (const pathvlm::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    require(false, "a parsed config does not validate");
  }
  auto write = [](const models::LlamaConfig& c) { return models::hf_llama_config_json(c, torch::kBFloat16); };
  pathvlm::fuzz::require_reads_back(
      write(config),
      [](const std::string& json) { return models::parse_hf_llama_config(json, "exported/config.json"); }, write);
  return 0;
}
