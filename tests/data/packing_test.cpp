// Packing: sequences cut from the document stream, targets ignored exactly where the next token starts another
// document, positions restarting per document, the block-diagonal causal mask, and determinism.
#include "data/packing.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "synth/synth_text.h"
#include "text/sentencepiece_tokenizer.h"

namespace fs = std::filesystem;
using namespace pathvlm;

namespace {

std::vector<int64_t> row(const torch::Tensor& t, int64_t r) {
  auto c = t[r].contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

data::Batch batch_of(const data::PackedSequences& packed, std::vector<int64_t> records) {
  data::BatchRequest request;
  request.records = std::move(records);
  return packed.batch(request);
}

}  // namespace

TEST(Packing, SequencesShareOneTokenAndTargetsStopAtDocumentBoundaries) {
  // BOS = 1, EOS = 2; the stream is 1 5 6 2 | 1 7 2 | 1 8 9 10 11 2 (13 tokens): 3 sequences of 4 + 1.
  data::PackedSequences packed({{1, 5, 6, 2}, {1, 7, 2}, {1, 8, 9, 10, 11, 2}}, /*seq_len=*/4);
  ASSERT_EQ(packed.size(), 3);
  EXPECT_EQ(packed.stream_tokens(), 13);
  EXPECT_EQ(packed.tokens(0), (std::vector<int64_t>{1, 5, 6, 2, 1}));
  EXPECT_EQ(packed.tokens(1), (std::vector<int64_t>{1, 7, 2, 1, 8}));
  EXPECT_EQ(packed.tokens(2), (std::vector<int64_t>{8, 9, 10, 11, 2}));
  EXPECT_EQ(packed.document_of(1), (std::vector<int64_t>{1, 1, 1, 2, 2}));

  auto b = batch_of(packed, {0, 1, 2});
  EXPECT_EQ(b.samples, 3);
  const int64_t I = data::kIgnoreIndex;
  // Each document's EOS is predicted from its last token; the next document's BOS is not predicted at all.
  EXPECT_EQ(row(b.at("input_ids"), 0), (std::vector<int64_t>{1, 5, 6, 2}));
  EXPECT_EQ(row(b.at("labels"), 0), (std::vector<int64_t>{5, 6, 2, I}));
  EXPECT_EQ(row(b.at("position_ids"), 0), (std::vector<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(row(b.at("input_ids"), 1), (std::vector<int64_t>{1, 7, 2, 1}));
  EXPECT_EQ(row(b.at("labels"), 1), (std::vector<int64_t>{7, 2, I, 8}));
  EXPECT_EQ(row(b.at("position_ids"), 1), (std::vector<int64_t>{0, 1, 2, 0}));
  EXPECT_EQ(row(b.at("document_ids"), 1), (std::vector<int64_t>{1, 1, 1, 2}));
  // A document continued from the previous sequence starts again at position 0.
  EXPECT_EQ(row(b.at("input_ids"), 2), (std::vector<int64_t>{8, 9, 10, 11}));
  EXPECT_EQ(row(b.at("labels"), 2), (std::vector<int64_t>{9, 10, 11, 2}));
  EXPECT_EQ(row(b.at("position_ids"), 2), (std::vector<int64_t>{0, 1, 2, 3}));

  // The tail that does not fill a sequence is dropped; a stream shorter than one sequence gives none.
  EXPECT_EQ(data::PackedSequences({{1, 5, 2}}, 4).size(), 0);
  EXPECT_EQ(data::PackedSequences({{1, 5, 6, 7, 2}, {1, 3}}, 3).size(), 2);
}

TEST(Packing, TheMaskIsBlockDiagonalCausal) {
  auto docs = torch::tensor({3, 3, 3, 4, 4, 5}, torch::kLong).view({1, 6});
  auto keep = data::packed_attention_mask(docs);
  ASSERT_EQ(keep.sizes(), (std::vector<int64_t>{1, 1, 6, 6}));
  ASSERT_EQ(keep.scalar_type(), torch::kBool);
  auto expected = torch::tensor({1, 0, 0, 0, 0, 0,  //
                                 1, 1, 0, 0, 0, 0,  //
                                 1, 1, 1, 0, 0, 0,  //
                                 0, 0, 0, 1, 0, 0,  //
                                 0, 0, 0, 1, 1, 0,  //
                                 0, 0, 0, 0, 0, 1},
                                torch::kLong)
                      .view({1, 1, 6, 6})
                      .to(torch::kBool);
  EXPECT_TRUE(torch::equal(keep, expected)) << keep;
}

TEST(Packing, ARealCorpusIgnoresExactlyTheBoundaryTargetsAndIsDeterministic) {
  const auto dir = fs::temp_directory_path() / ("pathvlm_packing_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  synth::SynthTextOptions o;
  o.out_dir = dir.string();
  o.train_documents = 120;
  o.eval_documents = 0;
  o.vocab_size = 400;
  const auto corpus = synth::synth_text(o);
  text::SentencePieceTokenizer tokenizer(corpus.tokenizer);
  const auto docs = data::read_text_corpus({corpus.train_jsonl});
  ASSERT_EQ(docs.size(), 120u);
  const int64_t T = 24;
  auto packed = data::PackedSequences::tokenize(docs, tokenizer, T);
  ASSERT_GT(packed.size(), 100);
  EXPECT_EQ(packed.documents(), 120);
  std::vector<int64_t> all(static_cast<size_t>(packed.size()));
  for (int64_t k = 0; k < packed.size(); ++k) all[static_cast<size_t>(k)] = k;
  auto b = batch_of(packed, all);
  int64_t ignored = 0;
  for (int64_t k = 0; k < packed.size(); ++k) {
    const auto tokens = packed.tokens(k), doc = packed.document_of(k), labels = row(b.at("labels"), k),
               positions = row(b.at("position_ids"), k);
    for (int64_t i = 0; i < T; ++i) {
      const bool boundary = doc[i + 1] != doc[i];
      EXPECT_EQ(labels[i], boundary ? data::kIgnoreIndex : tokens[i + 1]) << k << ":" << i;
      if (boundary) {
        EXPECT_EQ(tokens[i], tokenizer.eos_id());
        EXPECT_EQ(tokens[i + 1], tokenizer.bos_id());
        ++ignored;
      }
      EXPECT_EQ(positions[i], i == 0 || doc[i - 1] != doc[i] ? 0 : positions[i - 1] + 1);
    }
  }
  // Every document boundary inside the packed range is ignored once (119 boundaries, minus any in the dropped tail).
  EXPECT_GE(ignored, 118);
  EXPECT_LE(ignored, 119);
  // A pure function of the documents, the tokenizer and seq_len.
  auto again = data::PackedSequences::tokenize(data::read_text_corpus({corpus.train_jsonl}), tokenizer, T);
  ASSERT_EQ(again.size(), packed.size());
  for (int64_t k = 0; k < packed.size(); k += 7) EXPECT_EQ(again.tokens(k), packed.tokens(k));
  fs::remove_all(dir);
}
