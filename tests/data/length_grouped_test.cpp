// Length grouping (LLaVA's group_by_modality_length) as a DistributedSampler epoch order: a permutation,
// one modality per full megabatch, similar lengths per batch, less padding, (seed, epoch) determinism, and the
// sampler's and Loader's cursor semantics unchanged.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>

#include "core/random.h"
#include "data/length_grouped.h"
#include "data/loader.h"
#include "data/sampler.h"
#include "test_util.h"

using namespace pathvlm::data;

namespace {

// A skewed mix: 3 in 4 records carry an image (their length includes 128 image tokens, as LLaVA counts them),
// the rest are text-only; text lengths 20..800, most of them short (20 + 780 u^3).
std::vector<int64_t> skewed_lengths(int64_t n, uint64_t seed) {
  std::vector<int64_t> lengths;
  uint64_t state = seed;
  for (int64_t i = 0; i < n; ++i) {
    state = pathvlm::splitmix64(state);
    const bool image = state % 4 != 0;
    const double u = static_cast<double>((state >> 11) % 1000) / 1000.0;
    const auto len = static_cast<int64_t>(20 + 780 * u * u * u);
    lengths.push_back(image ? len + 128 : -len);
  }
  return lengths;
}

bool is_permutation_of_all(std::vector<int64_t> order, size_t n) {
  if (order.size() != n) return false;
  std::sort(order.begin(), order.end());
  for (size_t i = 0; i < n; ++i)
    if (order[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// Mean over consecutive groups of `size` records of (longest - shortest).
double mean_spread(const std::vector<int64_t>& lengths, const std::vector<int64_t>& order, int64_t size) {
  const int64_t groups = static_cast<int64_t>(order.size()) / size;
  double total = 0;
  for (int64_t g = 0; g < groups; ++g) {
    int64_t lo = INT64_MAX, hi = 0;
    for (int64_t i = g * size; i < (g + 1) * size; ++i) {
      const int64_t len = std::llabs(lengths[static_cast<size_t>(order[static_cast<size_t>(i)])]);
      lo = std::min(lo, len), hi = std::max(hi, len);
    }
    total += static_cast<double>(hi - lo);
  }
  return total / static_cast<double>(groups);
}

const LengthGrouping kGrouping{/*world_size=*/2, /*micro_batch=*/4, /*grad_accum=*/4};

}  // namespace

TEST(LengthGrouped, IsAPermutation) {
  const auto lengths = skewed_lengths(203, 1);
  EXPECT_TRUE(is_permutation_of_all(length_grouped_order(lengths, kGrouping, 9, 0), lengths.size()));
  EXPECT_TRUE(is_permutation_of_all(length_grouped_order(lengths, {3, 5, 1}, 9, 4), lengths.size()));
  EXPECT_TRUE(is_permutation_of_all(length_grouped_order(lengths, {1, 1, 1}, 9, 4), lengths.size()));
  const std::vector<int64_t> few = {5, -3, 7};  // less than one micro-step: only the mixed tail
  EXPECT_TRUE(is_permutation_of_all(length_grouped_order(few, kGrouping, 0, 0), few.size()));
}

TEST(LengthGrouped, FullMegabatchesHoldOneModality) {
  const auto lengths = skewed_lengths(600, 2);
  const int64_t images = std::count_if(lengths.begin(), lengths.end(), [](int64_t l) { return l > 0; });
  const int64_t texts = static_cast<int64_t>(lengths.size()) - images;
  const int64_t m = kGrouping.megabatch();
  const int64_t full = images / m + texts / m;
  ASSERT_GE(full, 10);
  const auto order = length_grouped_order(lengths, kGrouping, 3, 0);
  int64_t image_megabatches = 0;
  for (int64_t b = 0; b < full; ++b) {
    const bool first_has_image = lengths[static_cast<size_t>(order[static_cast<size_t>(b * m)])] > 0;
    image_megabatches += first_has_image ? 1 : 0;
    for (int64_t i = b * m; i < (b + 1) * m; ++i)
      EXPECT_EQ(lengths[static_cast<size_t>(order[static_cast<size_t>(i)])] > 0, first_has_image)
          << "megabatch " << b << " mixes modalities";
  }
  EXPECT_EQ(image_megabatches, images / m);
  // The modalities are shuffled together, not laid out as two blocks.
  int64_t changes = 0;
  for (int64_t b = 1; b < full; ++b)
    changes += (lengths[static_cast<size_t>(order[static_cast<size_t>((b - 1) * m)])] > 0) !=
               (lengths[static_cast<size_t>(order[static_cast<size_t>(b * m)])] > 0);
  EXPECT_GE(changes, 2);
}

TEST(LengthGrouped, BatchesHoldSimilarLengthsAndRanksGetEvenShares) {
  const auto lengths = skewed_lengths(400, 3);
  const auto grouped = length_grouped_order(lengths, kGrouping, 5, 0);
  const auto random = DistributedSampler(400, kGrouping.micro_batch, 0, kGrouping.world_size, 5).epoch_order(0);
  const int64_t micro = kGrouping.micro_batch, global = micro * kGrouping.world_size;
  // Per-rank micro-batches and whole micro-steps (what ranks wait on together) are both much tighter.
  EXPECT_LT(mean_spread(lengths, grouped, micro), 0.5 * mean_spread(lengths, random, micro));
  EXPECT_LT(mean_spread(lengths, grouped, global), 0.5 * mean_spread(lengths, random, global));
  // Each full megabatch gives both ranks the same number of tokens give or take one record.
  const int64_t m = kGrouping.megabatch();
  for (int64_t b = 0; b < 8; ++b) {
    int64_t tokens[2] = {0, 0}, longest = 0;
    for (int64_t i = b * m; i < (b + 1) * m; ++i) {
      const int64_t len = std::llabs(lengths[static_cast<size_t>(grouped[static_cast<size_t>(i)])]);
      tokens[(i % global) / micro] += len;
      longest = std::max(longest, len);
    }
    EXPECT_LE(std::llabs(tokens[0] - tokens[1]), longest) << "megabatch " << b;
  }
}

TEST(LengthGrouped, SavesPaddingOnASkewedDistribution) {
  const auto lengths = skewed_lengths(400, 4);
  const auto report = length_grouping_padding(lengths, kGrouping, 7, 0);
  EXPECT_EQ(report.micro_batches, 400 / 8 * 2);
  EXPECT_GT(report.saved_per_batch(), 0.5 * report.random_padding_per_batch);  // about 70% here
  EXPECT_DOUBLE_EQ(report.grouped_padding_per_batch,
                   padding_per_micro_batch(lengths, length_grouped_order(lengths, kGrouping, 7, 0), 2, 4));
  // Hand-checked: micro-batches {10, 30} and {20, 20} pad 20 and 0 tokens.
  EXPECT_DOUBLE_EQ(padding_per_micro_batch({10, -30, 20, 20}, {0, 1, 2, 3}, 1, 2), 10.0);
}

TEST(LengthGrouped, PureFunctionOfSeedAndEpoch) {
  const auto lengths = skewed_lengths(203, 5);
  const auto a = length_grouped_order(lengths, kGrouping, 11, 0);
  EXPECT_EQ(a, length_grouped_order(lengths, kGrouping, 11, 0));
  EXPECT_NE(a, length_grouped_order(lengths, kGrouping, 11, 1));
  EXPECT_NE(a, length_grouped_order(lengths, kGrouping, 12, 0));
}

TEST(LengthGrouped, RefusesZeroLengthsAndBadLayouts) {
  EXPECT_NE(pathvlm::testing::error_of([] { length_grouped_order({3, 0, 2}, kGrouping, 0, 0); }).find("record 1"),
            std::string::npos);
  EXPECT_NE(pathvlm::testing::error_of([] { length_grouped_order({3}, {1, 0, 1}, 0, 0); }).find("micro batch"),
            std::string::npos);
}

TEST(LengthGrouped, SamplerAndLoaderKeepTheirCursorSemantics) {
  const auto lengths = skewed_lengths(101, 6);
  const uint64_t seed = 13;
  auto order = [&](int64_t epoch) { return length_grouped_order(lengths, kGrouping, seed, epoch); };
  // Rank r's batches are its slices of the order, epoch after epoch.
  DistributedSampler r1(101, 4, 1, 2, seed, true, order);
  std::vector<std::vector<int64_t>> reference;
  for (int i = 0; i < 30; ++i) reference.push_back(r1.next_batch());  // 12 batches per epoch: into epoch 2
  const auto epoch1 = order(1);
  EXPECT_EQ(reference[12], std::vector<int64_t>(epoch1.begin() + 4, epoch1.begin() + 8));
  // Restoring a cursor continues identically.
  DistributedSampler resumed(101, 4, 1, 2, seed, true, order);
  resumed.restore({1, 5});
  for (int i = 17; i < 30; ++i) EXPECT_EQ(resumed.next_batch(), reference[static_cast<size_t>(i)]) << "batch " << i;

  // The Loader passes the order to its sampler.
  LoaderOptions o;
  o.batch_size = 4, o.rank = 1, o.world_size = 2, o.seed = seed, o.workers = 2, o.prefetch = 2;
  o.epoch_order = order;
  Loader loader("lengths", 101, [](const BatchRequest& r) {
    Batch b;
    b.samples = static_cast<int64_t>(r.records.size());
    b.tensors["records"] = torch::tensor(r.records);
    return b;
  }, o);
  loader.restore({1, 5});
  for (int i = 17; i < 22; ++i) {
    auto t = loader.next()->at("records");
    EXPECT_EQ(std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()),
              reference[static_cast<size_t>(i)]);
  }
  // An order of the wrong size is refused, naming the epoch.
  DistributedSampler bad(10, 2, 0, 1, 0, true, [](int64_t) { return std::vector<int64_t>{0, 1}; });
  EXPECT_NE(pathvlm::testing::error_of([&] { bad.next_batch(); }).find("epoch 0"), std::string::npos);
}
