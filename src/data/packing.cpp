#include "data/packing.h"

#include <algorithm>
#include <limits>
#include <thread>

#include "core/error.h"
#include "text/tokenizer.h"

namespace pathvlm::data {

PackedSequences::PackedSequences(const std::vector<std::vector<int64_t>>& documents, int64_t seq_len)
    : seq_len_(seq_len), documents_(static_cast<int64_t>(documents.size())) {
  PATHVLM_CHECK(seq_len >= 1, "packing: seq_len must be >= 1, got ", seq_len);
  PATHVLM_CHECK(documents_ < std::numeric_limits<int32_t>::max(), "packing: too many documents (", documents_, ")");
  size_t total = 0;
  for (const auto& d : documents) total += d.size();
  stream_.reserve(total);
  document_.reserve(total);
  for (size_t d = 0; d < documents.size(); ++d) {
    for (auto id : documents[d]) {
      PATHVLM_CHECK(id >= 0 && id <= std::numeric_limits<int32_t>::max(), "packing: token id ", id,
                    " of document ", d, " is out of range");
      stream_.push_back(static_cast<int32_t>(id));
      document_.push_back(static_cast<int32_t>(d));
    }
  }
  sequences_ = stream_.empty() ? 0 : (static_cast<int64_t>(stream_.size()) - 1) / seq_len_;
}

PackedSequences PackedSequences::tokenize(const std::vector<TextDocument>& documents,
                                          const text::Tokenizer& tokenizer, int64_t seq_len) {
  std::vector<std::vector<int64_t>> ids(documents.size());
  const size_t threads = std::max<size_t>(1, std::min<size_t>({8, std::thread::hardware_concurrency(),
                                                               documents.size() / 64 + 1}));
  auto encode_range = [&](size_t begin) {
    for (size_t i = begin; i < documents.size(); i += threads) {
      ids[i] = tokenizer.encode(documents[i].text, /*add_bos=*/true);
      ids[i].push_back(tokenizer.eos_id());
    }
  };
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(encode_range, t);
  encode_range(0);
  for (auto& t : pool) t.join();
  return PackedSequences(ids, seq_len);
}

std::vector<int64_t> PackedSequences::tokens(int64_t k) const {
  PATHVLM_CHECK(k >= 0 && k < sequences_, "packing: sequence ", k, " of ", sequences_);
  return std::vector<int64_t>(stream_.begin() + k * seq_len_, stream_.begin() + k * seq_len_ + seq_len_ + 1);
}

std::vector<int64_t> PackedSequences::document_of(int64_t k) const {
  PATHVLM_CHECK(k >= 0 && k < sequences_, "packing: sequence ", k, " of ", sequences_);
  return std::vector<int64_t>(document_.begin() + k * seq_len_, document_.begin() + k * seq_len_ + seq_len_ + 1);
}

Batch PackedSequences::batch(const BatchRequest& request) const {
  const int64_t B = static_cast<int64_t>(request.records.size()), T = seq_len_;
  auto input = torch::empty({B, T}, request.host(torch::kLong));
  auto labels = torch::empty({B, T}, request.host(torch::kLong));
  auto positions = torch::empty({B, T}, request.host(torch::kLong));
  auto docs = torch::empty({B, T}, request.host(torch::kLong));
  auto in = input.accessor<int64_t, 2>(), lab = labels.accessor<int64_t, 2>(), pos = positions.accessor<int64_t, 2>(),
       doc = docs.accessor<int64_t, 2>();
  request.for_each([&](int64_t row, int64_t record) {
    PATHVLM_CHECK(record >= 0 && record < sequences_, "packing: sequence ", record, " of ", sequences_);
    const int32_t* tok = stream_.data() + record * T;
    const int32_t* d = document_.data() + record * T;
    for (int64_t i = 0; i < T; ++i) {
      in[row][i] = tok[i];
      doc[row][i] = d[i];
      const bool same_next = d[i + 1] == d[i];
      lab[row][i] = same_next ? tok[i + 1] : kIgnoreIndex;
      pos[row][i] = i > 0 && d[i - 1] == d[i] ? pos[row][i - 1] + 1 : 0;
    }
  });
  Batch b;
  b.tensors["input_ids"] = input;
  b.tensors["labels"] = labels;
  b.tensors["position_ids"] = positions;
  b.tensors["document_ids"] = docs;
  b.samples = B;
  b.tokens = B * T;
  b.epoch = request.epoch;
  return b;
}

torch::Tensor packed_attention_mask(const torch::Tensor& document_ids) {
  PATHVLM_CHECK(document_ids.dim() == 2, "packed_attention_mask: expected document ids [B, T], got ",
                document_ids.sizes());
  const auto T = document_ids.size(1);
  auto same = document_ids.unsqueeze(2) == document_ids.unsqueeze(1);  // [B, T(query), T(key)]
  auto causal = torch::ones({T, T}, document_ids.options().dtype(torch::kBool)).tril();
  return same.logical_and(causal).unsqueeze(1);
}

}  // namespace pathvlm::data
