// BPE as the Hugging Face tokenizers library runs it: added tokens are cut out of the raw text, the rest is
// normalised, cut into pre-tokens (byte-level files: by a hand-written matcher of the tokenizer's regex, with
// Oniguruma's semantics: the first alternative that matches wins, quantifiers are greedy and give back;
// SentencePiece-style ones: by Metaspace, or not at all), and each pre-token's first symbols (its UTF-8 bytes, or
// its characters with byte fallback) are merged by rank.
#include "text/bpe_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <filesystem>
#include <queue>

#include "core/error.h"
#include "core/replace_all.h"
#include "core/text_file.h"
#include "core/utf8.h"
#include "text/byte_level.h"
#include "text/fix_text.h"
#include "text/unicode_ranges.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace pathvlm::text {
namespace {

#include "text/bpe_tokenizer_unicode.inc"

// The pre-tokenisation regexes as tokenizer.json writes them (LLaMA-3 / 3.1, Qwen2 / 2.5 / 3, GPT-2).
const std::string kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+)"
    R"(|\s+(?!\S)|\s+)";
const std::string kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+)"
    R"(|\s+(?!\S)|\s+)";
const std::string kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// Words merged once are remembered, up to this many and this long (the library keeps 10000, of up to 256 bytes).
constexpr size_t kCacheCapacity = 1 << 16;
constexpr size_t kCachedWordBytes = 256;

bool is_letter(char32_t c) { return in_ranges(kBpeLetterRanges, c); }
bool is_number(char32_t c) { return in_ranges(kBpeNumberRanges, c); }
// Oniguruma's \s: Unicode White_Space.
bool is_space(char32_t c) {
  return (c >= 0x9 && c <= 0xD) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
         c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}
// [^\s\p{L}\p{N}]
bool is_other(char32_t c) { return !is_space(c) && !is_letter(c) && !is_number(c); }
bool is_line_break(char32_t c) { return c == U'\r' || c == U'\n'; }

// 's|'t|'re|'ve|'m|'ll|'d at s[i]: its length, or 0. Under (?i:...) Unicode case folding also lets U+017F (long s)
// stand for s; no other character folds onto these letters.
size_t contraction_at(const std::u32string& s, size_t i, bool ignore_case) {
  if (s[i] != U'\'') return 0;
  auto is = [&](size_t k, char32_t lower) {
    if (k >= s.size()) return false;
    const char32_t c = s[k];
    return c == lower || (ignore_case && (c == lower - 32 || (lower == U's' && c == 0x17F)));
  };
  if (is(i + 1, U's') || is(i + 1, U't') || is(i + 1, U'm') || is(i + 1, U'd')) return 2;
  if ((is(i + 1, U'r') && is(i + 2, U'e')) || (is(i + 1, U'v') && is(i + 2, U'e')) ||
      (is(i + 1, U'l') && is(i + 2, U'l')))
    return 3;
  return 0;
}

// `prefix?` then one or more `cls` at s[i]: the end of the match, or i. The optional prefix is taken only when a
// `cls` follows it (the regex gives it back otherwise).
template <class Prefix, class Class>
size_t run_at(const std::u32string& s, size_t i, Prefix prefix, Class cls) {
  size_t j = i;
  if (prefix(s[j]) && j + 1 < s.size() && cls(s[j + 1])) ++j;
  if (!cls(s[j])) return i;
  while (j < s.size() && cls(s[j])) ++j;
  return j;
}

// The whitespace alternatives at s[i], a whitespace character. `line_breaks`: \s*[\r\n]+ comes first (up to and
// with the run's last line break). Then \s+(?!\S): the whole run at the end of the text, else all of it but the last
// character, which stays to lead the next word; a single space before a non-space is \s+.
size_t whitespace_at(const std::u32string& s, size_t i, bool line_breaks) {
  size_t end = i;
  while (end < s.size() && is_space(s[end])) ++end;
  if (line_breaks) {
    for (size_t k = end; k > i; --k)
      if (is_line_break(s[k - 1])) return k;
  }
  if (end == s.size() || end - i == 1) return end;
  return end - 1;
}

// The end of the match of LLaMA-3's / Qwen's regex at s[i]; `max_digits` is 3 (\p{N}{1,3}) or 1 (\p{N}).
size_t llama3_match_at(const std::u32string& s, size_t i, size_t max_digits) {
  if (size_t n = contraction_at(s, i, true)) return i + n;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  auto letter_prefix = [](char32_t c) { return !is_line_break(c) && !is_letter(c) && !is_number(c); };
  if (size_t end = run_at(s, i, letter_prefix, is_letter); end > i) return end;
  if (is_number(s[i])) {
    size_t end = i;
    while (end < s.size() && end - i < max_digits && is_number(s[end])) ++end;
    return end;
  }
  // ?[^\s\p{L}\p{N}]+[\r\n]*
  auto space = [](char32_t c) { return c == U' '; };
  if (size_t end = run_at(s, i, space, is_other); end > i) {
    while (end < s.size() && is_line_break(s[end])) ++end;
    return end;
  }
  return whitespace_at(s, i, true);
}

// The end of the match of GPT-2's regex at s[i].
size_t gpt2_match_at(const std::u32string& s, size_t i) {
  if (size_t n = contraction_at(s, i, false)) return i + n;
  auto space = [](char32_t c) { return c == U' '; };
  for (auto cls : {is_letter, is_number, is_other}) {
    if (size_t end = run_at(s, i, space, cls); end > i) return end;
  }
  return whitespace_at(s, i, false);
}

// Rust's String::from_utf8_lossy: each maximal subpart of an ill-formed sequence becomes one U+FFFD.
std::string from_utf8_lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  const size_t n = bytes.size();
  for (size_t i = 0; i < n;) {
    const auto c = static_cast<uint8_t>(bytes[i]);
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    }
    // The continuation bytes the lead byte needs, and the range its first one must fall in.
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) {
      need = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
      need = 2;
      if (c == 0xE0) lo = 0xA0;
      if (c == 0xED) hi = 0x9F;  // no surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      need = 3;
      if (c == 0xF0) lo = 0x90;
      if (c == 0xF4) hi = 0x8F;  // nothing beyond U+10FFFF
    }
    size_t j = i + 1;
    for (size_t k = 0; k < need && j < n; ++k, ++j) {
      const auto d = static_cast<uint8_t>(bytes[j]);
      if (d < (k == 0 ? lo : 0x80) || d > (k == 0 ? hi : 0xBF)) break;
    }
    if (need > 0 && j - i == need + 1) {
      out.append(bytes, i, need + 1);
    } else {
      out += "\xEF\xBF\xBD";
    }
    i = j;
  }
  return out;
}

// The bytes the library's ByteLevel decoder makes of one token: the bytes its characters stand for when every one
// is a stand-in, else the token's own UTF-8.
std::string token_bytes(const std::string& token) {
  static const std::unordered_map<char32_t, char> byte_of = [] {
    std::unordered_map<char32_t, char> m;
    for (int b = 0; b < 256; ++b) m[byte_stand_ins()[b]] = static_cast<char>(b);
    return m;
  }();
  std::string out;
  for (char32_t c : utf8_to_utf32(token)) {
    auto it = byte_of.find(c);
    if (it == byte_of.end()) return token;
    out += it->second;
  }
  return out;
}

// The bytes of the UTF-8 sequence `lead` starts (the text is valid UTF-8).
size_t utf8_sequence_length(uint8_t lead) { return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4; }

uint64_t pair_key(int32_t left, int32_t right) {
  return static_cast<uint64_t>(left) << 32 | static_cast<uint32_t>(right);
}

const json& member(const json& object, const char* key) {
  static const json null;
  auto it = object.find(key);
  return it == object.end() ? null : *it;
}

std::string type_of(const json& component) {
  const json& type = component.is_object() ? member(component, "type") : component;
  return type.is_string() ? type.get<std::string>() : type.dump();
}

// A flag that may be absent (`fallback`), false or true.
bool flag(const json& object, const char* key, bool fallback) {
  const json& v = member(object, key);
  return v.is_null() ? fallback : v.get<bool>();
}

}  // namespace

std::vector<std::u32string> split_pre_tokens(const std::u32string& text, BpeTokenizer::SplitPattern pattern) {
  std::vector<std::u32string> pieces;
  if (pattern == BpeTokenizer::SplitPattern::kNone) {
    if (!text.empty()) pieces.push_back(text);
    return pieces;
  }
  // Every character starts a match of each of these regexes, so the matches tile the text.
  for (size_t i = 0; i < text.size();) {
    size_t end = pattern == BpeTokenizer::SplitPattern::kGpt2     ? gpt2_match_at(text, i)
                 : pattern == BpeTokenizer::SplitPattern::kLlama3 ? llama3_match_at(text, i, 3)
                                                                  : llama3_match_at(text, i, 1);
    pieces.push_back(text.substr(i, end - i));
    i = end;
  }
  return pieces;
}

std::string clean_up_tokenization(std::string text) {
  static const std::pair<const char*, const char*> kReplacements[] = {
      {" .", "."},   {" ?", "?"},     {" !", "!"},     {" ,", ","},     {" ' ", "'"},
      {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  // Each as Python's str.replace, in transformers' order.
  for (const auto& [from, to] : kReplacements) text = replace_all(text, from, to);
  return text;
}

BpeTokenizer::BpeTokenizer(const std::string& tokenizer_json) : path_(tokenizer_json) {
  PATHVLM_CHECK(fs::is_regular_file(path_), where(), "no such file");
  json j;
  try {
    j = json::parse(read_text_file(path_));
  } catch (const json::exception& e) {
    throw Error(where() + "not valid JSON (" + e.what() + ")");
  }
  try {
    read_tokenizer_json(j);
    read_tokenizer_config(member(j, "post_processor"));
  } catch (const json::exception& e) {  // a value of the wrong JSON type
    throw Error(where() + "unexpected content (" + e.what() + ")");
  }
}

void BpeTokenizer::read_tokenizer_json(const json& j) {
  PATHVLM_CHECK(j.is_object(), where(), "expected a JSON object, got ", j.type_name());
  PATHVLM_CHECK(member(j, "truncation").is_null() && member(j, "padding").is_null(), where(),
                "truncation or padding is set; pathvlm fits sequences itself (set both to null)");
  // Byte-level files say so in their pre-tokenizer; SentencePiece-style ones have none or Metaspace.
  const json& pre_tokenizer = member(j, "pre_tokenizer");
  alphabet_ = pre_tokenizer.is_null() || type_of(pre_tokenizer) == "Metaspace" ? Alphabet::kCharacters
                                                                               : Alphabet::kByteLevel;
  read_model(member(j, "model"));
  read_added_tokens(member(j, "added_tokens"));
  normalizer_ = TextNormalizer(member(j, "normalizer"), where());
  // Tokens matched after normalisation are normalised too (the library's rule); at one position the longest wins.
  AddedTokens normalized;
  for (const auto& t : normalized_added_.tokens())
    normalized.add({normalizer_.apply(t.content, SegmentStart::kText), t.id});
  normalized_added_ = std::move(normalized);
  read_pre_tokenizer(pre_tokenizer);
  const json& decoder = member(j, "decoder");
  if (alphabet_ == Alphabet::kByteLevel) {
    PATHVLM_CHECK(type_of(decoder) == "ByteLevel", where(), "decoder ", type_of(decoder),
                  " is not supported (byte-level BPE decodes with ByteLevel)");
  } else {
    decoder_ = TokenDecoder(decoder, where());
  }
  const json& post = member(j, "post_processor");
  const json& processors = type_of(post) == "Sequence" ? member(post, "processors") : json::array({post});
  for (const auto& p : processors) {
    const auto type = type_of(p);
    PATHVLM_CHECK(p.is_null() || type == "ByteLevel" || type == "TemplateProcessing", where(), "post_processor ",
                  type, " is not supported (only ByteLevel and TemplateProcessing, whose special tokens encode adds)");
  }
  // What each byte-level token decodes to, and the special tokens' strings, worked out once.
  if (alphabet_ == Alphabet::kByteLevel) piece_bytes_.resize(pieces_.size());
  for (size_t id = 0; id < pieces_.size(); ++id) {
    if (alphabet_ == Alphabet::kByteLevel) piece_bytes_[id] = token_bytes(pieces_[id]);
    if (kinds_[id] == Kind::kSpecial) special_tokens_.add({pieces_[id], static_cast<int32_t>(id)});
  }
}

void BpeTokenizer::read_model(const json& model) {
  PATHVLM_CHECK(model.is_object(), where(), "has no model");
  PATHVLM_CHECK(type_of(model) == "BPE", where(), "model type ", type_of(model),
                " is not supported (only BPE)");
  PATHVLM_CHECK(member(model, "dropout").is_null(), where(), "BPE dropout ", member(model, "dropout").dump(),
                " is not supported");
  byte_fallback_ = flag(model, "byte_fallback", false);
  PATHVLM_CHECK(!byte_fallback_ || alphabet_ == Alphabet::kCharacters, where(),
                "byte_fallback is set for a byte-level pre-tokenizer, which leaves no byte to fall back to");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    const json& v = member(model, key);
    PATHVLM_CHECK(v.is_null() || v == "", where(), key, " ", v.dump(), " is not supported");
  }
  ignore_merges_ = flag(model, "ignore_merges", false);
  fuse_unk_ = flag(model, "fuse_unk", false);

  const json& vocab = member(model, "vocab");
  PATHVLM_CHECK(vocab.is_object(), where(), "model.vocab is not an object of token -> id");
  int64_t size = 0;
  for (const auto& [token, id] : vocab.items()) {
    PATHVLM_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < INT32_MAX, where(),
                  "token '", token, "' has id ", id.dump(), ", not an id");
    vocab_.emplace(token, id.get<int32_t>());
    size = std::max(size, id.get<int64_t>() + 1);
  }
  pieces_.resize(size);
  kinds_.assign(size, Kind::kUnassigned);
  for (const auto& [token, id] : vocab_) {
    PATHVLM_CHECK(kinds_[id] == Kind::kUnassigned, where(), "id ", id, " is given to two tokens, '", pieces_[id],
                  "' and '", token, "'");
    pieces_[id] = token;
    kinds_[id] = Kind::kModel;
  }

  const json& unk = member(model, "unk_token");
  PATHVLM_CHECK(unk.is_null() || unk.is_string(), where(), "model.unk_token ", unk.dump(), " is not a token");
  if (unk.is_string() && vocab_.count(unk.get<std::string>())) unk_id_ = vocab_.at(unk.get<std::string>());
  for (int b = 0; b < 256; ++b) {
    if (alphabet_ == Alphabet::kCharacters) {
      char token[7];
      std::snprintf(token, sizeof token, "<0x%02X>", b);
      auto it = vocab_.find(token);
      fallback_ids_[b] = byte_fallback_ && it != vocab_.end() ? it->second : -1;
      continue;
    }
    std::string token;
    append_utf8(token, byte_stand_ins()[b]);
    auto it = vocab_.find(token);
    PATHVLM_CHECK(it != vocab_.end(), where(), "the vocabulary has no token '", token, "' for byte ", b,
                  " (not a byte-level BPE vocabulary)");
    byte_ids_[b] = it->second;
  }

  const json& merges = member(model, "merges");
  PATHVLM_CHECK(merges.is_array(), where(), "model.merges is not an array");
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    std::string left, right;
    if (m.is_string()) {  // "a b" (older files)
      const auto& s = m.get_ref<const std::string&>();
      const auto space = s.find(' ');
      PATHVLM_CHECK(space != std::string::npos && s.find(' ', space + 1) == std::string::npos, where(), "merge ",
                    rank, " '", s, "' is not two tokens 'a b'");
      left = s.substr(0, space), right = s.substr(space + 1);
    } else {  // ["a", "b"] (newer files)
      PATHVLM_CHECK(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), where(), "merge ", rank,
                    " ", m.dump(), " is not two tokens [\"a\", \"b\"]");
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    }
    int32_t ids[3];
    const std::string tokens[3] = {left, right, left + right};
    for (int k = 0; k < 3; ++k) {
      auto it = vocab_.find(tokens[k]);
      PATHVLM_CHECK(it != vocab_.end(), where(), "merge ", rank, " '", left, " ", right, "' needs token '", tokens[k],
                    "', which is not in the vocabulary");
      ids[k] = it->second;
    }
    merges_[pair_key(ids[0], ids[1])] = {static_cast<int32_t>(rank), ids[2]};  // a repeated pair: the last wins
  }
}

void BpeTokenizer::read_added_tokens(const json& added) {
  PATHVLM_CHECK(added.is_null() || added.is_array(), where(), "added_tokens is not an array");
  if (added.is_null()) return;
  // The library ignores the ids written here: a token the model lacks gets the id after the last added one, or the
  // model's vocabulary size for the first. A file that says otherwise would give other ids there: refused.
  const auto model_size = static_cast<int64_t>(vocab_.size());
  int64_t last_added = -1;
  for (const auto& t : added) {
    PATHVLM_CHECK(t.is_object() && member(t, "content").is_string() && member(t, "id").is_number_integer(), where(),
                  "added token ", t.dump(), " has no content or id");
    const auto content = t["content"].get<std::string>();
    const auto id = t["id"].get<int64_t>();
    PATHVLM_CHECK(!content.empty() && id >= 0 && id < INT32_MAX, where(), "added token ", t.dump(),
                  " has an empty content or a bad id");
    for (const char* key : {"lstrip", "rstrip", "single_word"})
      PATHVLM_CHECK(!flag(t, key, false), where(), "added token '", content, "' sets ", key, ", not supported");
    const bool special = flag(t, "special", false);
    auto in_vocab = vocab_.find(content);
    PATHVLM_CHECK(in_vocab == vocab_.end() || in_vocab->second == id, where(), "added token '", content, "' has id ",
                  id, ", the model's vocabulary gives it ", in_vocab->second);
    const int64_t numbered = in_vocab != vocab_.end()                                    ? id
                             : last_added >= 0 && (last_added >= model_size || model_size == 0) ? last_added + 1
                                                                                        : model_size;
    PATHVLM_CHECK(id == numbered, where(), "added token '", content, "' has id ", id,
                  " but the tokenizers library numbers it ", numbered,
                  " (added tokens take the ids after the vocabulary, in order, without gaps)");
    last_added = std::max(last_added, id);
    if (id >= static_cast<int64_t>(pieces_.size())) {
      pieces_.resize(id + 1);
      kinds_.resize(id + 1, Kind::kUnassigned);
    }
    PATHVLM_CHECK(kinds_[id] == Kind::kUnassigned || (kinds_[id] == Kind::kModel && pieces_[id] == content), where(),
                  "id ", id, " is given to two tokens, '", pieces_[id], "' and '", content, "'");
    pieces_[id] = content;
    kinds_[id] = special ? Kind::kSpecial : Kind::kAdded;
    // Special tokens default to matching the raw text, others to the normalised text (the library's defaults).
    AddedTokens& set = flag(t, "normalized", !special) ? normalized_added_ : raw_added_;
    set.add({content, static_cast<int32_t>(id)});
  }
}

void BpeTokenizer::read_pre_tokenizer(const json& pre_tokenizer) {
  if (alphabet_ == Alphabet::kCharacters) {
    if (!pre_tokenizer.is_null()) metaspace_.emplace(pre_tokenizer, where());
    return;
  }
  const auto type = type_of(pre_tokenizer);
  const json* byte_level = &pre_tokenizer;
  if (type == "Sequence") {
    const json& steps = member(pre_tokenizer, "pretokenizers");
    PATHVLM_CHECK(steps.is_array() && steps.size() == 2 && type_of(steps[0]) == "Split" &&
                      type_of(steps[1]) == "ByteLevel" && !flag(steps[1], "use_regex", true),
                  where(), "pre_tokenizer Sequence ", steps.dump(0).substr(0, 300),
                  " is not supported (only [Split, ByteLevel with use_regex false])");
    const json& split = steps[0];
    const json& regex = member(member(split, "pattern"), "Regex");
    PATHVLM_CHECK(regex.is_string(), where(), "Split pattern ", member(split, "pattern").dump(),
                  " is not supported (only the regexes of LLaMA-3, Qwen2/3 and GPT-2)");
    const auto& r = regex.get_ref<const std::string&>();
    split_ = r == kLlama3Regex ? SplitPattern::kLlama3
             : r == kQwen2Regex ? SplitPattern::kQwen2
             : r == kGpt2Regex  ? SplitPattern::kGpt2
                                : SplitPattern::kNone;
    PATHVLM_CHECK(split_ != SplitPattern::kNone, where(), "Split regex '", r,
                  "' is not supported (only the regexes of LLaMA-3, Qwen2/3 and GPT-2)");
    PATHVLM_CHECK(member(split, "behavior") == "Isolated" && !flag(split, "invert", false), where(),
                  "Split behavior ", member(split, "behavior").dump(), " with invert ", member(split, "invert").dump(),
                  " is not supported (only Isolated, invert false)");
    byte_level = &steps[1];
    prefix_space_ = flag(*byte_level, "add_prefix_space", true) ? PrefixSpace::kPiece : PrefixSpace::kNone;
  } else {
    PATHVLM_CHECK(type == "ByteLevel", where(), "pre_tokenizer ", type,
                  " is not supported (only ByteLevel, a Sequence of Split and ByteLevel, Metaspace or none)");
    if (flag(pre_tokenizer, "use_regex", true)) split_ = SplitPattern::kGpt2;
    prefix_space_ = flag(pre_tokenizer, "add_prefix_space", true) ? PrefixSpace::kSegment : PrefixSpace::kNone;
  }
}

BpeTokenizer::TemplateSpecials BpeTokenizer::template_specials(const json& post_processor) const {
  const json& processors =
      type_of(post_processor) == "Sequence" ? member(post_processor, "processors") : json::array({post_processor});
  for (const auto& p : processors) {
    if (type_of(p) != "TemplateProcessing") continue;
    const json& single = member(p, "single");
    if (!single.is_array()) continue;
    TemplateSpecials specials;
    bool after_text = false;
    for (const auto& piece : single) {
      const json& special = member(piece, "SpecialToken");
      if (!special.is_object()) {  // the text, {"Sequence": {"id": "A"}}
        after_text = true;
        continue;
      }
      // Its id in the processor's special_tokens table ({"<s>": {"ids": [1], ...}}).
      const json& name = member(special, "id");
      const json& ids = name.is_string() ? member(member(member(p, "special_tokens"), name.get<std::string>().c_str()),
                                                  "ids")
                                         : json();
      PATHVLM_CHECK(ids.is_array() && ids.size() == 1 && ids[0].is_number_integer() && ids[0] >= 0 &&
                        ids[0] < static_cast<int64_t>(pieces_.size()),
                    where(), "post_processor's special token ", name.dump(), " has no id in its special_tokens");
      (after_text ? specials.after : specials.before).push_back(ids[0].get<int64_t>());
    }
    return specials;
  }
  return {};
}

void BpeTokenizer::read_tokenizer_config(const json& post_processor) {
  const auto config_path = (fs::path(path_).parent_path() / "tokenizer_config.json").string();
  json config = json::object();
  if (fs::exists(config_path)) {
    try {
      config = json::parse(read_text_file(config_path));
    } catch (const json::exception& e) {
      throw Error("tokenizer config '" + config_path + "': not valid JSON (" + e.what() + ")");
    }
    PATHVLM_CHECK(config.is_object(), "tokenizer config '", config_path, "': expected a JSON object");
  }
  const std::string in_config = "tokenizer config '" + config_path + "': ";
  // `required`: a string that names no token is an error; else it gives -1 (transformers would add a new token).
  auto special = [&](const char* key, bool required) -> int64_t {
    const json& v = member(config, key);
    if (v.is_null()) return -1;
    const json& content = v.is_object() ? member(v, "content") : v;
    PATHVLM_CHECK(content.is_string(), in_config, key, " ", v.dump(), " is not a token");
    const auto id = token_id(content.get<std::string>());
    PATHVLM_CHECK(id >= 0 || !required, in_config, key, " '", content.get<std::string>(), "' is not a token of ",
                  path_);
    return id;
  };
  const TemplateSpecials specials = template_specials(post_processor);
  // An absent bos_token leaves BOS to the post-processor (what the library adds); a null one says there is none.
  bos_id_ = config.contains("bos_token") ? special("bos_token", true)
            : specials.before.empty()    ? -1
                                         : specials.before.front();
  after_text_ = specials.after;
  eos_id_ = special("eos_token", true);
  pad_id_ = special("pad_token", false);
  const json& add_bos = member(config, "add_bos_token");
  PATHVLM_CHECK(add_bos.is_null() || add_bos.is_boolean(), in_config, "add_bos_token ", add_bos.dump(),
                " is not true or false");
  add_bos_ = !add_bos.is_boolean() || add_bos.get<bool>();
  if (eos_id_ < 0 && !after_text_.empty()) eos_id_ = after_text_.back();
  if (eos_id_ < 0) {
    for (const char* eos : {"<|endoftext|>", "<|end_of_text|>", "</s>"})
      if (eos_id_ < 0) eos_id_ = raw_added_.id_of(eos);
    PATHVLM_CHECK(eos_id_ >= 0, where(), "no EOS: no tokenizer_config.json eos_token beside it, no special token "
                  "after the text in its TemplateProcessing, and no added token <|endoftext|>, <|end_of_text|> or ",
                  "</s>");
  }
  const json& clean_up = member(config, "clean_up_tokenization_spaces");
  PATHVLM_CHECK(clean_up.is_null() || clean_up.is_boolean(), in_config, "clean_up_tokenization_spaces ",
                clean_up.dump(), " is not true or false");
  // transformers' default has been false since 4.45.
  clean_up_ = clean_up.is_boolean() && clean_up.get<bool>();
}

int32_t BpeTokenizer::token_id(const std::string& content) const {
  for (const AddedTokens* set : {&raw_added_, &normalized_added_})
    if (const auto id = set->id_of(content); id >= 0) return id;
  auto it = vocab_.find(content);
  return it == vocab_.end() ? -1 : it->second;
}

std::vector<int64_t> BpeTokenizer::encode(const std::string& text, bool add_bos) const {
  return encode_text(text, add_bos, SegmentStart::kText);
}

std::vector<int64_t> BpeTokenizer::encode_after_special(const std::string& text) const {
  return encode_text(text, /*add_bos=*/false, SegmentStart::kAfterToken);
}

std::vector<int64_t> BpeTokenizer::encode_text(const std::string& text, bool add_bos, SegmentStart opening) const {
  const size_t bad = utf8_error_at(text);
  PATHVLM_CHECK(bad == std::string::npos, where(), "cannot encode text that is not valid UTF-8 (byte ", bad, ")");
  std::vector<int64_t> ids;
  if (add_bos && add_bos_ && bos_id_ >= 0) ids.push_back(bos_id_);
  const auto on_token = [&](int32_t id) { ids.push_back(id); };
  raw_added_.cut(
      text,
      [&](const std::string& raw, bool raw_first) {
        const std::string normalized = normalizer_.apply(raw, raw_first ? opening : SegmentStart::kAfterToken);
        normalized_added_.cut(
            normalized,
            [&](const std::string& segment, bool first) {
              encode_segment(segment, raw_first && first ? opening : SegmentStart::kAfterToken, ids);
            },
            on_token);
      },
      on_token);
  if (add_bos) ids.insert(ids.end(), after_text_.begin(), after_text_.end());
  return ids;
}

std::vector<int64_t> BpeTokenizer::encode_continuation(const std::string& before, const std::string& text) const {
  auto whole = encode(before + text, /*add_bos=*/false);
  const auto head = encode(before, /*add_bos=*/false);
  auto tail = encode_text(text, /*add_bos=*/false, SegmentStart::kContinuation);
  PATHVLM_CHECK(whole.size() == head.size() + tail.size() && std::equal(head.begin(), head.end(), whole.begin()) &&
                    std::equal(tail.begin(), tail.end(), whole.begin() + head.size()),
                "tokenizer '", path_, "': the tokens of \"", before, text, "\" do not split where \"", text,
                "\" starts, so its tokens would differ from the whole text's");
  return tail;
}

void BpeTokenizer::encode_segment(const std::string& segment, SegmentStart start, std::vector<int64_t>& ids) const {
  if (alphabet_ == Alphabet::kCharacters) {
    if (!metaspace_) return encode_word(segment, ids);
    for (const auto& piece : metaspace_->split(segment, start)) encode_word(piece, ids);
    return;
  }
  std::u32string text = utf8_to_utf32(segment);
  if (prefix_space_ == PrefixSpace::kSegment && start != SegmentStart::kContinuation && text[0] != U' ')
    text.insert(text.begin(), U' ');
  for (auto& piece : split_pre_tokens(text, split_)) {
    if (prefix_space_ == PrefixSpace::kPiece && piece[0] != U' ') piece.insert(piece.begin(), U' ');
    encode_word(utf32_to_utf8(piece), ids);
  }
}

void BpeTokenizer::encode_word(const std::string& word, std::vector<int64_t>& ids) const {
  {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    auto it = cache_.find(word);
    if (it != cache_.end()) {
      ids.insert(ids.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> word_ids;
  if (ignore_merges_) {
    std::string token;
    if (alphabet_ == Alphabet::kCharacters) {
      token = word;
    } else {
      for (char b : word) append_utf8(token, byte_stand_ins()[static_cast<uint8_t>(b)]);
    }
    auto it = vocab_.find(token);
    if (it != vocab_.end()) word_ids.push_back(it->second);
  }
  if (word_ids.empty()) word_ids = merge(first_symbols(word));
  ids.insert(ids.end(), word_ids.begin(), word_ids.end());
  if (word.size() > kCachedWordBytes) return;
  std::lock_guard<std::mutex> lock(cache_mutex_);
  if (cache_.size() < kCacheCapacity) cache_.emplace(word, std::move(word_ids));
}

std::vector<int32_t> BpeTokenizer::first_symbols(const std::string& word) const {
  std::vector<int32_t> ids;
  if (alphabet_ == Alphabet::kByteLevel) {
    for (char b : word) ids.push_back(byte_ids_[static_cast<uint8_t>(b)]);
    return ids;
  }
  // As in the library, an unknown character's <unk> waits until the next character found in the vocabulary (or the
  // end): byte-fallback tokens go before it, and with fuse_unk the unknown characters around them share it.
  bool unk_waiting = false;
  for (size_t pos = 0; pos < word.size();) {
    const size_t length = utf8_sequence_length(static_cast<uint8_t>(word[pos]));
    const std::string character = word.substr(pos, length);
    pos += length;
    auto it = vocab_.find(character);
    if (it != vocab_.end()) {
      if (unk_waiting) ids.push_back(unk_id_), unk_waiting = false;
      ids.push_back(it->second);
      continue;
    }
    // Its bytes' <0xXX> tokens when there is one for every byte, else the unknown token.
    const bool as_bytes = byte_fallback_ && std::all_of(character.begin(), character.end(), [&](char b) {
                            return fallback_ids_[static_cast<uint8_t>(b)] >= 0;
                          });
    if (as_bytes) {
      for (char b : character) ids.push_back(fallback_ids_[static_cast<uint8_t>(b)]);
      continue;
    }
    PATHVLM_CHECK(unk_id_ >= 0, where(), "the character '", character,
                  "' is not in the vocabulary, and the model has no unk_token to stand for it");
    if (unk_waiting && !fuse_unk_) ids.push_back(unk_id_);
    unk_waiting = true;
  }
  if (unk_waiting) ids.push_back(unk_id_);
  return ids;
}

std::vector<int32_t> BpeTokenizer::merge(const std::vector<int32_t>& first) const {
  struct Symbol {
    int32_t id, prev, next;  // id -1: merged into the symbol before it
  };
  struct Candidate {
    int32_t rank, pos, id;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const auto n = static_cast<int32_t>(first.size());
  std::vector<Symbol> symbols(n);
  for (int32_t i = 0; i < n; ++i) symbols[i] = {first[i], i - 1, i + 1 < n ? i + 1 : -1};
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> queue;
  auto consider = [&](int32_t left) {
    const int32_t right = symbols[left].next;
    if (right < 0) return;
    auto it = merges_.find(pair_key(symbols[left].id, symbols[right].id));
    if (it != merges_.end()) queue.push({it->second.rank, left, it->second.id});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i);
  while (!queue.empty()) {
    const Candidate top = queue.top();
    queue.pop();
    Symbol& left = symbols[top.pos];
    if (left.id < 0 || left.next < 0) continue;
    // A candidate goes stale when a neighbour changes; as in the library, it still holds when the pair now there
    // merges into the same token.
    auto it = merges_.find(pair_key(left.id, symbols[left.next].id));
    if (it == merges_.end() || it->second.id != top.id) continue;
    Symbol& right = symbols[left.next];
    left.id = top.id;
    left.next = right.next;
    right.id = -1;
    if (left.next >= 0) symbols[left.next].prev = top.pos;
    if (left.prev >= 0) consider(left.prev);
    consider(top.pos);
  }
  std::vector<int32_t> ids;
  for (int32_t i = 0; i >= 0 && i < n; i = symbols[i].next) ids.push_back(symbols[i].id);
  return ids;
}

void BpeTokenizer::check_id(int64_t id) const {
  PATHVLM_CHECK(id >= 0 && id < vocab_size(), where(), "id ", id, " is out of range (vocabulary size ", vocab_size(),
                ")");
  PATHVLM_CHECK(kinds_[id] != Kind::kUnassigned, where(), "id ", id, " is no token (the file gives it none)");
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  if (alphabet_ == Alphabet::kCharacters) {
    std::vector<std::string> tokens;
    for (const auto id : ids) {
      check_id(id);
      if (!(skip_special && kinds_[id] == Kind::kSpecial)) tokens.push_back(pieces_[id]);
    }
    std::string text = decoder_.decode(std::move(tokens));
    return clean_up_ ? clean_up_tokenization(std::move(text)) : text;
  }
  std::string bytes;
  for (const auto id : ids) {
    check_id(id);
    if (skip_special && kinds_[id] == Kind::kSpecial) continue;
    bytes += piece_bytes_[id];
  }
  std::string text = from_utf8_lossy(bytes);
  return clean_up_ ? clean_up_tokenization(std::move(text)) : text;
}

std::string BpeTokenizer::id_to_piece(int64_t id) const {
  check_id(id);
  return pieces_[id];
}

bool BpeTokenizer::is_special(int64_t id) const {
  return id >= 0 && id < vocab_size() && kinds_[id] == Kind::kSpecial;
}

void BpeTokenizer::save_hf(const std::string& dir) const {
  std::error_code ec;
  fs::create_directories(dir, ec);
  PATHVLM_CHECK(!ec, "cannot create tokenizer directory '", dir, "': ", ec.message());
  const fs::path from = fs::path(path_).parent_path();
  for (const char* name : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path source = name == std::string("tokenizer.json") ? fs::path(path_) : from / name;
    const fs::path target = fs::path(dir) / name;
    if (!fs::exists(source) || (fs::exists(target) && fs::equivalent(source, target))) continue;
    fs::copy_file(source, target, fs::copy_options::overwrite_existing, ec);
    PATHVLM_CHECK(!ec, "cannot copy '", source.string(), "' to '", target.string(), "': ", ec.message());
  }
}

}  // namespace pathvlm::text
