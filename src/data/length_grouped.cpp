#include "data/length_grouped.h"

#include <algorithm>
#include <cstdlib>

#include "core/error.h"
#include "core/random.h"
#include "data/sampler.h"

namespace pathvlm::data {
namespace {

using Draws = SeededDraws;

Draws draws(uint64_t seed, int64_t epoch, uint64_t stream) {
  return {splitmix64(splitmix64(splitmix64(seed ^ 0x6C656E67ull) ^ static_cast<uint64_t>(epoch)) ^ stream)};
}

// Steps 2-3 of the header: `records` (any modality mix) sorted longest first, balanced over the ranks' chunks,
// laid out micro-step by micro-step, rank by rank. Records beyond the whole micro-steps keep their sorted order
// at the end.
std::vector<int64_t> arrange(std::vector<int64_t> records, const std::vector<int64_t>& lengths,
                             const LengthGrouping& g) {
  auto magnitude = [&](int64_t i) { return std::llabs(lengths[static_cast<size_t>(i)]); };
  std::stable_sort(records.begin(), records.end(), [&](int64_t a, int64_t b) { return magnitude(a) > magnitude(b); });
  const int64_t step = g.world_size * g.micro_batch;
  const int64_t steps = static_cast<int64_t>(records.size()) / step;
  const int64_t per_chunk = steps * g.micro_batch;
  std::vector<std::vector<int64_t>> chunks(static_cast<size_t>(g.world_size));
  std::vector<int64_t> totals(chunks.size(), 0);
  for (int64_t k = 0; k < steps * step; ++k) {
    size_t lightest = chunks.size();
    for (size_t c = 0; c < chunks.size(); ++c)
      if (static_cast<int64_t>(chunks[c].size()) < per_chunk && (lightest == chunks.size() || totals[c] < totals[lightest]))
        lightest = c;
    chunks[lightest].push_back(records[static_cast<size_t>(k)]);
    totals[lightest] += magnitude(records[static_cast<size_t>(k)]);
  }
  std::vector<int64_t> out;
  out.reserve(records.size());
  for (int64_t s = 0; s < steps; ++s)
    for (const auto& chunk : chunks)
      out.insert(out.end(), chunk.begin() + s * g.micro_batch, chunk.begin() + (s + 1) * g.micro_batch);
  out.insert(out.end(), records.begin() + steps * step, records.end());
  return out;
}

}  // namespace

std::vector<int64_t> length_grouped_order(const std::vector<int64_t>& lengths, const LengthGrouping& g, uint64_t seed,
                                          int64_t epoch) {
  PATHVLM_CHECK(g.world_size >= 1 && g.micro_batch >= 1 && g.grad_accum >= 1,
                "length grouping: world size, micro batch and grad accum must be >= 1, got ", g.world_size, ", ",
                g.micro_batch, " and ", g.grad_accum);
  std::vector<int64_t> by_modality[2];  // 0: with image (length > 0), 1: text-only (length < 0)
  for (size_t i = 0; i < lengths.size(); ++i) {
    PATHVLM_CHECK(lengths[i] != 0, "length grouping: record ", i,
                  " has length 0 (lengths are positive with an image, negative text-only)");
    by_modality[lengths[i] > 0 ? 0 : 1].push_back(static_cast<int64_t>(i));
  }
  const auto m = static_cast<size_t>(g.megabatch());
  std::vector<std::vector<int64_t>> megabatches;
  std::vector<int64_t> leftovers;
  for (uint64_t modality = 0; modality < 2; ++modality) {
    auto& records = by_modality[modality];
    auto shuffle = draws(seed, epoch, modality + 1);
    shuffle.shuffle(records);
    const size_t full = records.size() / m * m;
    for (size_t start = 0; start < full; start += m)
      megabatches.emplace_back(records.begin() + static_cast<std::ptrdiff_t>(start),
                               records.begin() + static_cast<std::ptrdiff_t>(start + m));
    leftovers.insert(leftovers.end(), records.begin() + static_cast<std::ptrdiff_t>(full), records.end());
  }
  auto mix = draws(seed, epoch, 3);
  mix.shuffle(megabatches);

  std::vector<int64_t> order;
  order.reserve(lengths.size());
  for (auto& megabatch : megabatches) {
    const auto arranged = arrange(std::move(megabatch), lengths, g);
    order.insert(order.end(), arranged.begin(), arranged.end());
  }
  const auto tail = arrange(std::move(leftovers), lengths, g);
  order.insert(order.end(), tail.begin(), tail.end());
  return order;
}

double padding_per_micro_batch(const std::vector<int64_t>& lengths, const std::vector<int64_t>& order, int world_size,
                               int64_t micro_batch) {
  const int64_t batches = static_cast<int64_t>(order.size()) / (world_size * micro_batch) * world_size;
  if (batches == 0) return 0;
  int64_t padding = 0;
  for (int64_t b = 0; b < batches; ++b) {
    int64_t longest = 0, sum = 0;
    for (int64_t i = b * micro_batch; i < (b + 1) * micro_batch; ++i) {
      const int64_t len = std::llabs(lengths[static_cast<size_t>(order[static_cast<size_t>(i)])]);
      longest = std::max(longest, len);
      sum += len;
    }
    padding += micro_batch * longest - sum;
  }
  return static_cast<double>(padding) / static_cast<double>(batches);
}

PaddingReport length_grouping_padding(const std::vector<int64_t>& lengths, const LengthGrouping& g, uint64_t seed,
                                      int64_t epoch) {
  const auto n = static_cast<int64_t>(lengths.size());
  DistributedSampler plain(n, g.micro_batch, 0, g.world_size, seed);
  PaddingReport r;
  r.micro_batches = plain.batches_per_epoch() * g.world_size;
  r.grouped_padding_per_batch =
      padding_per_micro_batch(lengths, length_grouped_order(lengths, g, seed, epoch), g.world_size, g.micro_batch);
  r.random_padding_per_batch = padding_per_micro_batch(lengths, plain.epoch_order(epoch), g.world_size, g.micro_batch);
  return r;
}

}  // namespace pathvlm::data
