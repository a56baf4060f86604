// How one sequence picks its next token from the logits of its last position: greedy (argmax) when the
// temperature is 0, else temperature + top-p (nucleus) sampling as Hugging Face's TemperatureLogitsWarper and
// TopPLogitsWarper do (the smallest set of most likely tokens whose probability reaches top_p, renormalised).
//
//   generate::TokenSampler sampler(/*seed=*/7, /*temperature=*/0.7, /*top_p=*/0.9);
//   int64_t next = sampler.pick(logits_row);     // logits_row [vocab], any device and dtype
//
// Each sequence owns its sampler, seeded on its own, so its draws never depend on what else is in the batch:
// the same prompt and seed give the same tokens alone or batched. The uniform draws come from SplitMix64
// (core/random.h) rather than a torch::Generator so that they are the same on CPU and GPU and across libtorch
// versions; the inverse-CDF pick over the sorted probabilities is computed in float64 on the CPU.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace pathvlm::generate {

class TokenSampler {
 public:
  // temperature >= 0 (0: greedy, the seed is unused); top_p in (0, 1] (1: the whole vocabulary).
  TokenSampler(uint64_t seed, double temperature, double top_p);

  // The next token of this sequence from its logits [vocab]. Each sampled pick consumes one uniform draw.
  int64_t pick(const torch::Tensor& logits);

  bool greedy() const { return temperature_ == 0.0; }

 private:
  // Uniform in [0, 1): the next value of this sequence's SplitMix64 stream.
  double next_uniform();

  uint64_t seed_;
  uint64_t draws_ = 0;
  double temperature_, top_p_;
};

}  // namespace pathvlm::generate
