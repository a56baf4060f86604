#include "generate/sampling.h"

#include "core/error.h"
#include "core/random.h"

namespace pathvlm::generate {

TokenSampler::TokenSampler(uint64_t seed, double temperature, double top_p)
    : seed_(seed), temperature_(temperature), top_p_(top_p) {
  PATHVLM_CHECK(temperature >= 0.0, "generate: temperature must be >= 0 (0 = greedy), got ", temperature);
  PATHVLM_CHECK(top_p > 0.0 && top_p <= 1.0, "generate: top_p must be in (0, 1], got ", top_p);
}

double TokenSampler::next_uniform() {
  // SplitMix64's sequence: the finaliser of seed + k * golden gamma (splitmix64 adds one gamma itself).
  const uint64_t bits = splitmix64(seed_ + draws_ * 0x9E3779B97F4A7C15ull);
  ++draws_;
  return static_cast<double>(bits >> 11) * 0x1.0p-53;
}

int64_t TokenSampler::pick(const torch::Tensor& logits) {
  PATHVLM_CHECK(logits.dim() == 1 && logits.size(0) > 0, "generate: expected the logits of one position [vocab], got ",
                logits.sizes());
  if (greedy()) return logits.argmax().item<int64_t>();

  const auto probs = torch::softmax(logits.to(torch::kCPU, torch::kDouble) / temperature_, 0);
  // Stable so that equal probabilities keep the vocabulary order, as argmax does (top_p -> 0 is greedy).
  const auto [sorted, order] = probs.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true);
  const auto cumulative = sorted.cumsum(0).contiguous();
  const double* mass = cumulative.data_ptr<double>();
  const int64_t vocab = cumulative.size(0);

  // The nucleus: tokens whose preceding mass is still below top_p (the first token always).
  int64_t keep = vocab;
  if (top_p_ < 1.0) {
    keep = 1;
    while (keep < vocab && mass[keep - 1] < top_p_) ++keep;
  }
  const double target = next_uniform() * mass[keep - 1];
  int64_t chosen = 0;
  while (chosen < keep - 1 && mass[chosen] <= target) ++chosen;
  return order[chosen].item<int64_t>();
}

}  // namespace pathvlm::generate
