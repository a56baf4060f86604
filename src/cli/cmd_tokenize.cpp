// `pathvlm tokenize`: token ids of texts read from stdin, one JSON array per text: CLIP BPE ids (--vocab) or a
// language model's ids (--tokenizer: SentencePiece tokenizer.model or Hugging Face tokenizer.json).
#include <algorithm>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "text/clip_tokenizer.h"
#include "text/tokenizer.h"

namespace pathvlm::cli {

namespace {

using Encoder = std::function<std::vector<int64_t>(const std::string&)>;

Encoder clip_encoder(const ArgParser& parser) {
  PATHVLM_CHECK(!parser.has("no-bos"), "--no-bos applies to a language model's tokenizer (--tokenizer) only");
  const auto context = parser.get_int("context");
  PATHVLM_CHECK(context >= 2 && context <= 1 << 20, "--context ", context, " must be at least 2");
  auto tokenizer = std::make_shared<text::ClipTokenizer>(parser.get("vocab"), static_cast<int>(context));
  const bool unpadded = parser.get_flag("unpadded");
  return [tokenizer, unpadded](const std::string& text) {
    auto ids = tokenizer->encode(text);
    if (unpadded) ids.erase(std::find(ids.begin() + 1, ids.end(), text::ClipTokenizer::kEndOfText) + 1, ids.end());
    return ids;
  };
}

Encoder language_model_encoder(const ArgParser& parser) {
  PATHVLM_CHECK(!parser.has("context") && !parser.has("unpadded"),
                "--context and --unpadded apply to the CLIP tokenizer (--vocab) only");
  std::shared_ptr<const text::Tokenizer> tokenizer = text::open_tokenizer(parser.get("tokenizer"));
  const bool add_bos = !parser.get_flag("no-bos");
  return [tokenizer, add_bos](const std::string& text) { return tokenizer->encode(text, add_bos); };
}

}  // namespace

int cmd_tokenize(const Args& args) {
  ArgParser parser("pathvlm tokenize",
                   "Tokenize texts from stdin and print one JSON array of ids per text. With --vocab: the CLIP "
                   "BPE (as open_clip's tokenizer does): sot, BPE ids, eot, zero padding to the context length. "
                   "With --tokenizer: a language model's ids as transformers gives them: LLaMA-2's tokenizer.model "
                   "as LlamaTokenizer (<s> first, no </s>; legacy or not as the tokenizer_config.json beside it says), "
                   "a tokenizer.json (LLaMA-2, Mistral, LLaMA-3, Qwen) as the tokenizers library (its BOS first where "
                   "it has one); special-token strings in the text become their ids.");
  parser.option("vocab", "CLIP: bpe_simple_vocab_16e6.txt.gz, or an HF tokenizer directory (vocab.json + merges.txt)");
  parser.option("tokenizer", "a language model's tokenizer.model or tokenizer.json, or its model directory");
  parser.option("context", "CLIP context length (sot and eot included); over-long texts keep eot last", false, "77");
  parser.flag("unpadded", "CLIP: print ids up to the eot token only");
  parser.flag("no-bos", "--tokenizer: leave out the leading BOS");
  parser.flag("jsonl", "each input line is JSON: a string, or an object with a \"text\" field (texts with newlines)");
  if (!parser.parse(args)) return 0;
  PATHVLM_CHECK(parser.has("vocab") != parser.has("tokenizer"),
                "give the tokenizer with exactly one of --vocab (CLIP) and --tokenizer (a language model's)");
  const auto encode = parser.has("vocab") ? clip_encoder(parser) : language_model_encoder(parser);
  const bool jsonl = parser.get_flag("jsonl");

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
      ids = encode(text);
    } catch (const Error& e) {
      throw Error(str("stdin line ", number, ": ", e.what()));
    }
    std::cout << nlohmann::json(ids).dump() << "\n";
  }
  return 0;
}

}  // namespace pathvlm::cli
