// Config section `lm`: causal-LM training of a LLaMA (a preset or a Hugging Face LLaMA directory) on text
// packed into fixed-length sequences (data/packing.h). Light header: no torch.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"

namespace pathvlm::train {

struct LmDataConfig {
  std::vector<std::string> train = {};
  std::vector<std::string> eval = {};
  int workers = 2;
  int prefetch = 4;
  template <class V>
  void visit(V& v) {
    v.field("train", train,
            "training text: .jsonl files (field `text`), .txt files (one document per blank-line-separated "
            "paragraph), directories of them or glob patterns (`pathvlm synth text` writes a demo corpus)");
    v.field("eval", eval, "evaluation text, same forms (empty = no evaluation)");
    v.field("workers", workers, "background threads that assemble batches", cfg::Range(1, 256));
    v.field("prefetch", prefetch, "ready batches kept ahead of the training loop", cfg::Range(1, 1024));
  }
};

struct LmEvalConfig {
  int64_t batch_size = 8;
  int64_t max_sequences = 0;
  template <class V>
  void visit(V& v) {
    v.field("batch_size", batch_size, "sequences per forward in evaluation", cfg::Min(1));
    v.field("max_sequences", max_sequences, "evaluate the first this many packed sequences (0 = all)", cfg::Min(0));
  }
};

struct LmConfig {
  std::string model = "tiny";
  std::string pretrained = "";
  std::string tokenizer = "";
  int64_t seq_len = 2048;
  double dropout = 0.0;
  LmDataConfig data;
  LmEvalConfig eval;
  template <class V>
  void visit(V& v) {
    v.field("model", model,
            "LLaMA preset trained from scratch (tiny, tinyllama-1.1b, llama2-7b, llama2-13b); its vocabulary "
            "becomes the tokenizer's. Ignored with `pretrained`");
    v.field("pretrained", pretrained,
            "Hugging Face LLaMA directory: config.json gives the shape, its weights are loaded like a "
            "train.init_from source (so frozen ones stay out of checkpoints), tokenizer.model the default tokenizer");
    v.field("tokenizer", tokenizer, "tokenizer.model or tokenizer.json (or a directory with one); default: pretrained's");
    v.field("seq_len", seq_len, "tokens per packed training sequence (the model predicts each next token)",
            cfg::Min(2));
    v.field("dropout", dropout, "dropout on the token embeddings (LLaMA has none; 0 = off)", cfg::Range(0.0, 0.9));
    v.section("data", data, "text files and loading");
    v.section("eval", eval, "loss, perplexity and accuracy on lm.data.eval");
  }
};

}  // namespace pathvlm::train
