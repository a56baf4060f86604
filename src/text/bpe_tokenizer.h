// Hugging Face BPE tokenizers read from tokenizer.json, giving exactly the ids and decodes of the Hugging Face
// `tokenizers` library (tests/text/bpe_tokenizer_test.cpp checks it against the real library on LLaMA-3's, Qwen3's,
// LLaMA-2's and Yi's files and on a small one shaped as CONCH's): byte-level ones (LLaMA-3 / 3.1, Qwen2 / 2.5 / 3,
// GPT-2 style, CONCH) and SentencePiece-style ones (LLaMA-2, Mistral, Yi: what transformers 5 saves for them, with or
// without a tokenizer.model).
//
//   text::BpeTokenizer tok("Meta-Llama-3-8B/tokenizer.json");
//   auto ids = tok.encode("Hello world");        // {128000, 9906, 1917}
//   auto back = tok.decode(ids);                 // "Hello world"
//
// What is read, and the rules (anything else is refused, naming the file and the thing):
//   - model: BPE with merges "a b" or ["a", "b"], ignore_merges (a pre-token that is itself a token maps straight to
//     its id), no dropout, no subword prefix or word suffix. A pair is merged lowest rank first, leftmost first
//     among equal ranks. The first symbols of a pre-token are its bytes (byte-level) or its characters
//     (SentencePiece-style), a character the vocabulary lacks becoming its bytes' <0xXX> tokens (byte_fallback) or
//     unk_token (consecutive ones fused with fuse_unk).
//   - added_tokens: matched in the text before anything else, the longest at the earliest position; those with
//     `normalized` after normalisation, in the text between the others. lstrip, rstrip and single_word are refused.
//   - normalizer: NFC, NFD, StripAccents, Lowercase, Prepend, Replace, alone or in a Sequence
//     (text/tokenizer_json_steps.h).
//   - pre_tokenizer, byte-level: ByteLevel (GPT-2's regex when use_regex, add_prefix_space), or Sequence[Split(regex,
//     Isolated), ByteLevel(use_regex false)] with LLaMA-3's, Qwen2/3's or GPT-2's regex: each is recognised by its
//     exact text and matched by hand (text/bpe_tokenizer.cpp), any other regex refused. SentencePiece-style: none
//     (each run of text between added tokens is one pre-token) or Metaspace.
//   - decoder: ByteLevel for byte-level files; else Replace, ByteFallback, Fuse, Strip, Metaspace in a chain.
//     post_processor: none, ByteLevel, TemplateProcessing or a Sequence of them. encode(text, add_bos = true) gives
//     the ids of the library's encode(text, add_special_tokens=True): BOS first, and after the text the special
//     tokens TemplateProcessing's single template puts after it (CONCH's <end_of_text>; LLaMA's and Qwen's put
//     none); add_bos false gives neither, as add_special_tokens=False.
//   - tokenizer_config.json beside it (optional): bos_token, eos_token, pad_token (a string, {"content": ...} or
//     null: none), add_bos_token (false: encode adds no BOS, as Yi's) and clean_up_tokenization_spaces
//     (transformers' clean-up after decode; LLaMA-3 sets it). Without bos_token, BOS is the special token
//     TemplateProcessing puts first, if any; without eos_token, EOS is the last special token it puts after the
//     text, else the added token <|endoftext|>, <|end_of_text|> or </s>.
// decode() of byte-level files joins the tokens' bytes as the library's ByteLevel decoder does (a token every
// character of which is a byte's stand-in gives those bytes, any other its UTF-8, added tokens included) and replaces
// invalid UTF-8 as Rust's String::from_utf8_lossy does (one U+FFFD per maximal invalid subpart).
//
// Thread-safe: every method is const (a mutex guards the cache of words already merged).
#pragma once
#include <cstdint>
#include <functional>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "text/added_tokens.h"
#include "text/tokenizer.h"
#include "text/tokenizer_json_steps.h"

namespace pathvlm::text {

class BpeTokenizer final : public Tokenizer {
 public:
  // `tokenizer_json`: the tokenizer.json file; tokenizer_config.json beside it (optional) gives bos_token, eos_token,
  // pad_token and clean_up_tokenization_spaces. Errors name the file and the problem.
  explicit BpeTokenizer(const std::string& tokenizer_json);

  // `add_bos`: BOS before the text and the special tokens TemplateProcessing puts after it (the library's
  // add_special_tokens; see above).
  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const override;
  // `text` is encoded without the prefixes that open a text (Prepend, Metaspace's "▁", add_prefix_space), after
  // checking that encode(before + text) splits there (a pre-token or merge across the cut would give other ids).
  std::vector<int64_t> encode_continuation(const std::string& before, const std::string& text) const override;
  std::vector<int64_t> encode_after_special(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  std::string id_to_piece(int64_t id) const override;

  int64_t bos_id() const override { return bos_id_; }
  int64_t eos_id() const override { return eos_id_; }
  // tokenizer_config.json's pad_token (Qwen's <|endoftext|>); -1 when it names none (LLaMA-3).
  int64_t pad_id() const { return pad_id_; }
  // The model's unk_token (LLaMA-2's <unk>); -1 when it has none (byte-level files).
  int64_t unk_id() const { return unk_id_; }
  // The largest id + 1, over the model's vocabulary and the added tokens.
  int64_t vocab_size() const override { return static_cast<int64_t>(pieces_.size()); }
  // An added token marked `special` (LLaMA-3's <|begin_of_text|>, Qwen's <|im_start|>; not Qwen3's <think>).
  bool is_special(int64_t id) const override;
  const AddedTokens& special_tokens() const override { return special_tokens_; }

  const std::string& path() const override { return path_; }
  // Copies tokenizer.json and, where they are beside it, tokenizer_config.json and special_tokens_map.json.
  void save_hf(const std::string& dir) const override;

  enum class SplitPattern { kNone, kGpt2, kLlama3, kQwen2 };

 private:
  struct Merge {
    int32_t rank, id;
  };
  enum class Kind : uint8_t { kUnassigned, kModel, kAdded, kSpecial };
  // The first symbols of a pre-token: GPT-2's byte alphabet, or characters (SentencePiece-style).
  enum class Alphabet { kByteLevel, kCharacters };
  enum class PrefixSpace { kNone, kSegment, kPiece };

  void read_tokenizer_json(const nlohmann::json& j);
  void read_model(const nlohmann::json& model);
  void read_added_tokens(const nlohmann::json& added);
  void read_pre_tokenizer(const nlohmann::json& pre_tokenizer);
  void read_tokenizer_config(const nlohmann::json& post_processor);
  // The special tokens a TemplateProcessing post-processor's single template puts before and after the text.
  struct TemplateSpecials {
    std::vector<int64_t> before, after;
  };
  TemplateSpecials template_specials(const nlohmann::json& post_processor) const;
  // The id of an added token or, failing that, of a model token; -1 when there is none.
  int32_t token_id(const std::string& content) const;
  // `start`: where the text's first run sits (kText for a whole text).
  std::vector<int64_t> encode_text(const std::string& text, bool add_bos, SegmentStart start) const;
  // Appends the ids of normalised text that holds no added token.
  void encode_segment(const std::string& segment, SegmentStart start, std::vector<int64_t>& ids) const;
  // Appends the ids of one pre-token (UTF-8).
  void encode_word(const std::string& word, std::vector<int64_t>& ids) const;
  // The symbols a pre-token starts as, before any merge.
  std::vector<int32_t> first_symbols(const std::string& word) const;
  // `first` merged by rank, lowest first, leftmost first among equal ranks.
  std::vector<int32_t> merge(const std::vector<int32_t>& first) const;
  void check_id(int64_t id) const;
  std::string where() const { return "tokenizer '" + path_ + "': "; }

  std::string path_;
  std::unordered_map<std::string, int32_t> vocab_;  // the model's token -> id
  std::unordered_map<uint64_t, Merge> merges_;     // (left id << 32 | right id) -> rank, merged id
  Alphabet alphabet_ = Alphabet::kByteLevel;
  int32_t byte_ids_[256];                          // byte-level: the id of each byte's one-character token
  int32_t fallback_ids_[256];                      // byte_fallback: the id of each byte's <0xXX> token, or -1
  bool byte_fallback_ = false, fuse_unk_ = false;
  int32_t unk_id_ = -1;
  std::vector<std::string> pieces_;                // id -> token as stored
  std::vector<std::string> piece_bytes_;           // byte-level: id -> the bytes the ByteLevel decoder makes of it
  std::vector<Kind> kinds_;                        // id -> what it is
  AddedTokens raw_added_, normalized_added_;        // matched before / after normalisation
  TextNormalizer normalizer_;
  bool ignore_merges_ = false;
  PrefixSpace prefix_space_ = PrefixSpace::kNone;  // ByteLevel's add_prefix_space: before or after the split
  SplitPattern split_ = SplitPattern::kNone;
  std::optional<Metaspace> metaspace_;             // SentencePiece-style pre-tokenizer
  TokenDecoder decoder_;                           // SentencePiece-style decoder
  bool clean_up_ = false;
  int64_t bos_id_ = -1, eos_id_ = -1, pad_id_ = -1;
  bool add_bos_ = true;
  std::vector<int64_t> after_text_;           // what TemplateProcessing puts after the text (CONCH's <end_of_text>)
  AddedTokens special_tokens_;                // the tokens marked special

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
