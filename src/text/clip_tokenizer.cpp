// CLIP byte-level BPE. Text is handled as UTF-32 code points through cleaning and pre-tokenisation (the
// regex classes \p{L}, \p{N}, \s come from generated tables), then each pre-token's UTF-8 bytes are mapped
// to printable stand-in characters and merged by BPE rank.
#include "text/clip_tokenizer.h"

#include <nlohmann/json.hpp>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "core/utf8.h"
#include "text/fix_text.h"
#include "text/byte_level.h"
#include "text/char_properties.h"
#include "text/html_unescape.h"
#include "text/unicode_ranges.h"

namespace pathvlm::text {
namespace {

#include "text/clip_tokenizer_unicode.inc"

// Merges used by CLIP: 49152 - 256 - 2 (the vocab is 256 bytes + 256 word-end bytes + merges + 2 specials).
constexpr size_t kNumMerges = 49152 - 256 - 2;

bool is_letter(uint32_t cp) { return in_ranges(kLetterRanges, cp); }
bool is_number(uint32_t cp) { return in_ranges(kNumberRanges, cp); }
bool is_symbol(uint32_t cp) { return in_ranges(kSymbolRanges, cp); }
bool is_space(uint32_t cp) { return in_ranges(kSpaceRanges, cp); }
bool is_cased(uint32_t cp) { return in_ranges(kCasedRanges, cp); }
bool is_case_ignorable(uint32_t cp) { return in_ranges(kCaseIgnorableRanges, cp); }
// str.strip() also removes the information separators U+001C..U+001F, which regex's \s does not match.
bool is_strip_space(uint32_t cp) { return is_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

std::u32string decode_utf8(const std::string& s) { return utf8_to_utf32(s, "CLIP tokenizer: text"); }

// Python's str.lower(): each character's lower case, and the final-sigma rule for U+03A3.
std::u32string lower(const std::u32string& s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    const char32_t cp = s[i];
    if (cp == 0x3A3) {
      size_t j = i;
      while (j > 0 && is_case_ignorable(s[j - 1])) --j;
      bool final_sigma = j > 0 && is_cased(s[j - 1]);
      if (final_sigma) {
        size_t k = i + 1;
        while (k < s.size() && is_case_ignorable(s[k])) ++k;
        final_sigma = k == s.size() || !is_cased(s[k]);
      }
      out += final_sigma ? U'\u03C2' : U'\u03C3';
    } else {
      append_lowercase(out, cp);
    }
  }
  return out;
}

std::u32string collapse_whitespace(const std::u32string& s) {
  std::u32string out;
  for (size_t i = 0; i < s.size();) {
    if (is_space(s[i])) {
      while (i < s.size() && is_space(s[i])) ++i;
      out += U' ';
    } else {
      out += s[i++];
    }
  }
  return out;
}

std::u32string strip(const std::u32string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_strip_space(s[b])) ++b;
  while (e > b && is_strip_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Matches `pattern` at s[i...] ignoring case the way the regex module does for these ASCII patterns
// (the only non-ASCII character that folds onto one of their letters is U+017F long s).
bool matches_at(const std::u32string& s, size_t i, const char* pattern) {
  size_t n = std::strlen(pattern);
  if (i + n > s.size()) return false;
  for (size_t k = 0; k < n; ++k) {
    char32_t c = s[i + k], p = static_cast<char32_t>(pattern[k]);
    bool same = c == p || (p >= U'a' && p <= U'z' && c == p - 32) || (p == U's' && c == 0x17F);
    if (!same) return false;
  }
  return true;
}

// open_clip's cleaning: ftfy, html.unescape twice, whitespace runs collapsed and stripped, lower case.
std::u32string clean_code_points(const std::string& text) {
  auto s = html_unescape(html_unescape(fix_text(decode_utf8(text))));
  return lower(strip(collapse_whitespace(strip(s))));
}

// findall of <start_of_text>|<end_of_text>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+, IGNORECASE
std::vector<std::u32string> pre_tokenize(const std::u32string& s) {
  static const char* kFixed[] = {"<start_of_text>", "<end_of_text>", "'s", "'t", "'re", "'ve", "'m", "'ll", "'d"};
  std::vector<std::u32string> tokens;
  size_t i = 0;
  while (i < s.size()) {
    size_t len = 0;
    for (const char* fixed : kFixed) {
      if (matches_at(s, i, fixed)) {
        len = std::strlen(fixed);
        break;
      }
    }
    if (len == 0) {
      if (is_letter(s[i])) {
        while (i + len < s.size() && is_letter(s[i + len])) ++len;
      } else if (is_number(s[i])) {
        len = 1;
      } else if (is_symbol(s[i])) {
        while (i + len < s.size() && is_symbol(s[i + len])) ++len;
      }
    }
    if (len == 0) {  // whitespace (or U+0345, in no class): no match here
      ++i;
      continue;
    }
    tokens.push_back(s.substr(i, len));
    i += len;
  }
  return tokens;
}

// The bytes in the order CLIP's vocabulary lists them: by their stand-in characters.
std::vector<int> bytes_in_vocabulary_order() {
  std::vector<int> order(256);
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [](int a, int b) { return byte_stand_ins()[a] < byte_stand_ins()[b]; });
  return order;
}

std::string read_gzip(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  const int open_error = errno;
  PATHVLM_CHECK(f != nullptr, "CLIP vocab '", path, "': cannot open (", std::strerror(open_error), ")",
                open_error == ENOENT ? "; open_clip's bpe_simple_vocab_16e6.txt.gz is at "
                                       "https://github.com/mlfoundations/open_clip/raw/v3.3.0/src/open_clip/"
                                       "bpe_simple_vocab_16e6.txt.gz (scripts/demo.sh downloads it into demo/clip/ "
                                       "when ../shared/data has none)"
                                     : "");
  std::string data;
  char buf[1 << 16];
  int n;
  while ((n = gzread(f, buf, sizeof(buf))) > 0) data.append(buf, n);
  int err = 0;
  std::string message = n < 0 ? gzerror(f, &err) : "";
  gzclose(f);
  PATHVLM_CHECK(n == 0, "CLIP vocab '", path, "': not a readable gzip file (", message, ")");
  return data;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PATHVLM_CHECK(in, "CLIP vocab '", path, "': cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// An HF CLIPTokenizer directory needs both files; naming the one that is missing beats "not a gzip file".
void check_hf_directory(const std::filesystem::path& dir) {
  for (const char* name : {"vocab.json", "merges.txt"})
    PATHVLM_CHECK(std::filesystem::is_regular_file(dir / name), "CLIP tokenizer directory '", dir.string(), "' has no ",
                  name, " (an HF CLIPTokenizer directory holds vocab.json and merges.txt)");
}

}  // namespace

void ClipTokenizer::check_hf_vocab(const std::string& path) const {
  nlohmann::json vocab;
  try {
    vocab = nlohmann::json::parse(read_text(path));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("CLIP vocab '", path, "': not valid JSON (", e.what(), ")"));
  }
  PATHVLM_CHECK(vocab.is_object(), "CLIP vocab '", path, "': expected a JSON object of token -> id, got ",
                vocab.type_name());
  PATHVLM_CHECK(vocab.size() == encoder_.size(), "CLIP vocab '", path, "': has ", vocab.size(),
                " tokens, merges.txt beside it makes ", encoder_.size(), " (they do not belong together)");
  for (const auto& [token, id] : vocab.items()) {
    PATHVLM_CHECK(id.is_number_integer(), "CLIP vocab '", path, "': token '", token, "' has id ", id.dump(),
                  ", not an integer");
    // HF names the specials <|startoftext|> / <|endoftext|> (see save_hf).
    const std::string ours = token == "<|startoftext|>" ? "<start_of_text>"
                             : token == "<|endoftext|>" ? "<end_of_text>"
                                                        : token;
    auto it = encoder_.find(ours);
    PATHVLM_CHECK(it != encoder_.end(), "CLIP vocab '", path, "': token '", token,
                  "' is not made by merges.txt beside it (they do not belong together)");
    PATHVLM_CHECK(it->second == id.get<int64_t>(), "CLIP vocab '", path, "': token '", token, "' has id ", id.dump(),
                  ", merges.txt beside it gives it ", it->second, " (they do not belong together)");
  }
}

ClipTokenizer::ClipTokenizer(const std::string& vocab, int context_length) : context_(context_length) {
  PATHVLM_CHECK(context_length >= 2, "CLIP tokenizer: context length ", context_length,
                " is too short (sot and eot need 2)");
  // The gzip BPE file (line 1 a version header) or an HF directory's merges.txt (line 1 "#version: ...").
  const bool hf_directory = std::filesystem::is_directory(vocab);
  if (hf_directory) check_hf_directory(vocab);
  std::string where = hf_directory ? vocab + "/merges.txt" : vocab;
  std::string text = hf_directory ? read_text(where) : read_gzip(vocab);
  std::istringstream lines(text);
  std::string line;
  std::getline(lines, line);  // version header
  while (merges_.size() < kNumMerges && std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    auto space = line.find(' ');
    PATHVLM_CHECK(space != std::string::npos && space > 0 && space + 1 < line.size() &&
                      line.find(' ', space + 1) == std::string::npos,
                  "CLIP vocab '", where, "': line ", merges_.size() + 2, " is not a merge 'a b': '", line, "'");
    merges_.emplace_back(line.substr(0, space), line.substr(space + 1));
  }
  PATHVLM_CHECK(merges_.size() == kNumMerges, "CLIP vocab '", where, "': has ", merges_.size(),
                " merges, expected ", kNumMerges, " (is this the CLIP bpe_simple_vocab_16e6 file?)");

  const auto order = bytes_in_vocabulary_order();
  byte_to_unicode_.resize(256);
  for (int b = 0; b < 256; ++b) append_utf8(byte_to_unicode_[b], byte_stand_ins()[b]);
  int64_t id = 0;
  for (auto b : order) encoder_[byte_to_unicode_[b]] = id++;
  for (auto b : order) encoder_[byte_to_unicode_[b] + "</w>"] = id++;
  for (size_t r = 0; r < merges_.size(); ++r) {
    merge_rank_[merges_[r].first + " " + merges_[r].second] = static_cast<int>(r);
    encoder_[merges_[r].first + merges_[r].second] = id++;
  }
  encoder_["<start_of_text>"] = id++;
  encoder_["<end_of_text>"] = id++;
  PATHVLM_CHECK(id == kEndOfText + 1 && encoder_.size() == static_cast<size_t>(id), "CLIP vocab '", where,
                "': merges produce duplicate tokens (", encoder_.size(), " distinct of ", id, ")");
  if (hf_directory) check_hf_vocab(vocab + "/vocab.json");
}

std::string ClipTokenizer::clean(const std::string& text) { return utf32_to_utf8(clean_code_points(text)); }

std::vector<std::string> ClipTokenizer::bpe(const std::string& token) const {
  // Split into stand-in characters (each 1-2 UTF-8 bytes), marking the last as word end.
  std::vector<std::string> word;
  for (size_t i = 0; i < token.size();) {
    size_t n = (static_cast<unsigned char>(token[i]) & 0x80) ? 2 : 1;
    word.push_back(token.substr(i, n));
    i += n;
  }
  word.back() += "</w>";
  while (word.size() > 1) {
    int best = INT_MAX;
    size_t best_at = 0;
    for (size_t i = 0; i + 1 < word.size(); ++i) {
      auto it = merge_rank_.find(word[i] + " " + word[i + 1]);
      if (it != merge_rank_.end() && it->second < best) best = it->second, best_at = i;
    }
    if (best == INT_MAX) break;
    const std::string first = word[best_at], second = word[best_at + 1];
    std::vector<std::string> merged;
    for (size_t i = 0; i < word.size();) {
      if (i + 1 < word.size() && word[i] == first && word[i + 1] == second) {
        merged.push_back(first + second);
        i += 2;
      } else {
        merged.push_back(word[i++]);
      }
    }
    word = std::move(merged);
  }
  return word;
}

std::vector<int64_t> ClipTokenizer::tokenize(const std::string& text) const {
  std::vector<int64_t> ids;
  for (const auto& piece : pre_tokenize(clean_code_points(text))) {
    std::string utf8 = utf32_to_utf8(piece);
    if (utf8 == "<start_of_text>" || utf8 == "<end_of_text>") {
      ids.push_back(encoder_.at(utf8));
      continue;
    }
    std::string mapped;
    for (unsigned char b : utf8) mapped += byte_to_unicode_[b];
    for (const auto& symbol : bpe(mapped)) ids.push_back(encoder_.at(symbol));
  }
  return ids;
}

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  auto bpe_ids = tokenize(text);
  std::vector<int64_t> ids(context_, 0);
  ids[0] = kStartOfText;
  size_t n = std::min(bpe_ids.size(), static_cast<size_t>(context_ - 2));
  std::copy(bpe_ids.begin(), bpe_ids.begin() + n, ids.begin() + 1);
  ids[n + 1] = kEndOfText;
  return ids;
}

torch::Tensor ClipTokenizer::batch(const std::vector<std::string>& texts) const {
  auto out = torch::zeros({static_cast<int64_t>(texts.size()), context_}, torch::kInt64);
  auto* data = out.data_ptr<int64_t>();
  for (size_t i = 0; i < texts.size(); ++i) {
    auto ids = encode(texts[i]);
    std::copy(ids.begin(), ids.end(), data + i * context_);
  }
  return out;
}

void ClipTokenizer::save_hf(const std::string& dir) const {
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream out(dir + "/" + name, std::ios::binary);
    out << text;
    out.close();
    PATHVLM_CHECK(out, "CLIP tokenizer: cannot write '", dir, "/", name, "'");
  };
  nlohmann::json vocab = nlohmann::json::object();
  for (const auto& [token, id] : encoder_) {
    if (id == kStartOfText) vocab["<|startoftext|>"] = id;
    else if (id == kEndOfText) vocab["<|endoftext|>"] = id;
    else vocab[token] = id;
  }
  write("vocab.json", vocab.dump());
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : merges_) merges += a + " " + b + "\n";
  write("merges.txt", merges);
  nlohmann::json config = {{"tokenizer_class", "CLIPTokenizer"}, {"model_max_length", context_},
                           {"bos_token", "<|startoftext|>"},     {"eos_token", "<|endoftext|>"},
                           {"unk_token", "<|endoftext|>"},       {"pad_token", "<|endoftext|>"},
                           {"do_lower_case", true},              {"errors", "replace"}};
  write("tokenizer_config.json", config.dump(2));
  nlohmann::json special = {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"},
                            {"unk_token", "<|endoftext|>"}, {"pad_token", "<|endoftext|>"}};
  write("special_tokens_map.json", special.dump(2));
}

std::string clip_vocab_source(const std::string& vocab, const std::string& model_dir, const std::string& set_vocab) {
  if (!vocab.empty()) return vocab;
  namespace fs = std::filesystem;
  const fs::path dir = model_dir;
  std::string missing;
  for (const char* name : {"vocab.json", "merges.txt"})
    if (!model_dir.empty() && !fs::exists(dir / name)) missing += missing.empty() ? name : str(" nor ", name);
  PATHVLM_CHECK(!model_dir.empty() && fs::is_directory(dir) && missing.empty(),
                "the CLIP tokenizer is missing: ", set_vocab,
                " to bpe_simple_vocab_16e6.txt.gz or an HF tokenizer directory",
                model_dir.empty() ? "" : str(" ('", model_dir, "' has no ", missing, ")"));
  return model_dir;
}

}  // namespace pathvlm::text
