// A language model's tokenizer, whichever file the model ships:
//   - tokenizer.model: SentencePiece (LLaMA-2, Vicuna, Mistral, LLaVA-Med), text/sentencepiece_tokenizer.h;
//   - tokenizer.json: Hugging Face's BPE, byte-level (LLaMA-3, Qwen2/2.5/3) or SentencePiece-style (LLaMA-2, Mistral
//     as transformers 5 saves them), text/bpe_tokenizer.h.
// A model directory with both is read through tokenizer.model: LLaVA pins transformers' slow LlamaTokenizer, whose
// rules SentencePieceTokenizer follows.
//
//   auto tok = text::open_tokenizer("Meta-Llama-3-8B/");
//   auto ids = tok->encode("Hello world");        // {128000, 9906, 1917}
//   auto back = tok->decode(ids);                 // "Hello world"
//
// Thread-safe: every method is const.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "text/added_tokens.h"

namespace pathvlm::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;

  // The ids of `text`, BOS first when `add_bos` and the tokenizer has one (with `add_bos`, a tokenizer.json whose
  // TemplateProcessing puts special tokens after the text also ends with them: CONCH's <end_of_text>). Special-token
  // strings written in the text ("<s>", "<|im_start|>") become their ids.
  virtual std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const = 0;
  // The ids of `text` where it follows `before` in one run of text (text/supervised_sequence.h, "How text pieces
  // join"): what encode(before + text) holds after the ids of `before`. Throws when the tokens of before + text
  // do not split where `text` starts.
  virtual std::vector<int64_t> encode_continuation(const std::string& before, const std::string& text) const = 0;
  // The ids of `text` where it follows a special token written in the same text ("...</s>USER: hi"), no BOS:
  // legacy SentencePiece tokenizers give it the "▁" of a text of its own, non-legacy ones (tokenizer_config.json's
  // legacy false, a Metaspace tokenizer.json) none.
  virtual std::vector<int64_t> encode_after_special(const std::string& text) const = 0;
  // `skip_special` drops special tokens; otherwise they are written as their strings.
  virtual std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const = 0;
  // The token of one id as the tokenizer file stores it ("▁Hello", "<0x0A>", "ĠHello", "<|im_start|>").
  virtual std::string id_to_piece(int64_t id) const = 0;

  // -1 when the tokenizer has no BOS (Qwen).
  virtual int64_t bos_id() const = 0;
  virtual int64_t eos_id() const = 0;
  virtual int64_t vocab_size() const = 0;
  // Special tokens (BOS, EOS, <unk>, chat markers): a conversation turn may not hold their strings.
  virtual bool is_special(int64_t id) const = 0;
  // Their strings, matched in a text at once (Llama-3 has 256, Mistral v0.3 771).
  virtual const AddedTokens& special_tokens() const = 0;

  // The file it was read from (tokenizer.model or tokenizer.json).
  virtual const std::string& path() const = 0;
  // Writes the files transformers' AutoTokenizer loads with the same behaviour into `dir`.
  virtual void save_hf(const std::string& dir) const = 0;
};

// The tokenizer file of a model directory (tokenizer.model, else tokenizer.json), or the path itself for a file;
// throws naming the path when there is none.
std::string locate_tokenizer(const std::string& dir_or_file);

// Reads `dir_or_file` (see locate_tokenizer); errors name the file.
std::unique_ptr<Tokenizer> open_tokenizer(const std::string& dir_or_file);

}  // namespace pathvlm::text
