#include "text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/text_file.h"
#include "text/sentencepiece_backend.h"
#include "text/sentencepiece_json.h"

namespace fs = std::filesystem;

namespace pathvlm::text {

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file)
    : path_(model_file), sp_(make_sentencepiece_backend()) {
  PATHVLM_CHECK(fs::is_regular_file(model_file), "tokenizer '", model_file, "': no such file");
  const auto error = sp_->load(model_file);
  PATHVLM_CHECK(error.empty(), "tokenizer '", model_file, "': not a SentencePiece model (", error, ")");
  PATHVLM_CHECK(sp_->bos_id() >= 0 && sp_->eos_id() >= 0, "tokenizer '", model_file,
                "': the model has no BOS or EOS piece (LLaMA's has <s> = 1, </s> = 2)");
  for (const auto id : {unk_id(), bos_id(), eos_id()}) specials_.emplace_back(id_to_piece(id), id);
  std::stable_sort(specials_.begin(), specials_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  for (const auto& special : specials_) special_strings_.push_back(special.first);
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;
SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept = default;
SentencePieceTokenizer& SentencePieceTokenizer::operator=(SentencePieceTokenizer&&) noexcept = default;

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos) ids.push_back(bos_id());
  auto encode_run = [&](const std::string& run) {
    if (run.empty()) return;
    std::vector<int> run_ids;
    const auto error = sp_->encode(run, &run_ids);
    PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot encode text (", error, ")");
    ids.insert(ids.end(), run_ids.begin(), run_ids.end());
  };
  size_t pos = 0;
  while (pos < text.size()) {
    // The earliest special string from `pos`; at one position the longest wins (specials_ is longest first).
    size_t at = std::string::npos;
    const std::pair<std::string, int64_t>* special = nullptr;
    for (const auto& candidate : specials_) {
      const auto found = text.find(candidate.first, pos);
      if (found < at) at = found, special = &candidate;
    }
    if (special == nullptr) {
      encode_run(text.substr(pos));
      break;
    }
    encode_run(text.substr(pos, at - pos));
    ids.push_back(special->second);
    pos = at + special->first.size();
  }
  return ids;
}

std::vector<int64_t> SentencePieceTokenizer::encode_continuation(const std::string& before,
                                                                 const std::string& text) const {
  PATHVLM_CHECK(text.size() >= 2 && text[0] == ' ' && !before.empty() && before.back() != ' ',
                "text continues without starting at a space after a non-space (\"", before, "\" | \"", text,
                "\"), so its tokens would differ from the whole text's");
  return encode(text.substr(1), /*add_bos=*/false);
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string text;
  std::vector<int> run;  // ordinary pieces since the last special token, decoded together
  auto flush = [&] {
    std::string decoded;
    const auto error = sp_->decode(run, &decoded);
    PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot decode (", error, ")");
    text += decoded;
    run.clear();
  };
  for (const auto id : ids) {
    check_id(id);
    if (!is_special(id)) {
      run.push_back(static_cast<int>(id));
      continue;
    }
    if (skip_special) continue;
    if (!run.empty()) {
      text += ' ';
      flush();
    }
    text += id_to_piece(id);
  }
  flush();
  return text;
}

std::string SentencePieceTokenizer::id_to_piece(int64_t id) const {
  check_id(id);
  return sp_->id_to_piece(static_cast<int>(id));
}

int64_t SentencePieceTokenizer::bos_id() const { return sp_->bos_id(); }
int64_t SentencePieceTokenizer::eos_id() const { return sp_->eos_id(); }
int64_t SentencePieceTokenizer::unk_id() const { return sp_->unk_id(); }
int64_t SentencePieceTokenizer::vocab_size() const { return sp_->piece_size(); }

bool SentencePieceTokenizer::is_special(int64_t id) const {
  return id == unk_id() || id == bos_id() || id == eos_id();
}

void SentencePieceTokenizer::check_id(int64_t id) const {
  PATHVLM_CHECK(id >= 0 && id < vocab_size(), "tokenizer '", path_, "': id ", id, " is outside the vocabulary of ",
                vocab_size());
}

void SentencePieceTokenizer::save_hf(const std::string& dir) const {
  fs::create_directories(dir);
  const auto target = fs::path(dir) / "tokenizer.model";
  if (!fs::exists(target) || !fs::equivalent(path_, target)) {
    fs::copy_file(path_, target, fs::copy_options::overwrite_existing);
  }
  const auto bos = id_to_piece(bos_id()), eos = id_to_piece(eos_id()), unk = id_to_piece(unk_id());
  const nlohmann::json config = {{"tokenizer_class", "LlamaTokenizer"},
                                 {"add_bos_token", true},
                                 {"add_eos_token", false},
                                 {"legacy", true},
                                 {"bos_token", bos},
                                 {"eos_token", eos},
                                 {"unk_token", unk},
                                 {"pad_token", nullptr},
                                 {"clean_up_tokenization_spaces", false}};
  const nlohmann::json special = {{"bos_token", bos}, {"eos_token", eos}, {"unk_token", unk}};
  for (const auto& [name, json] : {std::pair{"tokenizer_config.json", config}, {"special_tokens_map.json", special}}) {
    const auto file = (fs::path(dir) / name).string();
    std::ofstream out(file);
    out << json.dump(2) << "\n";
    PATHVLM_CHECK(out.good(), "cannot write '", file, "'");
  }
  // transformers 5 reads tokenizer.json first; 4.x built the same from tokenizer.model.
  const auto json = sentencepiece_tokenizer_json(path_, bos_id());
  if (!json.empty()) write_text_file((fs::path(dir) / "tokenizer.json").string(), json);
}

void train_sentencepiece(const std::vector<std::string>& texts, int vocab_size, const std::string& model_file) {
  PATHVLM_CHECK(!texts.empty(), "train_sentencepiece '", model_file, "': no texts");
  const std::unordered_map<std::string, std::string> options = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(vocab_size)},
      {"byte_fallback", "true"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"character_coverage", "1.0"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"num_threads", "1"},
      {"minloglevel", "2"}};
  std::string model;
  const auto error = train_sentencepiece_model(options, texts, &model);
  PATHVLM_CHECK(error.empty(), "train_sentencepiece '", model_file, "': ", error);
  std::ofstream out(model_file, std::ios::binary);
  out.write(model.data(), static_cast<std::streamsize>(model.size()));
  PATHVLM_CHECK(out.good(), "train_sentencepiece: cannot write '", model_file, "'");
}

}  // namespace pathvlm::text
