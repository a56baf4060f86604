// Packing: documents tokenized into one stream and cut into fixed-length training sequences, with the document
// boundaries kept so that neither attention nor the loss crosses them.
//
// Each document becomes BOS + its tokens + EOS; the documents are concatenated in corpus order and the stream is
// cut into sequences of seq_len + 1 tokens, consecutive sequences sharing one token (sequence k is stream
// [k*seq_len, k*seq_len + seq_len]), so every next-token pair of the stream is in exactly one sequence; the tail
// that does not fill a sequence is dropped. A sequence gives the model T = seq_len positions:
//   input_ids    tokens[0..T-1]
//   labels       tokens[1..T], but kIgnoreIndex where tokens[i+1] belongs to another document than tokens[i]:
//                a document's EOS is predicted from its last token, the next document's BOS is never predicted
//                from the previous document;
//   position_ids restart at 0 at every document start, and at the sequence start for a document continued from
//                the previous sequence (RoPE sees only relative positions, and nothing before the cut is visible);
//   document_ids the corpus index of each input token's document; packed_attention_mask() turns them into the
//                block-diagonal causal keep mask (built on the device: it is T x T per sequence).
// The corpus is tokenized once, when packed (corpora of the lm task are small to medium: the stream takes 8 bytes
// per token), so the sequences are a pure function of the documents, the tokenizer and seq_len.
//
//   auto packed = data::PackedSequences::tokenize(data::read_text_corpus(files), tokenizer, 512);
//   data::Loader loader("text", packed.size(), [&](const data::BatchRequest& r) { return packed.batch(r); }, o);
//   auto keep = data::packed_attention_mask(batch.at("document_ids"));   // [B, 1, T, T] bool
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "data/loader.h"
#include "data/text_corpus.h"
#include "text/special_ids.h"

namespace pathvlm::text {
class Tokenizer;
}

namespace pathvlm::data {

// Label of a position the loss ignores (PyTorch's and Hugging Face's convention), shared with the text layer.
using text::kIgnoreIndex;

class PackedSequences {
 public:
  // `documents`: token ids of each document, BOS and EOS included.
  PackedSequences(const std::vector<std::vector<int64_t>>& documents, int64_t seq_len);
  // Tokenizes every document (BOS + text + EOS; several threads, deterministic result) and packs them.
  static PackedSequences tokenize(const std::vector<TextDocument>& documents,
                                  const text::Tokenizer& tokenizer, int64_t seq_len);

  int64_t size() const { return sequences_; }
  int64_t seq_len() const { return seq_len_; }
  int64_t documents() const { return documents_; }
  int64_t stream_tokens() const { return static_cast<int64_t>(stream_.size()); }

  // Sequence k's seq_len + 1 tokens and the corpus index of each one's document.
  std::vector<int64_t> tokens(int64_t k) const;
  std::vector<int64_t> document_of(int64_t k) const;

  // The batch of sequences request.records (rows in that order): input_ids, labels, position_ids and
  // document_ids, each [B, seq_len] int64 on the host. Thread-safe (a Loader builder).
  Batch batch(const BatchRequest& request) const;

 private:
  int64_t seq_len_ = 0, documents_ = 0, sequences_ = 0;
  std::vector<int32_t> stream_;    // token ids
  std::vector<int32_t> document_;  // document index of each stream token
};

// document_ids [B, T] -> keep [B, 1, T, T] bool: query i sees key j when j <= i and both are in one document.
torch::Tensor packed_attention_mask(const torch::Tensor& document_ids);

}  // namespace pathvlm::data
