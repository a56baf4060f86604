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

MemoryTable plan_memory_per_rank(const std::vector<dist::NamedParam>& parameters, bool bf16_weights, int world,
                                 int rank, const dist::DistConfig& cfg) {
  std::vector<dist::NamedParam> planned;
  std::vector<torch::Tensor> all;
  for (const auto& p : parameters) {
    const auto dtype = bf16_weights && p.param.is_floating_point() ? torch::kBFloat16 : p.param.scalar_type();
    auto meta = torch::empty(p.param.sizes(), torch::TensorOptions().dtype(dtype).device(torch::kMeta))
                    .set_requires_grad(p.param.requires_grad());
    planned.push_back({p.name, meta, p.decay});
    all.push_back(meta);
  }
  return memory_per_rank(dist::Reducer::plan(planned, world, rank, cfg), all, bf16_weights);
}

}  // namespace pathvlm::train
