// Evaluation across ranks, run under mpirun with 2 and 3 ranks (tests/eval/mpi.cmake).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/gather.h"
#include "dist/dist_test_util.h"
#include "eval/retrieval.h"

using namespace pathvlm;

namespace {

dist::Comm& world() { return dist::testing::world_comm(); }

}  // namespace

// Eval shares of different sizes (one rank may hold none) gather to the same tensor on every rank, so
// metrics computed from it are identical everywhere.
TEST(MpiEval, GatherRowsWithUnevenSharesAndIdenticalMetrics) {
  const int w = world().world_size(), r = world().rank();
  const int64_t rows = r == 1 ? 0 : r + 2;
  auto mine = torch::full({rows, 3}, static_cast<double>(r), torch::kFloat);
  auto all = dist::gather_rows(mine, &world());
  int64_t expected_rows = 0;
  for (int q = 0; q < w; ++q) expected_rows += q == 1 ? 0 : q + 2;
  ASSERT_EQ(all.size(0), expected_rows);
  int64_t at = 0;
  for (int q = 0; q < w; ++q) {
    const int64_t n = q == 1 ? 0 : q + 2;
    if (n) {
      EXPECT_TRUE(torch::all(all.narrow(0, at, n) == q).item<bool>()) << "rows of rank " << q;
    }
    at += n;
  }

  // Each rank's share of a retrieval set: the gathered metrics are the whole set's, on every rank.
  torch::manual_seed(13);
  const int64_t per = 5;
  auto img = torch::randn({per * w, 8}), txt = img + 0.8 * torch::randn({per * w, 8});
  auto whole = eval::retrieval_metrics(img, txt);
  auto gi = dist::gather_rows(img.narrow(0, r * per, per).contiguous(), &world());
  auto gt = dist::gather_rows(txt.narrow(0, r * per, per).contiguous(), &world());
  auto shared = eval::retrieval_metrics(gi, gt);
  EXPECT_EQ(shared.image_to_text.r1, whole.image_to_text.r1);
  EXPECT_EQ(shared.text_to_image.median_rank, whole.text_to_image.median_rank);
  auto mine_values = torch::tensor({shared.image_to_text.r1, shared.image_to_text.r5, shared.text_to_image.mean_rank},
                                   torch::kDouble);
  auto rank0 = mine_values.clone();
  world().broadcast(rank0, 0);
  EXPECT_TRUE(torch::equal(mine_values, rank0));
}
