#include "train/schedule.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace pathvlm::train {

Schedule::Schedule(const OptimConfig& optim, int64_t total_steps)
    : kind_(optim.schedule),
      peak_(optim.lr),
      min_(optim.lr * optim.min_lr_ratio),
      warmup_(optim.warmup_steps),
      cooldown_(optim.cooldown_steps),
      total_(total_steps) {
  PATHVLM_CHECK(total_ >= 1, "schedule: train.steps must be >= 1 (got ", total_, ")");
  PATHVLM_CHECK(warmup_ < total_ || warmup_ == 0, "schedule: optim.warmup_steps (", warmup_,
                ") must be smaller than train.steps (", total_, ")");
  PATHVLM_CHECK(kind_ == "cosine" || kind_ == "constant" || kind_ == "constant_cooldown",
                "schedule: unknown optim.schedule '", kind_, "' (cosine, constant, constant_cooldown)");
  if (kind_ == "constant_cooldown")
    PATHVLM_CHECK(warmup_ + cooldown_ <= total_, "schedule: optim.warmup_steps + optim.cooldown_steps (",
                  warmup_ + cooldown_, ") exceed train.steps (", total_, ")");
}

double Schedule::lr(int64_t step) const {
  if (step < warmup_) return peak_ * static_cast<double>(step + 1) / static_cast<double>(warmup_);
  if (kind_ == "constant") return peak_;
  if (kind_ == "cosine") {
    // Reaches min exactly at the last update.
    const int64_t span = std::max<int64_t>(1, total_ - warmup_ - 1);
    const double progress = std::min(1.0, static_cast<double>(step - warmup_) / static_cast<double>(span));
    return min_ + (peak_ - min_) * 0.5 * (1.0 + std::cos(M_PI * progress));
  }
  // constant_cooldown: linear decay over the last `cooldown_` updates, reaching min at the last one.
  const int64_t start = total_ - cooldown_;
  if (cooldown_ == 0 || step < start) return peak_;
  const double frac = static_cast<double>(step - start + 1) / static_cast<double>(cooldown_);
  return peak_ + (min_ - peak_) * std::min(1.0, frac);
}

std::string Schedule::describe() const {
  std::string s = str("lr ", peak_, ", warmup ", warmup_, " steps, ", kind_);
  if (kind_ == "cosine") s += str(" to ", min_, " at step ", total_);
  if (kind_ == "constant_cooldown") s += str(", cooldown to ", min_, " over the last ", cooldown_, " steps");
  return s;
}

}  // namespace pathvlm::train
