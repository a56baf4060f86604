#include "text/tokenizer.h"

#include <filesystem>

#include "core/error.h"
#include "text/bpe_tokenizer.h"
#include "text/sentencepiece_tokenizer.h"

namespace fs = std::filesystem;

namespace pathvlm::text {

std::string locate_tokenizer(const std::string& dir_or_file) {
  if (fs::is_directory(dir_or_file)) {
    for (const char* name : {"tokenizer.model", "tokenizer.json"}) {
      const auto file = fs::path(dir_or_file) / name;
      if (fs::is_regular_file(file)) return file.string();
    }
    throw Error(str("'", dir_or_file, "' has no tokenizer.model (SentencePiece) or tokenizer.json (Hugging Face)"));
  }
  PATHVLM_CHECK(fs::is_regular_file(dir_or_file), "tokenizer '", dir_or_file, "': no such file or directory");
  return dir_or_file;
}

std::unique_ptr<Tokenizer> open_tokenizer(const std::string& dir_or_file) {
  const auto file = locate_tokenizer(dir_or_file);
  if (fs::path(file).extension() == ".json") return std::make_unique<BpeTokenizer>(file);
  return std::make_unique<SentencePieceTokenizer>(file);
}

}  // namespace pathvlm::text
