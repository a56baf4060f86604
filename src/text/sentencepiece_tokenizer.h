// The LLaMA / Vicuna tokenizer: a SentencePiece `tokenizer.model` with Hugging Face `LlamaTokenizer`'s rules
// (slow tokenizer, legacy = true, the behaviour LLaVA and Vicuna were trained with):
//   - encode() adds BOS (<s>, id 1) and no EOS; <unk> = 0, <s> = 1, </s> = 2 unless the model says otherwise;
//   - the strings of control tokens ("<s>", "</s>") inside the text become their ids; the text between them is
//     encoded piece by piece, each piece as SentencePiece encodes it on its own (so the piece right after a special
//     token gets SentencePiece's dummy-prefix space, which is HF's legacy behaviour).
//
//   text::SentencePieceTokenizer tok(text::SentencePieceTokenizer::locate("vicuna-7b-v1.5/"));
//   auto ids = tok.encode("Hello world");          // {1, 15043, 3186}
//   auto back = tok.decode(ids);                   // "Hello world" (special tokens skipped)
//
// Thread-safe: encode()/decode() are const.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace pathvlm::text {

class SentencePieceTokenizer {
 public:
  // `model_file`: a SentencePiece model (tokenizer.model). Errors name the file.
  explicit SentencePieceTokenizer(const std::string& model_file);
  ~SentencePieceTokenizer();
  SentencePieceTokenizer(SentencePieceTokenizer&&) noexcept;
  SentencePieceTokenizer& operator=(SentencePieceTokenizer&&) noexcept;

  // `dir_or_file`/tokenizer.model for a model directory, the path itself for a file; throws naming the path
  // when there is none.
  static std::string locate(const std::string& dir_or_file);

  std::vector<int64_t> encode(const std::string& text, bool add_bos = true) const;
  // Special (control) tokens are dropped when `skip_special`.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t unk_id() const;
  int64_t vocab_size() const;
  const std::string& path() const { return path_; }

  // Writes what transformers' LlamaTokenizer loads: tokenizer.model (a copy), tokenizer_config.json and
  // special_tokens_map.json.
  void save_hf(const std::string& dir) const;

 private:
  std::string path_;
  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
};

// Trains a small SentencePiece model (BPE, byte fallback, LLaMA's <unk>/<s>/</s> ids 0/1/2) on `texts` and
// writes it to `model_file` (tests and demo corpora; real models ship their tokenizer).
void train_sentencepiece(const std::vector<std::string>& texts, int vocab_size, const std::string& model_file);

}  // namespace pathvlm::text
