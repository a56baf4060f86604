#include "text/sentencepiece_tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/replace_all.h"
#include "core/text_file.h"
#include "text/sentencepiece_backend.h"
#include "text/sentencepiece_json.h"
#include "text/tokenizer_json_steps.h"

namespace fs = std::filesystem;

namespace pathvlm::text {
namespace {

bool starts_with(const std::string& text, const std::string& prefix) { return text.rfind(prefix, 0) == 0; }

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const std::string& model_file)
    : path_(model_file), sp_(make_sentencepiece_backend()) {
  PATHVLM_CHECK(fs::is_regular_file(model_file), "tokenizer '", model_file, "': no such file");
  const auto error = sp_->load(model_file);
  PATHVLM_CHECK(error.empty(), "tokenizer '", model_file, "': not a SentencePiece model (", error, ")");
  PATHVLM_CHECK(sp_->bos_id() >= 0 && sp_->eos_id() >= 0, "tokenizer '", model_file,
                "': the model has no BOS or EOS piece (LLaMA's has <s> = 1, </s> = 2)");
  // <unk> and the control pieces are special tokens, as transformers 5 makes them when it converts the model.
  kinds_.assign(static_cast<size_t>(sp_->piece_size()), Kind::kModel);
  for (int id = 0; id < sp_->piece_size(); ++id)
    if (id == sp_->unk_id() || sp_->is_control(id)) add_token(id, id_to_piece(id), /*special=*/true);

  // LlamaTokenizer's legacy, add_bos_token, add_prefix_space and added tokens, from tokenizer_config.json beside
  // the model.
  const auto config_file = (fs::path(model_file).parent_path() / "tokenizer_config.json").string();
  if (fs::is_regular_file(config_file)) {
    const std::string where = "tokenizer config '" + config_file + "'";
    const auto config = json_fields::parse(read_text_file(config_file), where);
    legacy_ = json_fields::bool_or(config, "legacy", true, where);
    add_bos_ = json_fields::bool_or(config, "add_bos_token", true, where);
    add_prefix_space_ = json_fields::bool_or(config, "add_prefix_space", true, where);
    read_added_tokens(config, where);
  }
  for (size_t id = 0; id < kinds_.size(); ++id)
    if (kinds_[id] == Kind::kSpecial)
      special_tokens_.add({id_to_piece(static_cast<int64_t>(id)), static_cast<int32_t>(id)});
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

void SentencePieceTokenizer::add_token(int64_t id, const std::string& content, bool special) {
  if (kinds_[id] == Kind::kModel) added_.add({content, static_cast<int32_t>(id)});
  if (special || kinds_[id] == Kind::kModel) kinds_[id] = special ? Kind::kSpecial : Kind::kAdded;
}

void SentencePieceTokenizer::read_added_tokens(const nlohmann::json& config, const std::string& where) {
  if (!json_fields::present(config, "added_tokens_decoder")) return;
  const auto& decoder = config["added_tokens_decoder"];
  PATHVLM_CHECK(decoder.is_object(), where, ": added_tokens_decoder is not an object of id -> token");
  const int64_t pieces = sp_->piece_size();
  std::map<int64_t, std::pair<std::string, bool>> after;  // (content, special) of the tokens after the model's
  for (const auto& [key, token] : decoder.items()) {
    const bool digits = !key.empty() && key.size() < 10 && key.find_first_not_of("0123456789") == std::string::npos;
    PATHVLM_CHECK(digits, where, ": added_tokens_decoder key '", key, "' is not an id");
    PATHVLM_CHECK(token.is_object() && token.contains("content") && token["content"].is_string() &&
                      !token["content"].get_ref<const std::string&>().empty(),
                  where, ": added token ", key, " has no content");
    const auto content = token["content"].get<std::string>();
    for (const char* flag : {"lstrip", "rstrip", "single_word"})
      PATHVLM_CHECK(!json_fields::bool_or(token, flag, false, where), where, ": added token '", content, "' sets ",
                    flag, ", not supported");
    const bool special = json_fields::bool_or(token, "special", false, where);
    const int64_t id = std::stoll(key);
    if (id >= pieces) {
      after[id] = {content, special};
      continue;
    }
    PATHVLM_CHECK(id_to_piece(id) == content, where, ": added token '", content, "' has id ", id,
                  ", which is the model's piece '", id_to_piece(id), "'");
    add_token(id, content, special);
  }
  // transformers numbers the tokens it adds after the model's pieces, in order.
  for (const auto& [id, token] : after) {
    const int64_t next = pieces + static_cast<int64_t>(pieces_after_.size());
    PATHVLM_CHECK(id == next, where, ": added token '", token.first, "' has id ", id, ", but the tokens after the ",
                  "model's ", pieces, " pieces take the ids from ", pieces, " on without gaps (the next is ", next,
                  ")");
    const auto same = added_.id_of(token.first);
    PATHVLM_CHECK(same < 0, where, ": added token '", token.first, "' (id ", id, ") is also the token of id ", same);
    pieces_after_.push_back(token.first);
    kinds_.push_back(Kind::kModel);
    add_token(id, token.first, token.second);
  }
}

SentencePieceTokenizer::~SentencePieceTokenizer() = default;
SentencePieceTokenizer::SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept = default;
SentencePieceTokenizer& SentencePieceTokenizer::operator=(SentencePieceTokenizer&&) noexcept = default;

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text, bool add_bos) const {
  std::vector<int64_t> ids;
  if (add_bos && add_bos_) ids.push_back(bos_id());
  if (!legacy_) {
    if (text.empty()) return ids;
    // transformers makes each "▁" of the text a space and puts one "▁" before it, dropped again when an added
    // token follows it directly.
    const std::string prefix = add_prefix_space_ ? kSentencePieceSpace : "";
    auto text_ids = encode_runs(prefix + replace_all(text, kSentencePieceSpace, " "));
    if (text_ids.size() > 1 && id_to_piece(text_ids[0]) == kSentencePieceSpace && is_added(text_ids[1]))
      text_ids.erase(text_ids.begin());
    ids.insert(ids.end(), text_ids.begin(), text_ids.end());
    return ids;
  }
  added_.cut(
      text,
      [&](const std::string& run, bool) {
        std::vector<int> run_ids;
        const auto error = sp_->encode(run, &run_ids);
        PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot encode text (", error, ")");
        ids.insert(ids.end(), run_ids.begin(), run_ids.end());
      },
      [&](int32_t id) { ids.push_back(id); });
  return ids;
}

std::vector<int64_t> SentencePieceTokenizer::encode_runs(const std::string& text) const {
  std::vector<int64_t> ids;
  added_.cut(
      text, [&](const std::string& run, bool) { encode_plain(run, ids); }, [&](int32_t id) { ids.push_back(id); });
  return ids;
}

void SentencePieceTokenizer::encode_plain(const std::string& run, std::vector<int64_t>& ids) const {
  // A leading space or "▁" is kept as the first piece's "▁", as transformers does: behind the unknown token's
  // string, whose pieces are then dropped.
  const bool spaced = starts_with(run, " ") || starts_with(run, kSentencePieceSpace);
  std::vector<int> run_ids;
  const auto error = plain_->encode(spaced ? id_to_piece(unk_id()) + run : run, &run_ids);
  PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot encode text (", error, ")");
  const size_t skip = spaced && run_ids.size() >= unk_pieces_ ? unk_pieces_ : 0;
  ids.insert(ids.end(), run_ids.begin() + static_cast<std::ptrdiff_t>(skip), run_ids.end());
}

std::vector<int64_t> SentencePieceTokenizer::encode_after_special(const std::string& text) const {
  return legacy_ ? encode(text, /*add_bos=*/false) : encode_runs(replace_all(text, kSentencePieceSpace, " "));
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
  std::vector<int> run;  // the model's pieces since the last added token, decoded together
  bool first = true;     // nothing written yet
  auto flush = [&] {
    std::string decoded;
    const auto error = (legacy_ ? sp_ : plain_)->decode(run, &decoded);
    PATHVLM_CHECK(error.empty(), "tokenizer '", path_, "': cannot decode (", error, ")");
    // Not legacy, only the first token loses its "▁" (transformers put it there); the model keeps the others.
    if (!legacy_ && first && add_prefix_space_ && !run.empty() &&
        starts_with(id_to_piece(run[0]), kSentencePieceSpace) && starts_with(decoded, " "))
      decoded.erase(0, 1);
    text += decoded;
    first = first && run.empty();
    run.clear();
  };
  for (const auto id : ids) {
    check_id(id);
    if (!is_added(id)) {
      run.push_back(static_cast<int>(id));
      continue;
    }
    if (skip_special && is_special(id)) continue;
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
  const int64_t pieces = sp_->piece_size();
  return id < pieces ? sp_->id_to_piece(static_cast<int>(id)) : pieces_after_[id - pieces];
}

int64_t SentencePieceTokenizer::bos_id() const { return sp_->bos_id(); }
int64_t SentencePieceTokenizer::eos_id() const { return sp_->eos_id(); }
int64_t SentencePieceTokenizer::unk_id() const { return sp_->unk_id(); }
int64_t SentencePieceTokenizer::vocab_size() const { return static_cast<int64_t>(kinds_.size()); }

bool SentencePieceTokenizer::is_special(int64_t id) const {
  return id >= 0 && id < vocab_size() && kinds_[id] == Kind::kSpecial;
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
  // Every added token, where LlamaTokenizer reads them.
  auto& decoder = config["added_tokens_decoder"] = nlohmann::json::object();
  for (size_t id = 0; id < kinds_.size(); ++id) {
    if (kinds_[id] == Kind::kModel) continue;
    const auto content = id_to_piece(static_cast<int64_t>(id));
    decoder[std::to_string(id)] = hf_added_token(content, kinds_[id] == Kind::kSpecial);
  }
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
  if (!add_prefix_space_) return "";
  std::vector<ConfigAddedToken> added;  // besides <unk> and the control pieces, which the conversion adds itself
  for (size_t id = 0; id < kinds_.size(); ++id) {
    const auto i = static_cast<int64_t>(id);
    const bool model_special = i == unk_id() || (i < sp_->piece_size() && sp_->is_control(static_cast<int>(i)));
    if (kinds_[id] != Kind::kModel && !model_special)
      added.push_back({i, id_to_piece(i), kinds_[id] == Kind::kSpecial});
  }
  return sentencepiece_tokenizer_json(path_, add_bos_ ? bos_id() : -1, legacy_, added);
}

void train_sentencepiece(const std::vector<std::string>& texts, int vocab_size, const std::string& model_file,
                         const std::vector<std::string>& control_symbols) {
  PATHVLM_CHECK(!texts.empty(), "train_sentencepiece '", model_file, "': no texts");
  std::unordered_map<std::string, std::string> options = {
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
  for (const auto& symbol : control_symbols) {
    PATHVLM_CHECK(symbol.find(',') == std::string::npos, "train_sentencepiece '", model_file, "': control symbol '",
                  symbol, "' holds a comma");
    options["control_symbols"] += (options["control_symbols"].empty() ? "" : ",") + symbol;
  }
  std::string model;
  const auto error = train_sentencepiece_model(options, texts, &model);
  PATHVLM_CHECK(error.empty(), "train_sentencepiece '", model_file, "': ", error);
  std::ofstream out(model_file, std::ios::binary);
  out.write(model.data(), static_cast<std::streamsize>(model.size()));
  PATHVLM_CHECK(out.good(), "train_sentencepiece: cannot write '", model_file, "'");
}

}  // namespace pathvlm::text
