#include "train/nonfinite_steps.h"

namespace pathvlm::train {
namespace {
enum Field : int64_t { kTotal, kSinceRead, kInRow, kWorstInRow, kLastStep, kLastLoss, kLastNorm, kFields };
}

NonFiniteSteps::NonFiniteSteps(torch::Device device)
    : state_(torch::zeros({kFields}, torch::TensorOptions().dtype(torch::kDouble).device(device))) {}

torch::Tensor NonFiniteSteps::record(const torch::Tensor& loss, const torch::Tensor& grad_norm, int64_t step) {
  torch::NoGradGuard no_grad;
  auto loss64 = loss.detach().to(torch::kDouble).reshape({}), norm64 = grad_norm.detach().to(torch::kDouble).reshape({});
  auto bad = torch::isfinite(loss64).logical_and(torch::isfinite(norm64)).logical_not();
  auto flag = bad.to(torch::kDouble);
  // A handful of tiny kernels, no host read: counts += flag; the run grows on a bad step and resets on a good one.
  state_.narrow(0, kTotal, 2).add_(flag);
  state_[kInRow].add_(1).mul_(flag);
  state_[kWorstInRow].copy_(torch::maximum(state_[kWorstInRow], state_[kInRow]));
  auto last = torch::stack({torch::full({}, static_cast<double>(step), flag.options()), loss64, norm64});
  auto kept = state_.narrow(0, kLastStep, 3);
  kept.copy_(torch::where(bad, last, kept));
  return bad.to(torch::kFloat);
}

NonFiniteSteps::Seen NonFiniteSteps::read() {
  auto host = state_.cpu();
  const double* v = host.data_ptr<double>();
  Seen seen;
  seen.total = static_cast<int64_t>(v[kTotal]);
  seen.since_read = static_cast<int64_t>(v[kSinceRead]);
  seen.in_row = static_cast<int64_t>(v[kInRow]);
  seen.worst_in_row = static_cast<int64_t>(v[kWorstInRow]);
  seen.last_step = static_cast<int64_t>(v[kLastStep]);
  seen.last_loss = v[kLastLoss];
  seen.last_grad_norm = v[kLastNorm];
  state_[kSinceRead].zero_();
  state_[kWorstInRow].fill_(v[kInRow]);
  return seen;
}

void NonFiniteSteps::restore(int64_t total, int64_t in_row) {
  state_.zero_();
  state_[kTotal].fill_(static_cast<double>(total));
  state_[kInRow].fill_(static_cast<double>(in_row));
  state_[kWorstInRow].fill_(static_cast<double>(in_row));
}

}  // namespace pathvlm::train
