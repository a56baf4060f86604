// The tokenizer.json that transformers' converter (LlamaConverter) makes of a SentencePiece BPE model with byte
// fallback (LLaMA-2, Vicuna, Mistral v0.1, pathvlm's demo tokenizer): a BPE over SentencePiece's pieces, its
// merges recovered from the pieces' scores, the "▁" prefix and spaces as normalizers, <0xXX> byte pieces. transformers
// 5 reads tokenizer.json first (and may not rebuild it from tokenizer.model as 4.x did), so exports ship both. The
// same protobuf reader gives the model without its dummy prefix (LlamaTokenizer with legacy false).
//
//   auto json = text::sentencepiece_tokenizer_json("vicuna-7b/tokenizer.model", /*bos_id=*/1);
//   if (!json.empty()) write_text_file("out/tokenizer.json", json);
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::text {

// A token tokenizer_config.json adds: one of the model's pieces, or one after them (llava-hf's <image>).
struct ConfigAddedToken {
  int64_t id;
  std::string content;
  bool special;
};

// The tokenizer.json of the SentencePiece model file `model_file` (BOS `bos_id` added in front of a text, -1: none;
// `legacy`: LlamaTokenizer's legacy rule, a "▁" before every run of text between added tokens, else before the
// text's start only; `added`: tokens added besides the model's unknown, control and user-defined pieces, those
// after its pieces in the order of their ids), or "" when the model is not one LlamaConverter reproduces exactly:
// not BPE, no byte fallback, or a normalization other than identity without collapsing spaces. Errors name the
// file (a damaged model).
std::string sentencepiece_tokenizer_json(const std::string& model_file, int64_t bos_id, bool legacy = true,
                                         const std::vector<ConfigAddedToken>& added = {});

// The model file's bytes with its normalizer's add_dummy_prefix off: the model transformers' LlamaTokenizer encodes
// with when legacy is false. Errors name the file.
std::string sentencepiece_model_without_dummy_prefix(const std::string& model_file);

}  // namespace pathvlm::text
