#include "train/adamw.h"

#include <cmath>

#include "core/compat.h"
#include "core/error.h"
#include "core/host_reads.h"
#include "dist/comm.h"

namespace pathvlm::train {

AdamW::AdamW(Options options) : options_(options) {}

void AdamW::add(const std::string& key, torch::Tensor param, torch::Tensor grad, bool decay) {
  PATHVLM_CHECK(param.defined() && grad.defined(), "AdamW: shard '", key, "' has an undefined parameter or gradient");
  PATHVLM_CHECK(param.sizes() == grad.sizes(), "AdamW: shard '", key, "': parameter ", param.sizes(),
                " and gradient ", grad.sizes(), " differ in shape");
  PATHVLM_CHECK(param.is_floating_point(), "AdamW: shard '", key, "' is not floating point");
  for (const auto& s : slots_) PATHVLM_CHECK(s.key != key, "AdamW: shard key '", key, "' added twice");
  if (slots_.empty() && compat::kHaveFusedAdamW && param.is_cuda())
    steps_ = torch::zeros({}, param.options().dtype(torch::kFloat32));
  PATHVLM_CHECK(slots_.empty() || param.device() == slots_.front().param.device(), "AdamW: shard '", key, "' is on ",
                param.device(), ", the others on ", slots_.front().param.device());
  auto moments = torch::zeros_like(param, param.options().dtype(torch::kFloat32));
  torch::Tensor master;
  if (param.element_size() < 4) master = param.detach().to(torch::kFloat32, /*non_blocking=*/false, /*copy=*/true);
  slots_.push_back({key, param, grad, moments, moments.clone(), master, decay});
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::Slot::named_state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out{{key + ".exp_avg", exp_avg}, {key + ".exp_avg_sq", exp_avg_sq}};
  if (master.defined()) out.emplace_back(key + ".master", master);
  return out;
}

void AdamW::step(double lr, const torch::Tensor& skip) {
  torch::NoGradGuard no_grad;
  if (slots_.empty()) return;
  if (fused()) {
    fused_step(lr, skip.defined() ? skip : torch::zeros({}, steps_.options()));
  } else {
    if (skip.defined() && host_flag(skip)) return;
    foreach_step(lr);
  }
  // A 16-bit parameter receives its master rounded.
  for (auto& s : slots_)
    if (s.master.defined()) s.param.copy_(s.master);
}

void AdamW::fused_step(double lr, const torch::Tensor& skip) {
  std::vector<torch::Tensor> params[2], grads[2], exp_avgs[2], exp_avg_sqs[2], steps[2];  // [0]: no decay, [1]: decay
  for (auto& s : slots_) {
    const int group = s.decay && options_.weight_decay != 0 ? 1 : 0;
    params[group].push_back(s.master.defined() ? s.master : s.param);
    grads[group].push_back(s.grad.scalar_type() == torch::kFloat32 ? s.grad : s.grad.to(torch::kFloat32));
    exp_avgs[group].push_back(s.exp_avg);
    exp_avg_sqs[group].push_back(s.exp_avg_sq);
    steps[group].push_back(steps_);  // the kernel only reads the count: one tensor serves every shard
  }
  // The count the kernel's bias correction reads is this step's; a skipped step takes it back.
  steps_.add_(1);
  for (int group = 0; group < 2; ++group)
    if (!params[group].empty())
      compat::fused_adamw_(params[group], grads[group], exp_avgs[group], exp_avg_sqs[group], steps[group], lr,
                           options_.beta1, options_.beta2, group == 1 ? options_.weight_decay : 0.0, options_.eps,
                           skip);
  steps_.sub_(skip);
}

void AdamW::foreach_step(double lr) {
  ++step_;
  const double bias_correction1 = 1.0 - std::pow(options_.beta1, static_cast<double>(step_));
  const double bias_correction2 = 1.0 - std::pow(options_.beta2, static_cast<double>(step_));
  const double step_size = lr / bias_correction1;
  const double bc2_sqrt = std::sqrt(bias_correction2);
  // fp32 arithmetic on the masters (or the fp32 parameters themselves), every shard at once: the _foreach_ ops
  // are one multi-tensor kernel per operation on CUDA (a loop of the same per-tensor ops on the CPU).
  std::vector<torch::Tensor> params, decayed, grads, exp_avgs, exp_avg_sqs;
  for (auto& s : slots_) {
    params.push_back(s.master.defined() ? s.master : s.param);
    if (s.decay) decayed.push_back(params.back());
    grads.push_back(s.grad.scalar_type() == torch::kFloat32 ? s.grad : s.grad.to(torch::kFloat32));
    exp_avgs.push_back(s.exp_avg);
    exp_avg_sqs.push_back(s.exp_avg_sq);
  }
  if (options_.weight_decay != 0 && !decayed.empty()) at::_foreach_mul_(decayed, 1.0 - lr * options_.weight_decay);
  at::_foreach_mul_(exp_avgs, options_.beta1);
  at::_foreach_add_(exp_avgs, grads, 1.0 - options_.beta1);
  at::_foreach_mul_(exp_avg_sqs, options_.beta2);
  at::_foreach_addcmul_(exp_avg_sqs, grads, grads, 1.0 - options_.beta2);
  auto denoms = at::_foreach_sqrt(exp_avg_sqs);
  at::_foreach_div_(denoms, bc2_sqrt);
  at::_foreach_add_(denoms, options_.eps);
  at::_foreach_addcdiv_(params, exp_avgs, denoms, -step_size);
}

int64_t AdamW::step_count() const {
  return fused() ? static_cast<int64_t>(steps_.item<float>()) : step_;
}

std::vector<torch::Tensor> AdamW::grads() const {
  std::vector<torch::Tensor> out;
  out.reserve(slots_.size());
  for (const auto& s : slots_) out.push_back(s.grad);
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> AdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& s : slots_)
    for (auto& named : s.named_state()) out.push_back(std::move(named));
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, int64_t step) {
  std::map<std::string, torch::Tensor> by_name(tensors.begin(), tensors.end());
  torch::NoGradGuard no_grad;
  size_t expected = 0;
  for (auto& s : slots_) {
    for (auto& [name, tensor] : s.named_state()) {
      auto it = by_name.find(name);
      PATHVLM_CHECK(it != by_name.end(), "optimizer state: tensor '", name,
                    "' is missing (was the checkpoint written with another model, world size, sharding or "
                    "train.precision?)");
      PATHVLM_CHECK(it->second.sizes() == tensor.sizes(), "optimizer state: tensor '", name, "' has shape ",
                    it->second.sizes(), ", expected ", tensor.sizes());
      tensor.copy_(it->second);
      ++expected;
    }
    // The parameter is the master rounded, whatever order the caller restores the model and the optimizer in.
    if (s.master.defined()) s.param.copy_(s.master);
  }
  PATHVLM_CHECK(by_name.size() == expected, "optimizer state: ", by_name.size(), " tensors, expected ", expected,
                " (was the checkpoint written with another train.precision?)");
  step_ = step;
  if (fused()) steps_.fill_(static_cast<double>(step));
}

torch::Tensor clip_grad_norm(const std::vector<torch::Tensor>& grads, double max_norm, dist::Comm* sum_over) {
  torch::NoGradGuard no_grad;
  torch::Tensor sq;
  for (const auto& g : grads) {
    auto s = g.to(torch::kFloat32).pow(2).sum();
    sq = sq.defined() ? sq + s : s;
  }
  if (!sq.defined()) sq = torch::zeros({}, torch::kFloat32);
  if (sum_over) {
    sq = sq.reshape({1}).contiguous();
    sum_over->allreduce(sq, dist::ReduceOp::Sum);
  }
  auto norm = sq.to(torch::kDouble).sqrt().reshape({});
  if (max_norm > 0 && !grads.empty()) {
    // min(1, max_norm / (norm + 1e-6)): exactly 1 below the limit; on the device, so nothing waits for the norm.
    auto scale = (max_norm / (norm + 1e-6)).clamp_max(1.0);
    for (const auto& g : grads) g.mul_(scale);
  }
  return norm;
}

bool wants_weight_decay(const std::string& name, const torch::Tensor& param,
                        const std::vector<std::string>& no_decay) {
  if (param.dim() < 2 || name.find("bias") != std::string::npos) return false;
  for (const auto& pattern : no_decay)
    if (!pattern.empty() && name.find(pattern) != std::string::npos) return false;
  return true;
}

}  // namespace pathvlm::train
