// The LLaMA / Vicuna tokenizer: a SentencePiece `tokenizer.model` with Hugging Face `LlamaTokenizer`'s rules (the
// slow tokenizer LLaVA pins), legacy or not as tokenizer_config.json beside the model says (`legacy`; absent or
// null: legacy, LlamaTokenizer's default; vicuna-7b-v1.5 and LLaVA-1.5 say false):
//   - encode() adds BOS (<s>; not when tokenizer_config.json's add_bos_token is false) and no EOS; <unk>, <s>, </s>
//     are the model's ids (0, 1, 2 in LLaMA).
//   - Added tokens are cut out of the text before the model sees it: the special ones, <unk> and the model's
//     control pieces (<s>, </s>, Mistral v0.3's [INST] ...; transformers 5 adds these when it converts the model,
//     and Mistral's tokenizer_config.json lists them), and whatever tokenizer_config.json's added_tokens_decoder
//     lists: pieces of the model, or tokens after its last piece (llava-hf's <image> and <pad>), which extend
//     the vocabulary. Nothing around them is stripped. Legacy: every run of text between them is encoded on its
//     own, so it gets SentencePiece's dummy-prefix space ("Hello <s>." -> <s> ▁Hello ▁ <s> ▁.), exactly as a
//     text of its own would. Not legacy: only the text's start gets a "▁" (add_prefix_space), the runs after
//     added tokens none ("A</s>USER" -> ▁A </s> US ER), through the model without its dummy prefix, as
//     transformers encodes them.
//   - decode() is SentencePiece's decode (the dummy-prefix space of the first piece is dropped: generated ids
//     ▁Hello ▁world give "Hello world"). `skip_special` drops the special tokens; otherwise they are written as
//     their strings (added tokens that are not special always are), legacy with a space before one that follows
//     text ("<s> Hello</s>"), as LlamaTokenizer writes them.
//
//   text::SentencePieceTokenizer tok(text::locate_tokenizer("vicuna-7b-v1.5/"));   // its tokenizer.model
//   auto ids = tok.encode("Hello world");          // {1, 15043, 3186}
//   auto back = tok.decode(ids);                   // "Hello world"
//
// Thread-safe: encode()/decode() are const.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "text/added_tokens.h"
#include "text/tokenizer.h"

namespace pathvlm::text {

class SentencePieceBackend;

class SentencePieceTokenizer final : public Tokenizer {
 public:
  // `model_file`: a SentencePiece model (tokenizer.model) with unknown, BOS and EOS pieces. Errors name the file
  // (or the tokenizer_config.json beside it).
  explicit SentencePieceTokenizer(const std::string& model_file);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept;
  SentencePieceTokenizer& operator=(SentencePieceTokenizer&&) noexcept;

  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const override;
  // `text` must start with a space after a non-space (legacy: encoded without that space, the dummy prefix stands
  // for it).
  std::vector<int64_t> encode_continuation(const std::string& before, const std::string& text) const override;
  std::vector<int64_t> encode_after_special(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const override;
  // The piece of one id as the model stores it ("▁Hello", "<0x0A>", "<s>").
  std::string id_to_piece(int64_t id) const override;

  int64_t bos_id() const override;
  int64_t eos_id() const override;
  int64_t unk_id() const;
  int64_t vocab_size() const override;
  // <unk>, the control pieces (<s>, </s>, ...) and the added tokens tokenizer_config.json marks special.
  bool is_special(int64_t id) const override;
  const AddedTokens& special_tokens() const override { return special_tokens_; }
  const std::string& path() const override { return path_; }
  bool legacy() const { return legacy_; }

  // Writes what transformers' LlamaTokenizer loads with the same behaviour: tokenizer.model (a copy),
  // tokenizer_config.json (its `legacy`, the added tokens), special_tokens_map.json, and for a byte-fallback BPE
  // model (LLaMA-2's kind) the tokenizer.json transformers 5 reads first (tokenizer_json()).
  void save_hf(const std::string& dir) const override;
  // The tokenizer.json that tokenizes as this tokenizer (text/sentencepiece_json.h), "" for a model it would not
  // reproduce.
  std::string tokenizer_json() const;

 private:
  enum class Kind : uint8_t { kModel, kAdded, kSpecial };  // added: cut out of the text

  void check_id(int64_t id) const;
  // Makes `id` (whose piece is `content`) an added token, special or not; a special token stays special.
  void add_token(int64_t id, const std::string& content, bool special);
  // Adds tokenizer_config.json's added_tokens_decoder (of `config`, read from `where`).
  void read_added_tokens(const nlohmann::json& config, const std::string& where);
  bool is_added(int64_t id) const { return kinds_[id] != Kind::kModel; }
  // Not legacy: the ids of `text` (its "▁" already made spaces), added tokens included, each run of text between
  // them through encode_plain.
  std::vector<int64_t> encode_runs(const std::string& text) const;
  // Not legacy: one run of text through the model without its dummy prefix (a leading space kept as "▁").
  void encode_plain(const std::string& run, std::vector<int64_t>& ids) const;

  std::string path_;
  std::unique_ptr<SentencePieceBackend> sp_;
  bool legacy_ = true, add_bos_ = true, add_prefix_space_ = true;
  std::unique_ptr<SentencePieceBackend> plain_;  // not legacy: the model without its dummy prefix
  size_t unk_pieces_ = 0;                        // not legacy: the pieces plain_ makes of "<unk>"
  AddedTokens added_;                         // the tokens cut out of a text
  std::vector<Kind> kinds_;                   // by id
  std::vector<std::string> pieces_after_;     // the added tokens after the model's last piece, by id
  AddedTokens special_tokens_;
};

// Trains a small SentencePiece model on `texts` and writes it to `model_file` (tests and demo corpora; real
// models ship their tokenizer). LLaMA's layout: BPE, byte fallback, digits split, whitespace kept as written,
// <unk>/<s>/</s> = 0/1/2, then `control_symbols` (Mistral v0.3's kind: "[INST]", "[/INST]"), no padding piece;
// exactly `vocab_size` pieces. Deterministic: the same texts give the same file.
void train_sentencepiece(const std::vector<std::string>& texts, int vocab_size, const std::string& model_file,
                         const std::vector<std::string>& control_symbols = {});

}  // namespace pathvlm::text
