// Retrieval metrics on sets with tied candidates (repeated captions): the same numbers whatever the order of the
// pairs and however ranks split them (MpiEval.* run under 2 and 3 ranks, tests/eval/mpi.cmake).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/dist_test_util.h"
#include "dist/gather.h"
#include "eval/retrieval.h"

using namespace pathvlm;

namespace {

// 40 pairs of 24-dim embeddings: texts 5..19 repeat text 5 (one caption for 15 tiles), images 30..34 repeat image 30.
struct TiedSet {
  torch::Tensor image, text;
};
TiedSet tied_set() {
  torch::manual_seed(7);
  TiedSet s{torch::randn({40, 24}), torch::randn({40, 24})};
  s.text.narrow(0, 5, 15).copy_(s.text[5].expand({15, 24}));
  s.image.narrow(0, 30, 5).copy_(s.image[30].expand({5, 24}));
  s.text = s.text + 0.3 * s.image;  // matches score above chance, so ranks vary
  return s;
}

// Rows r, r + w, r + 2w, ...: rank r's share of a set split over w ranks, as a strided eval split hands them out.
torch::Tensor share(const torch::Tensor& rows, int rank, int world) {
  return rows.index({torch::arange(rank, rows.size(0), world)}).contiguous();
}

// The order in which gather_rows returns a strided split over `world` ranks.
torch::Tensor gathered_order(int64_t n, int world) {
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < world; ++r) parts.push_back(torch::arange(r, n, world));
  return torch::cat(parts);
}

void expect_same(const eval::RetrievalMetrics& a, const eval::RetrievalMetrics& b, const std::string& what) {
  for (auto [x, y] : {std::pair{&a.image_to_text, &b.image_to_text}, std::pair{&a.text_to_image, &b.text_to_image}}) {
    EXPECT_EQ(x->r1, y->r1) << what;
    EXPECT_EQ(x->r5, y->r5) << what;
    EXPECT_EQ(x->r10, y->r10) << what;
    EXPECT_EQ(x->median_rank, y->median_rank) << what;
    EXPECT_EQ(x->mean_rank, y->mean_rank) << what;
  }
}

}  // namespace

// One caption for every tile: every image's match ties with every other caption, and ties count in its favour
// (R@1 = 1, rank 1), also when the copies differ by float rounding (as embeddings of equal inputs computed in
// batches of other sizes do).
TEST(EvalRetrievalTies, TiesCountForTheMatchEvenWithRoundingNoise) {
  torch::manual_seed(3);
  auto image = torch::randn({12, 16});
  auto exact = torch::randn({1, 16}).expand({12, 16}).contiguous();
  auto m = eval::retrieval_metrics(image, exact);
  EXPECT_EQ(m.image_to_text.r1, 1.0);
  EXPECT_EQ(m.image_to_text.mean_rank, 1.0);
  auto noisy = exact * (1 + 1e-7 * torch::randn({12, 16}));
  auto n = eval::retrieval_metrics(image, noisy);
  EXPECT_EQ(n.image_to_text.r1, 1.0);
  EXPECT_EQ(n.image_to_text.median_rank, 1.0);
  expect_same(m, n, "rounding noise on the tied captions");
  // A real difference (1e-3 in cosine) is no tie: image 0's caption (cosine 0.998) ranks below caption 1 (0.999).
  auto a = torch::tensor({{1.0, 0.0, 0.0}, {0.999, 0.0, 0.0447}}, torch::kDouble);
  auto t = torch::tensor({{0.998, 0.0632, 0.0}, {0.999, 0.0, 0.0447}}, torch::kDouble);
  EXPECT_EQ(eval::retrieval_metrics(a, t).image_to_text.r1, 0.5);
}

// The orders in which 1, 2 and 3 ranks gather a strided split, and random orders, give the same metrics.
TEST(EvalRetrievalTies, MetricsDoNotDependOnTheOrderOfPairs) {
  const auto s = tied_set();
  const auto whole = eval::retrieval_metrics(s.image, s.text);
  EXPECT_LT(whole.image_to_text.r1, 1.0);  // not trivially perfect
  for (int world : {2, 3, 5}) {
    auto order = gathered_order(s.image.size(0), world);
    expect_same(eval::retrieval_metrics(s.image.index({order}), s.text.index({order})), whole,
                "gathered from " + std::to_string(world) + " ranks");
  }
  for (int seed = 0; seed < 5; ++seed) {
    torch::manual_seed(seed);
    auto order = torch::randperm(s.image.size(0));
    expect_same(eval::retrieval_metrics(s.image.index({order}), s.text.index({order})), whole,
                "random order " + std::to_string(seed));
  }
}

// Each rank embeds its share (a projection of its rows: the rounding of the batch it computes), the shares are
// gathered, and every rank gets the metrics one process gets from the whole set in one batch.
TEST(MpiEval, RetrievalWithTiesIsTheSameOnAnyNumberOfRanks) {
  auto& comm = dist::testing::world_comm();
  const int w = comm.world_size(), r = comm.rank();
  const auto s = tied_set();
  torch::manual_seed(11);
  const auto projection = torch::randn({24, 24});
  const auto whole = eval::retrieval_metrics(s.image.matmul(projection), s.text.matmul(projection));
  auto images = dist::gather_rows(share(s.image, r, w).matmul(projection), &comm);
  auto texts = dist::gather_rows(share(s.text, r, w).matmul(projection), &comm);
  expect_same(eval::retrieval_metrics(images, texts), whole, "rank " + std::to_string(r) + " of " + std::to_string(w));
}
