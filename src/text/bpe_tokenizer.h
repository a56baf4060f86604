// Hugging Face byte-level BPE tokenizers (LLaMA-3 / 3.1, Qwen2 / 2.5 / 3, GPT-2 style), read from tokenizer.json,
// giving exactly the ids of the Hugging Face `tokenizers` library (tests/text/bpe_tokenizer_test.cpp checks it
// against the real library on LLaMA-3's and Qwen3's files).
//
//   text::BpeTokenizer tok("Meta-Llama-3-8B/tokenizer.json");
//   auto ids = tok.encode("Hello world");        // {128000, 9906, 1917}
//   auto back = tok.decode(ids);                 // "Hello world"
//
// What is read, and the rules (anything else is refused, naming the file and the thing):
//   - model: BPE with merges "a b" or ["a", "b"], ignore_merges (a pre-token that is itself a token maps straight to
//     its id), no dropout, no byte fallback, no subword prefix or word suffix. A pair is merged lowest rank first,
//     leftmost first among equal ranks.
//   - added_tokens: matched in the text before anything else, the longest at the earliest position; those with
//     `normalized` after normalisation, in the text between the others. lstrip, rstrip and single_word are refused.
//   - normalizer: none or NFC (alone or in a Sequence).
//   - pre_tokenizer: ByteLevel (GPT-2's regex when use_regex, add_prefix_space), or Sequence[Split(regex, Isolated),
//     ByteLevel(use_regex false)] with LLaMA-3's, Qwen2/3's or GPT-2's regex: each is recognised by its exact
//     text and matched by hand (text/bpe_tokenizer.cpp), any other regex refused.
//   - decoder: ByteLevel. post_processor: none, ByteLevel, TemplateProcessing or a Sequence of them, all ignored:
//     encode(text, add_bos) adds BOS itself (transformers adds it through TemplateProcessing; the ids agree).
//   - tokenizer_config.json beside it (optional): bos_token, eos_token (a string, {"content": ...} or null: no BOS)
//     and clean_up_tokenization_spaces (transformers' clean-up after decode; LLaMA-3 sets it). Without the file,
//     or without eos_token in it, EOS is the added token <|endoftext|> or <|end_of_text|>, and there is no BOS.
// decode() joins the tokens' bytes as the library's ByteLevel decoder does (a token every character of which is a
// byte's stand-in gives those bytes, any other its UTF-8, added tokens included) and replaces invalid UTF-8 as
// Rust's String::from_utf8_lossy does (one U+FFFD per maximal invalid subpart).
//
// Thread-safe: every method is const (a mutex guards the cache of words already merged).
#pragma once
#include <bitset>
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/tokenizer.h"

namespace pathvlm::text {

class BpeTokenizer final : public Tokenizer {
 public:
  // `tokenizer_json`: the tokenizer.json file; tokenizer_config.json beside it (optional) gives bos_token, eos_token,
  // pad_token and clean_up_tokenization_spaces. Errors name the file and the problem.
  explicit BpeTokenizer(const std::string& tokenizer_json);

  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const override;
  // No dummy prefix here: `text` is encoded as it is, after checking that encode(before + text) splits there
  // (a pre-token or merge across the cut would give other ids than the whole run's).
  std::vector<int64_t> encode_continuation(const std::string& before, const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  std::string id_to_piece(int64_t id) const override;

  int64_t bos_id() const override { return bos_id_; }
  int64_t eos_id() const override { return eos_id_; }
  // tokenizer_config.json's pad_token (Qwen's <|endoftext|>); -1 when it names none (LLaMA-3).
  int64_t pad_id() const { return pad_id_; }
  // The largest id + 1, over the model's vocabulary and the added tokens.
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  // An added token marked `special` (LLaMA-3's <|begin_of_text|>, Qwen's <|im_start|>; not Qwen3's <think>).
  bool is_special(int64_t id) const override;
  const std::vector<std::string>& special_strings() const override { return special_strings_; }

  const std::string& path() const override { return path_; }
  // Copies tokenizer.json and, where they are beside it, tokenizer_config.json and special_tokens_map.json.
  void save_hf(const std::string& dir) const override;

  enum class SplitPattern { kNone, kGpt2, kLlama3, kQwen2 };

 private:
  struct AddedToken {
    std::string content;
    int32_t id;
  };
  // Added tokens matched in one pass, longest first; `first` marks their first bytes (a quick test per position).
  struct AddedSet {
    std::vector<AddedToken> tokens;
    std::bitset<256> first;
  };
  struct Merge {
    int32_t rank, id;
  };
  enum class Kind : uint8_t { kUnassigned, kModel, kAdded, kSpecial };
  enum class PrefixSpace { kNone, kSegment, kPiece };

  void read_tokenizer_json(const nlohmann::json& j);
  void read_model(const nlohmann::json& model);
  void read_added_tokens(const nlohmann::json& added);
  void read_normalizer(const nlohmann::json& normalizer);
  void read_pre_tokenizer(const nlohmann::json& pre_tokenizer);
  void read_tokenizer_config();
  // The id of an added token or, failing that, of a model token; -1 when there is none.
  int32_t token_id(const std::string& content) const;
  // Calls on_text for the text between the added tokens of `set` in `text`, appends the added tokens' ids.
  void cut_added(const std::string& text, const AddedSet& set, std::vector<int64_t>& ids,
                 const std::function<void(const std::string&)>& on_text) const;
  // Appends the ids of normalised text that holds no added token.
  void encode_segment(const std::string& segment, std::vector<int64_t>& ids) const;
  // Appends the ids of one pre-token (UTF-8).
  void encode_word(const std::string& word, std::vector<int64_t>& ids) const;
  std::vector<int32_t> merge_bytes(const std::string& word) const;
  void check_id(int64_t id) const;
  std::string where() const { return "tokenizer '" + path_ + "': "; }

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;  // the model's token -> id
  std::unordered_map<uint64_t, Merge> merges_;     // (left id << 32 | right id) -> rank, merged id
  int32_t byte_ids_[256];                          // the id of each byte's one-character token
  std::vector<std::string> pieces_;                // id -> token as stored
  std::vector<std::string> piece_bytes_;           // id -> the bytes the ByteLevel decoder makes of it
  std::vector<Kind> kinds_;                        // id -> what it is
  AddedSet raw_added_, normalized_added_;          // matched before / after normalisation
  bool nfc_ = false;
  bool ignore_merges_ = false;
  PrefixSpace prefix_space_ = PrefixSpace::kNone;  // ByteLevel's add_prefix_space: before or after the split
  SplitPattern split_ = SplitPattern::kNone;
  bool clean_up_ = false;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  std::vector<std::string> special_strings_;  // the strings of the tokens marked special, by id

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;  // word (UTF-8) -> its ids
};

// transformers' clean_up_tokenization: " ." -> "." and the like, the spaces its old tokenizers wrote around
// punctuation and English contractions; decode() applies it when tokenizer_config.json sets
// clean_up_tokenization_spaces.
std::string clean_up_tokenization(std::string text);

// The pieces a pre-tokenisation regex cuts `text` into (the regexes named in BpeTokenizer's rules).
std::vector<std::u32string> split_pre_tokens(const std::u32string& text, BpeTokenizer::SplitPattern pattern);

}  // namespace pathvlm::text
