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
  const std::string exported = models::hf_llama_config_json(config, torch::kBFloat16);
  models::LlamaConfig again;
  try {
    again = models::parse_hf_llama_config(exported, "exported/config.json");
  } catch (const pathvlm::Error& e) {
    std::fprintf(stderr, "%s\n--- exported:\n%s\n", e.what(), exported.c_str());
    require(false, "the exported config.json of a parsed config does not parse");
  }
  require(models::hf_llama_config_json(again, torch::kBFloat16) == exported,
          "the exported config.json read back otherwise");
  return 0;
}
