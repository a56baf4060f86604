// The steps of a Hugging Face tokenizer.json around its BPE model that text::BpeTokenizer runs as the tokenizers
// library does (tests/text/bpe_tokenizer_test.cpp checks them against the real library):
//   - TextNormalizer, the `normalizer`: NFC, NFD, StripAccents, Lowercase, Prepend, Replace with a String pattern,
//     alone or in a Sequence (Qwen's NFC; LLaMA-2's and Mistral v0.1's Prepend("▁") then Replace(" ", "▁"); Yi's and
//     Gemma's Replace; CONCH's NFD, StripAccents, Lowercase). StripAccents removes every mark (general category M*,
//     the library's is_combining_mark), Lowercase maps each character on its own (Rust's char::to_lowercase: "İ"
//     becomes "i\u0307", "Σ" always "σ").
//   - Metaspace, the `pre_tokenizer` of SentencePiece-style files that have no such normalizer (Mistral v0.3,
//     transformers' conversion with legacy false): spaces become "▁", a "▁" goes before the text (prepend_scheme
//     always / first / never), and with `split` the text is cut before each "▁".
//   - TokenDecoder, the `decoder` of SentencePiece-style files: Replace, ByteFallback, Fuse, Strip, Metaspace,
//     alone or in a Sequence.
// Anything else is refused, the error naming the file and the step.
//
//   TextNormalizer normalizer(j["normalizer"], "tokenizer 'llama2/tokenizer.json': ");
//   normalizer.apply("Hello world", SegmentStart::kText);     // "▁Hello▁world"
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

namespace pathvlm::text {

// SentencePiece's word-boundary mark, U+2581 "▁": a space inside its pieces, and Metaspace's default replacement.
inline const std::string kSentencePieceSpace = "\u2581";

// Where a run of text between added tokens sits, for the steps that put something before text.
enum class SegmentStart {
  kText,          // it opens the text: every prefix applies
  kAfterToken,    // it follows an added token: the prefixes applied to every run (Prepend, Metaspace "always")
  kContinuation,  // it continues text encoded before (Tokenizer::encode_continuation): no prefix
};

class TextNormalizer {
 public:
  TextNormalizer() = default;  // no normalizer
  // `normalizer`: the tokenizer.json's `normalizer` (null: none); `where` begins every error.
  TextNormalizer(const nlohmann::json& normalizer, const std::string& where);

  std::string apply(const std::string& text, SegmentStart start) const;

 private:
  enum class Kind { kNfc, kNfd, kStripAccents, kLowercase, kPrepend, kReplace };
  struct Step {
    Kind kind;
    std::string from, to;  // kPrepend: `to` goes before non-empty text; kReplace: every `from` becomes `to`
  };
  void read(const nlohmann::json& normalizer, const std::string& where);

  std::vector<Step> steps_;
};

class Metaspace {
 public:
  // `pre_tokenizer`: a Metaspace pre_tokenizer (prepend_scheme, or the older add_prefix_space; split).
  Metaspace(const nlohmann::json& pre_tokenizer, const std::string& where);

  // The pre-tokens of one normalised run of text.
  std::vector<std::string> split(const std::string& text, SegmentStart start) const;

 private:
  enum class Prepend { kAlways, kFirst, kNever };
  std::string replacement_;
  Prepend prepend_ = Prepend::kAlways;
  bool split_ = true;
};

class TokenDecoder {
 public:
  TokenDecoder() = default;  // tokens joined as they are
  TokenDecoder(const nlohmann::json& decoder, const std::string& where);

  // The text of `tokens` (as the vocabulary stores them, special tokens left out or kept by the caller).
  std::string decode(std::vector<std::string> tokens) const;

 private:
  enum class Kind { kReplace, kByteFallback, kFuse, kStrip, kMetaspace };
  struct Step {
    Kind kind;
    std::string from, to;        // kReplace: every `from` becomes `to`; kStrip and kMetaspace: `from` is the character
    size_t start = 0, stop = 0;  // kStrip: at most this many `from` taken off each token's start and end
    bool prepends = true;        // kMetaspace: its pre-tokenizer put a "▁" before the text (first token loses its "▁")
  };
  void read(const nlohmann::json& decoder, const std::string& where);

  std::vector<Step> steps_;
};

}  // namespace pathvlm::text
