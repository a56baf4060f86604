// A supervised token sequence built from pieces in one tokenization pass: the labels come from the pieces'
// supervision flags as their tokens are appended, never from re-tokenizing fragments of a prompt (the source of
// LLaVA's "tokenization mismatch" bug, where whole samples silently train with zero loss).
//
//   std::vector<text::Piece> pieces = {text::Piece::bos(), text::Piece::of_text("USER: Hi ASSISTANT:"),
//                                      text::Piece::of_text(" Hello", /*supervised=*/true),
//                                      text::Piece::eos(/*supervised=*/true)};
//   text::SupervisedSequence seq = text::tokenize_pieces(pieces, tokenizer);
//   seq.input_ids;   // {1, ..., 15043, 2}       (text::kImageToken where an image goes)
//   seq.labels;      // {-100, ..., 15043, 2}    (text::kIgnoreIndex where not supervised)
//
// Labels are aligned with input_ids (labels[i] is input_ids[i] or kIgnoreIndex), Hugging Face's and LLaVA's
// convention: the loss shifts them (logits at i predict labels[i + 1]). data::PackedSequences hands out labels
// already shifted; the two are not interchangeable.
//
// How text pieces join. The text is cut at images (LLaVA's tokenizer_image_token encodes the chunks between images
// separately, each a text of its own) and at special tokens: the run after one written in the text is encoded as
// such (Tokenizer::encode_after_special; a legacy LlamaTokenizer gives it SentencePiece's dummy-prefix space as to
// a text of its own, a non-legacy one no prefix). Within one such run, consecutive text
// pieces of the same supervision are concatenated before encoding; where the supervision changes, the new piece
// must start with a space that follows a non-space (the templates cut only there: "ASSISTANT:" | " reply"), and
// it is encoded without that space, the dummy prefix standing in for it (Tokenizer::encode_continuation). LLaMA's
// SentencePiece model (BPE, split_by_whitespace) cuts its input into words before every run of spaces and merges
// pieces only within a word, so the ids equal those of encoding the whole run at once: the result is the prompt
// string's tokenization (checked against python sentencepiece in tests/text/conversation_test.cpp). A byte-level
// BPE tokenizer (tokenizer.json) has no dummy prefix and its pre-tokenizer also cuts before " word", so there a
// continuation is encoded with its space. Any other cut throws. Text pieces may not hold the tokenizer's
// special-token strings ("<s>", "</s>", "<|im_start|>"): special tokens are pieces of their own, so a span never
// depends on how a string inside the text would be read.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/special_ids.h"

namespace pathvlm::text {

class Tokenizer;

// One piece of a prompt: text, the tokenizer's BOS (none where it has no BOS, as Qwen's) or EOS, a special token
// named by its string (a chat marker: "<|im_start|>", "<|eot_id|>"), a marker that is a special token only in some
// of a family's tokenizers (Mistral's "[INST]": v0.3's, not v0.1's; text where it is not one), or one image.
struct Piece {
  enum class Kind { text, bos, eos, special, marker, image };
  Kind kind = Kind::text;
  std::string text;         // Kind::text: the text; Kind::special, Kind::marker: the token's string
  bool supervised = false;  // images are never supervised

  static Piece of_text(std::string text, bool supervised = false) { return {Kind::text, std::move(text), supervised}; }
  static Piece bos() { return {Kind::bos, "", false}; }
  static Piece eos(bool supervised) { return {Kind::eos, "", supervised}; }
  static Piece special(std::string token, bool supervised = false) {
    return {Kind::special, std::move(token), supervised};
  }
  static Piece marker(std::string token) { return {Kind::marker, std::move(token), false}; }
  static Piece image() { return {Kind::image, "", false}; }
};

struct SupervisedSequence {
  std::vector<int64_t> input_ids;  // vocabulary ids, kImageToken for each image
  std::vector<int64_t> labels;     // input_ids[i] where supervised, kIgnoreIndex elsewhere; same length

  int64_t images() const;
  int64_t supervised_tokens() const;
  // Positions the model sees once each image is expanded into `image_tokens` feature rows.
  int64_t positions(int64_t image_tokens) const;
};

// Tokenizes `pieces` in order (see above for how text pieces join). Throws naming the piece when a text piece
// holds a special-token string, a supervision change is not at a token boundary, or the tokenizer has no special
// token a piece names.
SupervisedSequence tokenize_pieces(const std::vector<Piece>& pieces, const Tokenizer& tokenizer);

// The id of the special token whose string is `token` ("<|im_end|>"); throws naming the tokenizer when it has none.
int64_t special_token_id(const std::string& token, const Tokenizer& tokenizer);
// The same, -1 when the tokenizer has none.
int64_t find_special_token(const std::string& token, const Tokenizer& tokenizer);

// The prompt string the pieces spell: special tokens as their strings ("<s>", "</s>"), images as "<image>".
// Without its leading "<s>" (LLaVA's prompt strings leave the BOS to the tokenizer), tokenizing it the way LLaVA
// does (split at "<image>", each chunk encoded by LlamaTokenizer, one BOS kept) gives tokenize_pieces' input_ids.
std::string join_pieces(const std::vector<Piece>& pieces, const Tokenizer& tokenizer);

}  // namespace pathvlm::text
