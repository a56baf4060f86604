#include "train/memory.h"

namespace pathvlm::train {

std::vector<std::pair<std::string, int64_t>> MemoryTable::rows() const {
  return {{"weights", weights},
          {"gradients", gradients},
          {"master weights", master_weights},
          {"optimizer moments", optimizer_moments},
          {"total", total()}};
}

MemoryTable memory_per_rank(const dist::Reducer::Memory& reducer, const std::vector<torch::Tensor>& parameters,
                            bool fp32_master) {
  constexpr int64_t kFp32 = 4;
  MemoryTable t;
  for (const auto& p : parameters) t.weights += p.numel() * static_cast<int64_t>(p.element_size());
  t.gradients = reducer.grad_bytes + reducer.shard_grad_bytes;
  t.master_weights = fp32_master ? reducer.local_numel * kFp32 : 0;
  t.optimizer_moments = 2 * reducer.local_numel * kFp32;
  return t;
}

}  // namespace pathvlm::train
