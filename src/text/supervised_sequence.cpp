#include "text/supervised_sequence.h"

#include <algorithm>

#include "core/error.h"
#include "text/tokenizer.h"

namespace pathvlm::text {

int64_t SupervisedSequence::images() const { return std::count(input_ids.begin(), input_ids.end(), kImageToken); }

int64_t SupervisedSequence::supervised_tokens() const {
  return static_cast<int64_t>(labels.size()) - std::count(labels.begin(), labels.end(), kIgnoreIndex);
}

int64_t SupervisedSequence::positions(int64_t image_tokens) const {
  return static_cast<int64_t>(input_ids.size()) + images() * (image_tokens - 1);
}

namespace {

// Appends tokens with their labels; `run` is the text encoded since the last special token or image.
class SequenceBuilder {
 public:
  explicit SequenceBuilder(const Tokenizer& tokenizer) : tokenizer_(tokenizer) {}

  void special(int64_t id, bool supervised) {
    // The BOS the tokenizer puts first, and an image (LLaVA tokenizes the text around it apart), start a text of
    // their own; any other special token is written in the text, which goes on after it.
    in_text_special_ = id != kImageToken && !sequence_.input_ids.empty();
    push(id, supervised);
    run_.clear();
  }

  void text(const std::string& piece, bool supervised, size_t index) {
    size_t at = 0;
    const AddedToken* special = tokenizer_.special_tokens().find(piece, 0, at);
    PATHVLM_CHECK(special == nullptr, "prompt piece ", index, " holds the special-token string '",
                  special ? special->content : "", "' (special tokens are pieces of their own): \"", piece, "\"");
    std::vector<int64_t> ids;
    if (run_.empty()) {
      ids = in_text_special_ ? tokenizer_.encode_after_special(piece) : tokenizer_.encode(piece, /*add_bos=*/false);
    } else {
      // A continuation: see "How text pieces join" in the header.
      try {
        ids = tokenizer_.encode_continuation(run_, piece);
      } catch (const Error& e) {
        throw Error(str("prompt piece ", index, ": ", e.what()));
      }
    }
    for (const auto id : ids) push(id, supervised);
    run_ += piece;
  }

  SupervisedSequence finish() { return std::move(sequence_); }

 private:
  void push(int64_t id, bool supervised) {
    sequence_.input_ids.push_back(id);
    sequence_.labels.push_back(supervised ? id : kIgnoreIndex);
  }

  const Tokenizer& tokenizer_;
  std::string run_;
  bool in_text_special_ = false;  // the last token is a special token written in the text
  SupervisedSequence sequence_;
};

}  // namespace

int64_t find_special_token(const std::string& token, const Tokenizer& tokenizer) {
  return tokenizer.special_tokens().id_of(token);
}

int64_t special_token_id(const std::string& token, const Tokenizer& tokenizer) {
  const auto id = find_special_token(token, tokenizer);
  PATHVLM_CHECK(id >= 0, "the tokenizer '", tokenizer.path(), "' has no special token '", token,
                "' (the conversation template is for another model family)");
  return id;
}

SupervisedSequence tokenize_pieces(const std::vector<Piece>& pieces, const Tokenizer& tokenizer) {
  SequenceBuilder builder(tokenizer);
  // A marker the tokenizer has as a special token is one; otherwise it is text.
  const auto as_text = [&](const Piece& piece) {
    return piece.kind == Piece::Kind::text ||
           (piece.kind == Piece::Kind::marker && find_special_token(piece.text, tokenizer) < 0);
  };
  for (size_t i = 0; i < pieces.size(); ++i) {
    const auto& piece = pieces[i];
    if (as_text(piece)) {
      // Consecutive text pieces of one supervision are one piece.
      std::string text = piece.text;
      size_t last = i;
      while (last + 1 < pieces.size() && as_text(pieces[last + 1]) && pieces[last + 1].supervised == piece.supervised)
        text += pieces[++last].text;
      if (!text.empty()) builder.text(text, piece.supervised, i);
      i = last;
      continue;
    }
    switch (piece.kind) {
      case Piece::Kind::bos:
        if (tokenizer.bos_id() >= 0) builder.special(tokenizer.bos_id(), piece.supervised);
        break;
      case Piece::Kind::eos: builder.special(tokenizer.eos_id(), piece.supervised); break;
      case Piece::Kind::special:
      case Piece::Kind::marker: builder.special(special_token_id(piece.text, tokenizer), piece.supervised); break;
      case Piece::Kind::image:
        PATHVLM_CHECK(!piece.supervised, "prompt piece ", i, ": an image cannot be supervised");
        builder.special(kImageToken, false);
        break;
      case Piece::Kind::text: break;  // above
    }
  }
  return builder.finish();
}

std::string join_pieces(const std::vector<Piece>& pieces, const Tokenizer& tokenizer) {
  std::string prompt;
  for (const auto& piece : pieces) {
    switch (piece.kind) {
      case Piece::Kind::bos:
        if (tokenizer.bos_id() >= 0) prompt += tokenizer.id_to_piece(tokenizer.bos_id());
        break;
      case Piece::Kind::eos: prompt += tokenizer.id_to_piece(tokenizer.eos_id()); break;
      case Piece::Kind::image: prompt += kImagePlaceholder; break;
      case Piece::Kind::special:
      case Piece::Kind::marker:
      case Piece::Kind::text: prompt += piece.text; break;
    }
  }
  return prompt;
}

}  // namespace pathvlm::text
