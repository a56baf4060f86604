#include "text/sentencepiece_tokenizer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace fs = std::filesystem;

namespace pathvlm::text {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file)
    : path_(model_file), sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()) {
  PATHVLM_CHECK(fs::is_regular_file(model_file), "tokenizer '", model_file, "': no such file");
  const auto status = sp_->Load(model_file);
  PATHVLM_CHECK(status.ok(), "tokenizer '", model_file, "': not a SentencePiece model (", status.ToString(), ")");
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;
SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept = default;
SentencePieceTokenizer& SentencePieceTokenizer::operator=(SentencePieceTokenizer&&) noexcept = default;

std::string SentencePieceTokenizer::locate(const std::string& dir_or_file) {
  if (fs::is_directory(dir_or_file)) {
    const auto file = fs::path(dir_or_file) / "tokenizer.model";
    PATHVLM_CHECK(fs::is_regular_file(file), "'", dir_or_file,
                  "' has no tokenizer.model (give the SentencePiece file with --tokenizer)");
    return file.string();
  }
  PATHVLM_CHECK(fs::is_regular_file(dir_or_file), "tokenizer '", dir_or_file, "': no such file or directory");
  return dir_or_file;
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos) ids.push_back(bos_id());
  // Control tokens written as text ("</s>") become their ids; the text between them is encoded on its own.
  const std::vector<std::pair<std::string, int64_t>> specials = {
      {sp_->IdToPiece(static_cast<int>(bos_id())), bos_id()}, {sp_->IdToPiece(static_cast<int>(eos_id())), eos_id()}};
  size_t pos = 0;
  auto encode_piece = [&](const std::string& piece) {
    if (piece.empty()) return;
    std::vector<int> piece_ids;
    const auto status = sp_->Encode(piece, &piece_ids);
    PATHVLM_CHECK(status.ok(), "tokenizer '", path_, "': cannot encode text (", status.ToString(), ")");
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  };
  while (pos < text.size()) {
    size_t best = std::string::npos;
    const std::pair<std::string, int64_t>* found = nullptr;
    for (const auto& special : specials) {
      const auto at = text.find(special.first, pos);
      if (at != std::string::npos && (best == std::string::npos || at < best)) best = at, found = &special;
    }
    if (found == nullptr) {
      encode_piece(text.substr(pos));
      break;
    }
    encode_piece(text.substr(pos, best - pos));
    ids.push_back(found->second);
    pos = best + found->first.size();
  }
  return ids;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::vector<int> kept;
  kept.reserve(ids.size());
  for (auto id : ids) {
    PATHVLM_CHECK(id >= 0 && id < vocab_size(), "tokenizer '", path_, "': id ", id, " is outside the vocabulary of ",
                  vocab_size());
    if (skip_special && sp_->IsControl(static_cast<int>(id))) continue;
    kept.push_back(static_cast<int>(id));
  }
  std::string text;
  const auto status = sp_->Decode(kept, &text);
  PATHVLM_CHECK(status.ok(), "tokenizer '", path_, "': cannot decode (", status.ToString(), ")");
  return text;
}

int64_t SentencePieceTokenizer::bos_id() const { return sp_->bos_id(); }
int64_t SentencePieceTokenizer::eos_id() const { return sp_->eos_id(); }
int64_t SentencePieceTokenizer::unk_id() const { return sp_->unk_id(); }
int64_t SentencePieceTokenizer::vocab_size() const { return sp_->GetPieceSize(); }

void SentencePieceTokenizer::save_hf(const std::string& dir) const {
  fs::create_directories(dir);
  const auto target = fs::path(dir) / "tokenizer.model";
  if (!fs::exists(target) || !fs::equivalent(path_, target)) {
    fs::copy_file(path_, target, fs::copy_options::overwrite_existing);
  }
  auto piece = [&](int64_t id) { return sp_->IdToPiece(static_cast<int>(id)); };
  const nlohmann::json config = {{"tokenizer_class", "LlamaTokenizer"}, {"add_bos_token", true},
                                 {"add_eos_token", false},              {"legacy", true},
                                 {"bos_token", piece(bos_id())},        {"eos_token", piece(eos_id())},
                                 {"unk_token", piece(unk_id())},        {"pad_token", nullptr},
                                 {"clean_up_tokenization_spaces", false}, {"model_max_length", 1000000000000000019884624838656.0}};
  const nlohmann::json special = {
      {"bos_token", piece(bos_id())}, {"eos_token", piece(eos_id())}, {"unk_token", piece(unk_id())}};
  for (const auto& [name, json] : {std::pair{"tokenizer_config.json", config}, {"special_tokens_map.json", special}}) {
    std::ofstream out(fs::path(dir) / name);
    out << json.dump(2) << "\n";
    PATHVLM_CHECK(out.good(), "cannot write '", (fs::path(dir) / name).string(), "'");
  }
}

void train_sentencepiece(const std::vector<std::string>& texts, int vocab_size, const std::string& model_file) {
  PATHVLM_CHECK(!texts.empty(), "train_sentencepiece: no texts");
  const auto prefix = model_file.size() > 6 && model_file.compare(model_file.size() - 6, 6, ".model") == 0
                          ? model_file.substr(0, model_file.size() - 6)
                          : model_file;
  const auto corpus = prefix + ".corpus.txt";
  {
    std::ofstream out(corpus);
    for (const auto& t : texts) out << t << "\n";
    PATHVLM_CHECK(out.good(), "train_sentencepiece: cannot write '", corpus, "'");
  }
  const auto args = str("--input=", corpus, " --model_prefix=", prefix, " --vocab_size=", vocab_size,
                        " --model_type=bpe --byte_fallback=true --unk_id=0 --bos_id=1 --eos_id=2 --pad_id=-1",
                        " --character_coverage=1.0 --num_threads=1 --minloglevel=2");
  const auto status = sentencepiece::SentencePieceTrainer::Train(args);
  fs::remove(corpus);
  fs::remove(prefix + ".vocab");
  PATHVLM_CHECK(status.ok(), "train_sentencepiece '", model_file, "': ", status.ToString());
  if (prefix != model_file) return;
  fs::rename(prefix + ".model", model_file);
}

}  // namespace pathvlm::text
