// The LLaMA / Vicuna tokenizer: a SentencePiece `tokenizer.model` with Hugging Face `LlamaTokenizer`'s rules
// (the slow tokenizer with legacy = true, its default when tokenizer_config.json has no `legacy` key):
//   - encode() adds BOS (<s>) and no EOS; <unk>, <s>, </s> are the model's ids (0, 1, 2 in LLaMA).
//   - The strings "<unk>", "<s>", "</s>" written in the text become their ids, and nothing around them is
//     stripped. Legacy rule: every run of text between them is encoded on its own, so it gets SentencePiece's
//     dummy-prefix space ("Hello <s>." -> <s> ▁Hello ▁ <s> ▁.), exactly as a text of its own would.
//   - decode() is SentencePiece's decode (the dummy-prefix space of the first piece is dropped: generated ids
//     ▁Hello ▁world give "Hello world"). `skip_special` drops <unk>, <s>, </s>; otherwise they are written as
//     their strings, with a space before one that follows text ("<s> Hello</s>"), as LlamaTokenizer writes them.
//
//   text::SentencePieceTokenizer tok(text::locate_tokenizer("vicuna-7b-v1.5/"));   // its tokenizer.model
//   auto ids = tok.encode("Hello world");          // {1, 15043, 3186}
//   auto back = tok.decode(ids);                   // "Hello world"
//
// Thread-safe: encode()/decode() are const.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/tokenizer.h"

namespace pathvlm::text {

class SentencePieceBackend;

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `model_file`: a SentencePiece model (tokenizer.model) with unknown, BOS and EOS pieces. Errors name the file.
  explicit SentencePieceTokenizer(const std::string& model_file);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept;
  SentencePieceTokenizer& operator=(SentencePieceTokenizer&&) noexcept;

  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const override;
  // SentencePiece gives every text run its dummy-prefix space: `text` must start with a space after a non-space,
  // and is encoded without that space (the dummy prefix stands for it).
  std::vector<int64_t> encode_continuation(const std::string& before, const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  // The piece of one id as the model stores it ("▁Hello", "<0x0A>", "<s>").
  std::string id_to_piece(int64_t id) const override;

  int64_t bos_id() const override;
  int64_t eos_id() const override;
  int64_t unk_id() const;
  int64_t vocab_size() const override;
  // <unk>, <s> and </s>.
  bool is_special(int64_t id) const override;
  const std::vector<std::string>& special_strings() const override { return special_strings_; }
  const std::string& path() const override { return path_; }

  // Writes what transformers' LlamaTokenizer loads with the same behaviour: tokenizer.model (a copy),
  // tokenizer_config.json (legacy = true), special_tokens_map.json, and for a byte-fallback BPE model (LLaMA-2's
  // kind) the tokenizer.json transformers 5 reads first (text/sentencepiece_json.h).
  void save_hf(const std::string& dir) const override;

 private:
  void check_id(int64_t id) const;

  std::string path_;
  std::unique_ptr<SentencePieceBackend> sp_;
  std::vector<std::pair<std::string, int64_t>> specials_;  // (string, id) of <unk>, <s>, </s>, longest first
  std::vector<std::string> special_strings_;               // their strings
};

// Trains a small SentencePiece model on `texts` and writes it to `model_file` (tests and demo corpora; real
// models ship their tokenizer). LLaMA's layout: BPE, byte fallback, digits split, whitespace kept as written,
// <unk>/<s>/</s> = 0/1/2, no padding piece; exactly `vocab_size` pieces. Deterministic: the same texts give
// the same file.
void train_sentencepiece(const std::vector<std::string>& texts, int vocab_size, const std::string& model_file);

}  // namespace pathvlm::text
