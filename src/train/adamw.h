// AdamW over flat parameter shards (the Reducer's local_shards()), so the same code serves the plain and the
// sharded (ZeRO-1/2) case; plus gradient clipping by global norm that is correct under sharding.
//
// The update is torch.optim.AdamW's (decoupled decay p *= 1 - lr*wd first, bias-corrected moments), with
// fp32 moments per shard. On CUDA with libtorch 2.x it is the fused kernel (torch's AdamW(fused=True)): one launch
// per group, the step count on the device, and a step flagged non-finite skipped on the device, so the training
// step never waits for the GPU. Elsewhere (libtorch 1.13, the CPU) all shards are updated together by the
// multi-tensor _foreach_ ops, and the skip flag is read on the host (host memory on the CPU: no wait).
// Shards are identified by a key (the bucket's flat offset) for checkpoints.
// A parameter in a 16-bit dtype (train.precision bf16) gets an fp32 master copy of its shard: the update is
// applied to the master and the parameter receives it rounded. Without it, an update smaller than half a
// bf16 ulp of the weight (lr 1e-4 on a weight of 1 is 1/40 of an ulp) would be rounded away every step.
//
//   AdamW opt({.beta1 = 0.9, .beta2 = 0.98, .eps = 1e-6, .weight_decay = 0.2});
//   for (auto& s : reducer.local_shards()) opt.add(str(s.flat_offset), s.param, s.grad, s.decay);
//   torch::Tensor norm = clip_grad_norm(opt.grads(), 1.0, reducer.sharded() ? &comm : nullptr);
//   opt.step(schedule.lr(step), /*skip=*/torch::isfinite(norm).logical_not().to(torch::kFloat));
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

  // `param` and `grad` are views this optimizer updates in place (same shape, device, floating dtype). A
  // bf16/fp16 `param` is copied into an fp32 master here.
  void add(const std::string& key, torch::Tensor param, torch::Tensor grad, bool decay);
  // One update at learning rate `lr`, unless `skip` (a 0-dim float32 tensor on the parameters' device, e.g. from
  // NonFiniteSteps) is 1: then nothing changes, the step count included. An undefined `skip` never skips.
  void step(double lr, const torch::Tensor& skip = {});

  // Updates applied (skipped steps not counted). Reads the device's count on the fused path.
  int64_t step_count() const;
  // True when updates run in the fused kernel and skips are decided on the device.
  bool fused() const { return steps_.defined(); }
  std::vector<torch::Tensor> grads() const;

  // Moments as named tensors "<key>.exp_avg", "<key>.exp_avg_sq", plus "<key>.master" for shards with a
  // master copy (for the checkpoint), and back. load_state throws naming the missing or mis-shaped tensor.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t step);

 private:
  struct Slot {
    std::string key;
    torch::Tensor param, grad, exp_avg, exp_avg_sq;
    torch::Tensor master;  // fp32 copy of a 16-bit param; undefined for fp32 params (updated in place)
    bool decay;
    // The state tensors by checkpoint name.
    std::vector<std::pair<std::string, torch::Tensor>> named_state() const;
  };
  void foreach_step(double lr);
  void fused_step(double lr, const torch::Tensor& skip);

  Options options_;
  std::vector<Slot> slots_;
  int64_t step_ = 0;      // updates applied (the foreach path)
  torch::Tensor steps_;   // the same on the device (float32, 0-dim): defined only on the fused path, chosen by the
                          // first shard's device
};

// Global L2 norm of `grads` (squares summed over ranks through `sum_over` when each rank holds a different
// shard; nullptr when every rank holds the whole gradient), computed in fp32 whatever the gradients' dtype (bf16
// has fp32's range, so the norm is non-finite only when a gradient is). When max_norm > 0 and the norm exceeds
// it, scales the gradients in place to max_norm, by a factor computed on the device (no host read). Returns the
// norm before clipping, a 0-dim float64 tensor on the gradients' device (may be inf/nan: the caller skips).
torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& grads, double max_norm, dist::Comm* sum_over);

// Which trainable parameters get weight decay: tensors with 2+ dimensions whose name contains neither "bias"
// nor any of `no_decay`. So 1-D tensors (biases, norm gains, scalars like CLIP's logit_scale) are excluded.
bool wants_weight_decay(const std::string& name, const torch::Tensor& param,
                        const std::vector<std::string>& no_decay);

}  // namespace pathvlm::train
