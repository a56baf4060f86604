// AdamW over flat parameter shards (the Reducer's local_shards()), so the same code serves the plain and the
// sharded (ZeRO-1/2) case; plus gradient clipping by global norm that is correct under sharding.
//
// The update is torch.optim.AdamW's (decoupled decay p *= 1 - lr*wd first, bias-corrected moments), with
// fp32 moments per shard. Shards are identified by a key (the bucket's flat offset) for checkpoints.
//
//   AdamW opt({.beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.2});
//   for (auto& s : reducer.local_shards()) opt.add(str(s.flat_offset), s.param, s.grad, s.decay);
//   double norm = clip_grad_norm(opt.grads(), 1.0, reducer.sharded() ? &comm : nullptr);
//   opt.step(schedule.lr(step));
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm::dist {
class Comm;
}

namespace pathvlm::train {

class AdamW {
 public:
  struct Options {
    double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  };
  explicit AdamW(Options options);

  // `param` and `grad` are views this optimizer updates in place (same shape, device, floating dtype).
  void add(const std::string& key, torch::Tensor param, torch::Tensor grad, bool decay);
  void step(double lr);

  int64_t step_count() const { return step_; }
  std::vector<torch::Tensor> grads() const;

  // Moments as named tensors "<key>.exp_avg", "<key>.exp_avg_sq" (for the checkpoint) and back. load_state
  // throws naming the missing or mis-shaped tensor.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t step);

 private:
  struct Slot {
    std::string key;
    torch::Tensor param, grad, exp_avg, exp_avg_sq;
    bool decay;
  };
  Options options_;
  std::vector<Slot> slots_;
  int64_t step_ = 0;
};

// Global L2 norm of `grads` (squares summed over ranks through `sum_over` when each rank holds a different
// shard; nullptr when every rank holds the whole gradient). When max_norm > 0 and the norm exceeds it, scales
// the gradients in place to max_norm. Returns the norm before clipping (may be inf/nan: the caller skips).
double clip_grad_norm(const std::vector<torch::Tensor>& grads, double max_norm, dist::Comm* sum_over);

// Which trainable parameters get weight decay: tensors with 2+ dimensions whose name contains neither "bias"
// nor any of `no_decay`. So 1-D tensors (biases, norm gains, scalars like CLIP's logit_scale) are excluded.
bool wants_weight_decay(const std::string& name, const torch::Tensor& param,
                        const std::vector<std::string>& no_decay);

}  // namespace pathvlm::train
