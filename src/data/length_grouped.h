// LLaVA's group_by_modality_length as an epoch order for DistributedSampler: samples of similar length share a
// micro-batch (less padding), and image and text-only samples never share an optimizer step's megabatch.
//
// Per-record lengths carry the modality in their sign, as LLaVA's modality_lengths do: positive with an image,
// negative text-only (never 0). One epoch's order, a pure function of (lengths, layout, seed, epoch):
//   1. each modality's records are shuffled and cut into megabatches of world x micro_batch x grad_accum records
//      (one optimizer step); the full megabatches of both modalities are shuffled together;
//   2. each megabatch is sorted by length (longest first) and split into `world` chunks of equal record counts
//      and near-equal token totals (each record in turn to the lightest chunk that is not full, as LLaVA's
//      split_to_even_chunks); chunk r is rank r's share of the step, its micro-batches in order;
//   3. the two modalities' leftovers (fewer than a megabatch each) form one last, mixed megabatch, arranged the
//      same way over its whole micro-steps (as LLaVA appends them; the sampler drops what does not fill a
//      micro-step).
// The order is laid out the way DistributedSampler reads it (micro-step k = order[k*micro*world, ...), rank r
// takes its r-th micro_batch of that), so the sampler's cursor, resume and Loader all work unchanged:
//
//   LengthGrouping g{world, micro, accum};
//   DistributedSampler s(n, micro, rank, world, seed, true,
//                        [=](int64_t epoch) { return length_grouped_order(lengths, g, seed, epoch); });
//   auto report = length_grouping_padding(lengths, g, seed, 0);   // padding per micro-batch, grouped vs random
//
// A megabatch's composition depends on the world size (the ranks' chunks do), unlike the plain sampler's
// batches; its records, for a fixed global batch, do not. Megabatches line up with optimizer steps as long as each
// epoch's micro-steps start a step: always in the first epoch (LLaVA trains one), and in every epoch when the
// sampler's batches per epoch are a multiple of grad_accum.
#pragma once
#include <cstdint>
#include <vector>

namespace pathvlm::data {

struct LengthGrouping {
  int world_size = 1;
  int64_t micro_batch = 1;  // per rank
  int64_t grad_accum = 1;
  int64_t megabatch() const { return static_cast<int64_t>(world_size) * micro_batch * grad_accum; }
};

// The epoch's order: a permutation of 0..lengths.size()-1. Throws on a zero length or a bad layout.
std::vector<int64_t> length_grouped_order(const std::vector<int64_t>& lengths, const LengthGrouping& grouping,
                                          uint64_t seed, int64_t epoch);

// Padding of the micro-batches one epoch yields (per rank, whole micro-steps only): a micro-batch pads every
// record to its longest, so its padding is micro_batch x max - sum of the lengths' magnitudes.
struct PaddingReport {
  int64_t micro_batches = 0;
  double grouped_padding_per_batch = 0;  // tokens, with length_grouped_order
  double random_padding_per_batch = 0;   // tokens, with DistributedSampler's shuffled order (same seed, epoch)
  double saved_per_batch() const { return random_padding_per_batch - grouped_padding_per_batch; }
};
PaddingReport length_grouping_padding(const std::vector<int64_t>& lengths, const LengthGrouping& grouping,
                                      uint64_t seed, int64_t epoch);

// The padding tokens per micro-batch of `order` read as DistributedSampler reads it.
double padding_per_micro_batch(const std::vector<int64_t>& lengths, const std::vector<int64_t>& order,
                               int world_size, int64_t micro_batch);

}  // namespace pathvlm::data
