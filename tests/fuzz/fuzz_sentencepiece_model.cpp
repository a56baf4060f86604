// A SentencePiece tokenizer.model through text::sentencepiece_tokenizer_json and
// sentencepiece_model_without_dummy_prefix (the protobuf read and rewritten by hand). Invariants: the result is empty
// (a model the conversion does not reproduce) or a tokenizer.json whose merges join two pieces of its vocabulary;
// the rewritten model converts as the model does, in the non-legacy form.
#include <nlohmann/json.hpp>

#include "fuzz_util.h"
#include "text/sentencepiece_json.h"

using pathvlm::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto path = pathvlm::fuzz::scratch_file("tokenizer.model", data, size);
  std::string text, plain_text;
  try {
    text = pathvlm::text::sentencepiece_tokenizer_json(path, 1);
    const auto plain = pathvlm::text::sentencepiece_model_without_dummy_prefix(path);
    const auto plain_path =
        pathvlm::fuzz::scratch_file("plain.model", reinterpret_cast<const uint8_t*>(plain.data()), plain.size());
    plain_text = pathvlm::text::sentencepiece_tokenizer_json(plain_path, 1, /*legacy=*/false);
  } catch (const pathvlm::Error&) {
    return 0;
  }
  if (text.empty()) return 0;
  const auto json = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  require(!json.is_discarded(), "the tokenizer.json is not JSON");
  const auto plain_json = nlohmann::json::parse(plain_text, nullptr, /*allow_exceptions=*/false);
  require(!plain_json.is_discarded() && plain_json["model"] == json["model"],
          "the model without its dummy prefix has other pieces or merges");
  const auto& vocab = json["model"]["vocab"];
  for (const auto& merge : json["model"]["merges"]) {
    const auto pair = merge.get<std::string>();
    const auto space = pair.find(' ');
    require(space != std::string::npos && vocab.contains(pair.substr(0, space)) &&
                vocab.contains(pair.substr(space + 1)),
            "a merge names a piece outside the vocabulary");
  }
  return 0;
}
