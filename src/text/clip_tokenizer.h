// CLIP byte-level BPE tokenizer, byte-identical to open_clip's SimpleTokenizer (clean = "lower").
//
//   ClipTokenizer tok("bpe_simple_vocab_16e6.txt.gz", 77);
//   auto ids = tok.encode("An H&E image of tumor.");   // 77 ids: 49406 ... 49407 0 0 ...
//   auto batch = tok.batch({"a", "b"});                 // [2,77] int64
//
// Cleaning: ftfy.fix_text (text/fix_text.h: mojibake, curly quotes, ligatures, widths, controls, NFC), html
// unescape twice (named and numeric entities), whitespace runs -> one space, strip, lower case. Pre-tokenisation
// (open_clip's regex, IGNORECASE): 's|'t|'re|'ve|'m|'ll|'d|\p{L}+|\p{N}|[^\s\p{L}\p{N}]+. Over-long texts keep the
// first context-1 tokens and end with eot. Also reads HF CLIPTokenizer files (a directory with
// vocab.json + merges.txt: both must be there and agree, token by token). Thread-safe: encode() is const and
// keeps no mutable state.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <torch/torch.h>

namespace pathvlm::text {

class ClipTokenizer {
 public:
  static constexpr int64_t kStartOfText = 49406;
  static constexpr int64_t kEndOfText = 49407;

  // `vocab` = the gzip BPE merges file (bpe_simple_vocab_16e6.txt.gz) or an HF tokenizer directory.
  explicit ClipTokenizer(const std::string& vocab, int context_length = 77);

  // sot, BPE ids, eot, zero padding: exactly context_length ids.
  std::vector<int64_t> encode(const std::string& text) const;
  // BPE ids of the cleaned text, without sot/eot, padding or truncation.
  std::vector<int64_t> tokenize(const std::string& text) const;
  // [N, context_length] int64.
  torch::Tensor batch(const std::vector<std::string>& texts) const;
  // Token string (byte-unicode form, "</w>" marking word ends) -> id, and the merges in rank order,
  // as HF's vocab.json / merges.txt store them.
  const std::unordered_map<std::string, int64_t>& vocabulary() const { return encoder_; }
  const std::vector<std::pair<std::string, std::string>>& merges() const { return merges_; }

  int context_length() const { return context_; }

  // Writes HF CLIPTokenizer files into `dir`: vocab.json, merges.txt, tokenizer_config.json,
  // special_tokens_map.json (sot/eot named <|startoftext|> / <|endoftext|> as HF names them).
  void save_hf(const std::string& dir) const;

  // The cleaning step alone (ftfy's fix_text, html unescape x2, whitespace collapse, lower case).
  static std::string clean(const std::string& text);

 private:
  std::vector<std::string> bpe(const std::string& word_unicode) const;
  // An HF directory's vocab.json must give every token the id its merges.txt makes (ids derive from merges).
  void check_hf_vocab(const std::string& path) const;

  int context_;
  std::vector<std::pair<std::string, std::string>> merges_;
  std::unordered_map<std::string, int> merge_rank_;  // "a b" -> rank
  std::unordered_map<std::string, int64_t> encoder_;
  std::vector<std::string> byte_to_unicode_;  // byte -> UTF-8 of its printable stand-in
};

// Where a CLIP tokenizer comes from: `vocab` (bpe_simple_vocab_16e6.txt.gz or an HF tokenizer directory) when set,
// else the model directory `model_dir` when it holds HF tokenizer files (vocab.json + merges.txt). Otherwise an
// error that tells the user to `set_vocab` (e.g. "set clip.vocab") and why `model_dir` does not serve.
std::string clip_vocab_source(const std::string& vocab, const std::string& model_dir, const std::string& set_vocab);

}  // namespace pathvlm::text
