#include "text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/replace_all.h"
#include "core/text_file.h"
#include "text/sentencepiece_backend.h"
#include "text/sentencepiece_json.h"

namespace fs = std::filesystem;

namespace pathvlm::text {
namespace {

const std::string kMetaSpace = "\xe2\x96\x81";  // ▁

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

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

  // LlamaTokenizer's legacy, add_bos_token and add_prefix_space, from tokenizer_config.json beside the model.
  const auto config_file = (fs::path(model_file).parent_path() / "tokenizer_config.json").string();
  if (fs::is_regular_file(config_file)) {
    const std::string where = "tokenizer config '" + config_file + "'";
    const auto config = json_fields::parse(read_text_file(config_file), where);
    legacy_ = json_fields::bool_or(config, "legacy", true, where);
    add_bos_ = json_fields::bool_or(config, "add_bos_token", true, where);
    add_prefix_space_ = json_fields::bool_or(config, "add_prefix_space", true, where);
  }
  if (!legacy_) {
    plain_ = make_sentencepiece_backend();
    const auto plain_error = plain_->load_serialized(sentencepiece_model_without_dummy_prefix(model_file));
    PATHVLM_CHECK(plain_error.empty(), "tokenizer '", model_file, "': cannot load it without its dummy prefix (",
                  plain_error, ")");
    std::vector<int> unk;
    PATHVLM_CHECK(plain_->encode(id_to_piece(unk_id()), &unk).empty(), "tokenizer '", model_file,
                  "': cannot encode its unknown token");
    unk_pieces_ = unk.size();
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;
SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept = default;
SentencePieceTokenizer& SentencePieceTokenizer::operator=(SentencePieceTokenizer&&) noexcept = default;

void SentencePieceTokenizer::split_specials(const std::string& text,
                                            const std::function<void(const std::string&)>& on_run,
                                            const std::function<void(int64_t)>& on_special) const {
  auto emit_run = [&](const std::string& run) {
    if (!run.empty()) on_run(run);
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
      emit_run(text.substr(pos));
      break;
    }
    emit_run(text.substr(pos, at - pos));
    on_special(special->second);
    pos = at + special->first.size();
  }
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos && add_bos_) ids.push_back(bos_id());
  if (!legacy_) {
    if (text.empty()) return ids;
    // transformers makes each "▁" of the text a space and puts one "▁" before it, dropped again when a special
    // token follows it directly.
    auto text_ids = encode_runs((add_prefix_space_ ? kMetaSpace : "") + replace_all(text, kMetaSpace, " "));
    if (text_ids.size() > 1 && id_to_piece(text_ids[0]) == kMetaSpace && is_special(text_ids[1]))
      text_ids.erase(text_ids.begin());
    ids.insert(ids.end(), text_ids.begin(), text_ids.end());
    return ids;
  }
  split_specials(
      text,
      [&](const std::string& run) {
        std::vector<int> run_ids;
        const auto error = sp_->encode(run, &run_ids);
        PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot encode text (", error, ")");
        ids.insert(ids.end(), run_ids.begin(), run_ids.end());
      },
      [&](int64_t special) { ids.push_back(special); });
  return ids;
}

std::vector<int64_t> SentencePieceTokenizer::encode_runs(const std::string& text) const {
  std::vector<int64_t> ids;
  split_specials(
      text, [&](const std::string& run) { encode_plain(run, ids); }, [&](int64_t special) { ids.push_back(special); });
  return ids;
}

void SentencePieceTokenizer::encode_plain(const std::string& run, std::vector<int64_t>& ids) const {
  // A leading space or "▁" is kept as the first piece's "▁", as transformers does: behind the unknown token's
  // string, whose pieces are then dropped.
  const bool spaced = starts_with(run, " ") || starts_with(run, kMetaSpace);
  std::vector<int> run_ids;
  const auto error = plain_->encode(spaced ? id_to_piece(unk_id()) + run : run, &run_ids);
  PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot encode text (", error, ")");
  const size_t skip = spaced && run_ids.size() >= unk_pieces_ ? unk_pieces_ : 0;
  ids.insert(ids.end(), run_ids.begin() + static_cast<std::ptrdiff_t>(skip), run_ids.end());
}

std::vector<int64_t> SentencePieceTokenizer::encode_after_special(const std::string& text) const {
  return legacy_ ? encode(text, /*add_bos=*/false) : encode_runs(replace_all(text, kMetaSpace, " "));
}

std::vector<int64_t> SentencePieceTokenizer::encode_continuation(const std::string& before,
                                                                 const std::string& text) const {
  PATHVLM_CHECK(text.size() >= 2 && text[0] == ' ' && !before.empty() && before.back() != ' ',
                "text continues without starting at a space after a non-space (\"", before, "\" | \"", text,
                "\"), so its tokens would differ from the whole text's");
  return legacy_ ? encode(text.substr(1), /*add_bos=*/false) : encode_after_special(text);
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string text;
  std::vector<int> run;  // ordinary pieces since the last special token, decoded together
  bool first = true;     // nothing written yet
  auto flush = [&] {
    std::string decoded;
    const auto error = (legacy_ ? sp_ : plain_)->decode(run, &decoded);
    PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot decode (", error, ")");
    // Not legacy, only the first token loses its "▁" (transformers put it there); the model keeps the others.
    if (!legacy_ && first && add_prefix_space_ && !run.empty() && starts_with(id_to_piece(run[0]), kMetaSpace) &&
        starts_with(decoded, " "))
      decoded.erase(0, 1);
    text += decoded;
    first = first && run.empty();
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
      if (legacy_) text += ' ';
      flush();
    }
    text += id_to_piece(id);
    first = false;
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
  nlohmann::json config = {{"tokenizer_class", "LlamaTokenizer"},
                           {"add_bos_token", add_bos_},
                           {"add_eos_token", false},
                           {"legacy", legacy_},
                           {"bos_token", bos},
                           {"eos_token", eos},
                           {"unk_token", unk},
                           {"pad_token", nullptr},
                           {"clean_up_tokenization_spaces", false}};
  if (!add_prefix_space_) config["add_prefix_space"] = false;
  const nlohmann::json special = {{"bos_token", bos}, {"eos_token", eos}, {"unk_token", unk}};
  for (const auto& [name, json] : {std::pair{"tokenizer_config.json", config}, {"special_tokens_map.json", special}}) {
    const auto file = (fs::path(dir) / name).string();
    std::ofstream out(file);
    out << json.dump(2) << "\n";
    PATHVLM_CHECK(out.good(), "cannot write '", file, "'");
  }
  // transformers 5 reads tokenizer.json first; 4.x built the same from tokenizer.model.
  const auto json = tokenizer_json();
  if (!json.empty()) write_text_file((fs::path(dir) / "tokenizer.json").string(), json);
}

std::string SentencePieceTokenizer::tokenizer_json() const {
  // add_prefix_space false has no LlamaConverter form that keeps the rest of the rules.
  return add_prefix_space_ ? sentencepiece_tokenizer_json(path_, add_bos_ ? bos_id() : -1, legacy_) : "";
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
