// A built-in text corpus of pathology-report-like documents, for language-model tests and demos that need no
// download. A document describes one imaginary slide: the report `synth slides` writes for 1-4 tissue regions of
// random classes and shares (slide_synth.h), then one or two tile captions of its classes (synth_tiles.h).
// `synth_text` writes, under out_dir:
//   train.jsonl, eval.jsonl   {"text": ...} per line (eval documents come from other seeds than train)
//   tokenizer.model           a small SentencePiece BPE model trained on the training documents
// Everything is a function of the options.
//
//   auto docs = synth::synth_text_documents(100, /*seed=*/0, /*split=*/0);
//   auto r = synth::synth_text({"demo/text"});      // r.train_jsonl, r.eval_jsonl, r.tokenizer
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::synth {

struct SynthTextOptions {
  std::string out_dir;
  int64_t train_documents = 2000;
  int64_t eval_documents = 200;
  int vocab_size = 512;  // the tokenizer's (the tiny LLaMA preset's vocabulary)
  uint64_t seed = 0;
};

struct SynthTextReport {
  std::string train_jsonl, eval_jsonl, tokenizer;
  int64_t train = 0, eval = 0;
};

// Document `index` of split `split` (0 train, 1 eval); deterministic in (seed, split, index).
std::string synth_text_document(uint64_t seed, int split, int64_t index);
// Documents 0..count-1 of a split.
std::vector<std::string> synth_text_documents(int64_t count, uint64_t seed, int split);

SynthTextReport synth_text(const SynthTextOptions& options);

}  // namespace pathvlm::synth
