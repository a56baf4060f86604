// `pathvlm tokenize`: CLIP BPE ids of texts read from stdin, one JSON array per text.
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "text/clip_tokenizer.h"

namespace pathvlm::cli {

int cmd_tokenize(const Args& args) {
  ArgParser parser("pathvlm tokenize",
                   "Tokenize texts from stdin with the CLIP BPE (as open_clip's tokenizer does) and print one JSON "
                   "array of ids per text: sot, BPE ids, eot, zero padding to the context length.");
  parser.option("vocab", "bpe_simple_vocab_16e6.txt.gz, or an HF tokenizer directory (vocab.json + merges.txt)",
                /*required=*/true);
  parser.option("context", "context length (sot and eot included); over-long texts keep eot last", false, "77");
  parser.flag("jsonl", "each input line is JSON: a string, or an object with a \"text\" field (texts with newlines)");
  parser.flag("unpadded", "print ids up to the eot token only");
  if (!parser.parse(args)) return 0;
  const auto context = parser.get_int("context");
  PATHVLM_CHECK(context >= 2 && context <= 1 << 20, "--context ", context, " must be at least 2");
  text::ClipTokenizer tokenizer(parser.get("vocab"), static_cast<int>(context));
  const bool jsonl = parser.get_flag("jsonl"), unpadded = parser.get_flag("unpadded");

  std::string line;
  for (int64_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    std::string text = line;
    if (jsonl) {
      nlohmann::json record;
      try {
        record = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw Error(str("stdin line ", number, ": not JSON: ", e.what()));
      }
      PATHVLM_CHECK(record.is_string() || (record.is_object() && record.contains("text") && record["text"].is_string()),
                    "stdin line ", number, ": expected a JSON string or an object with a string \"text\"");
      text = record.is_string() ? record.get<std::string>() : record["text"].get<std::string>();
    }
    std::vector<int64_t> ids;
    try {
      ids = tokenizer.encode(text);
    } catch (const Error& e) {
      throw Error(str("stdin line ", number, ": ", e.what()));
    }
    if (unpadded) {
      ids.erase(std::find(ids.begin() + 1, ids.end(), text::ClipTokenizer::kEndOfText) + 1, ids.end());
    }
    std::cout << nlohmann::json(ids).dump() << "\n";
  }
  return 0;
}

}  // namespace pathvlm::cli
