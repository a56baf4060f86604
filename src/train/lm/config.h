// Config section `lm`: the toy task — a tiny causal transformer language model on a deterministic synthetic
// sequence data set (arithmetic progressions modulo the vocabulary). Used by the trainer's equivalence and
// resume tests and by the smallest demo. Light header: no torch.
#pragma once
#include <cstdint>

#include "core/config.h"

namespace pathvlm::train {

struct LmConfig {
  int vocab = 32;
  int seq_len = 24;
  int dim = 64;
  int layers = 2;
  int heads = 4;
  int mlp_ratio = 4;
  double dropout = 0.0;
  int max_stride = 7;
  int64_t train_sequences = 8192;
  int64_t eval_sequences = 256;
  template <class V>
  void visit(V& v) {
    v.field("vocab", vocab, "vocabulary size (tokens are 0..vocab-1)", cfg::Min(2));
    v.field("seq_len", seq_len, "tokens per training sequence (the model predicts each next token)", cfg::Min(2));
    v.field("dim", dim, "model width", cfg::Min(1));
    v.field("layers", layers, "transformer blocks", cfg::Min(1));
    v.field("heads", heads, "attention heads (must divide dim)", cfg::Min(1));
    v.field("mlp_ratio", mlp_ratio, "MLP hidden width as a multiple of dim", cfg::Min(1));
    v.field("dropout", dropout, "dropout after attention and MLP (exercises RNG restore on resume)",
            cfg::Range(0.0, 0.9));
    v.field("max_stride", max_stride, "sequences are start + stride*t mod vocab with stride in 1..max_stride",
            cfg::Min(1));
    v.field("train_sequences", train_sequences, "sequences in one training epoch", cfg::Min(1));
    v.field("eval_sequences", eval_sequences, "held-out sequences for evaluation", cfg::Min(0));
  }
};

}  // namespace pathvlm::train
