// Learning-rate schedules: linear warmup, then cosine / constant / constant-with-cooldown.
// A pure function of the step, so resuming needs only the step; set on the optimizer every step.
//
//   Schedule s(cfg.optim, cfg.train.steps);
//   double lr = s.lr(step);   // step = 0-based index of the optimizer update about to happen
#pragma once
#include <cstdint>
#include <string>

#include "train/train_config.h"

namespace pathvlm::train {

class Schedule {
 public:
  Schedule(const OptimConfig& optim, int64_t total_steps);
  double lr(int64_t step) const;
  std::string describe() const;  // one line for the startup log

 private:
  std::string kind_;
  double peak_, min_;
  int64_t warmup_, cooldown_, total_;
};

}  // namespace pathvlm::train
