// DistributedSampler: disjoint equal shares, (seed, epoch) determinism, world-size invariance, resume.
#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "data/sampler.h"

using pathvlm::data::DistributedSampler;

namespace {

std::vector<std::vector<int64_t>> take(DistributedSampler& s, int64_t n) {
  std::vector<std::vector<int64_t>> out;
  for (int64_t i = 0; i < n; ++i) out.push_back(s.next_batch());
  return out;
}

}  // namespace

TEST(Sampler, SharesAreDisjointEqualAndDropTheTail) {
  const int64_t n = 103, b = 4;
  const int world = 3;
  std::set<int64_t> seen;
  for (int r = 0; r < world; ++r) {
    DistributedSampler s(n, b, r, world, 7);
    EXPECT_EQ(s.batches_per_epoch(), 8);  // 103 / 12
    for (const auto& batch : take(s, s.batches_per_epoch())) {
      ASSERT_EQ(batch.size(), 4u);
      for (auto i : batch) {
        EXPECT_GE(i, 0);
        EXPECT_LT(i, n);
        EXPECT_TRUE(seen.insert(i).second) << "index " << i << " given twice";
      }
    }
  }
  EXPECT_EQ(seen.size(), 96u);
}

TEST(Sampler, DeterministicInSeedAndEpoch) {
  DistributedSampler a(50, 5, 1, 2, 42), b(50, 5, 1, 2, 42), c(50, 5, 1, 2, 43);
  auto ea = take(a, 10), eb = take(b, 10), ec = take(c, 10);  // epochs 0 and 1
  EXPECT_EQ(ea, eb);
  EXPECT_NE(ea, ec);
  // The next epoch is another permutation of the same dataset.
  auto next = take(a, 5);
  EXPECT_EQ(a.cursor().epoch, 2);  // 5 batches per epoch: 15 taken
  std::vector<int64_t> first(ea[0]), second(next[0]);
  EXPECT_NE(first, second);
  EXPECT_NE(a.epoch_order(0), a.epoch_order(1));
  auto sorted = a.epoch_order(1);
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 50; ++i) EXPECT_EQ(sorted[i], i);
}

TEST(Sampler, TwoRanksOfBEqualOneRankOf2B) {
  DistributedSampler one(40, 6, 0, 1, 3), r0(40, 3, 0, 2, 3), r1(40, 3, 1, 2, 3);
  EXPECT_EQ(one.batches_per_epoch(), r0.batches_per_epoch());
  for (int step = 0; step < 15; ++step) {  // crosses two epoch boundaries
    auto whole = one.next_batch();
    auto a = r0.next_batch(), b = r1.next_batch();
    std::vector<int64_t> joined(a);
    joined.insert(joined.end(), b.begin(), b.end());
    EXPECT_EQ(joined, whole) << "step " << step;
  }
}

TEST(Sampler, NoShuffleIsSequential) {
  DistributedSampler s(10, 2, 1, 2, 0, /*shuffle=*/false);
  EXPECT_EQ(s.next_batch(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(s.next_batch(), (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(s.next_batch(), (std::vector<int64_t>{2, 3}));  // epoch 1 (8, 9 dropped)
}

TEST(Sampler, CursorRestoreContinuesIdentically) {
  DistributedSampler full(37, 4, 1, 2, 11);
  auto reference = take(full, 12);  // 4 batches per epoch: three epochs
  for (int cut : {0, 3, 4, 5, 11}) {
    DistributedSampler first(37, 4, 1, 2, 11);
    take(first, cut);
    auto saved = first.cursor();
    DistributedSampler resumed(37, 4, 1, 2, 11);
    resumed.restore(saved);
    auto rest = take(resumed, 12 - cut);
    for (int i = cut; i < 12; ++i) EXPECT_EQ(rest[i - cut], reference[i]) << "cut " << cut << " batch " << i;
  }
}

TEST(Sampler, BadArgumentsAreClearErrors) {
  EXPECT_THROW(DistributedSampler(5, 4, 0, 2, 0), pathvlm::Error);
  EXPECT_THROW(DistributedSampler(5, 0, 0, 1, 0), pathvlm::Error);
  EXPECT_THROW(DistributedSampler(5, 1, 2, 2, 0), pathvlm::Error);
  DistributedSampler s(10, 2, 0, 1, 0);
  EXPECT_THROW(s.restore({0, 6}), pathvlm::Error);
  try {
    DistributedSampler(5, 4, 0, 2, 0);
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one global batch"), std::string::npos) << e.what();
  }
}
