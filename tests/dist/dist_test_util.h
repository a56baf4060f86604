// Shared by the dist tests: one Comm per test process (MPI under mpirun, local otherwise).
#pragma once
#include <torch/torch.h>

#include "dist/process_group.h"

namespace pathvlm::dist::testing {

inline Comm& world_comm() {
  static std::unique_ptr<Comm> comm = [] {
    DistConfig cfg;
    cfg.timeout_s = 60;
    return make_comm(cfg, torch::kCPU);
  }();
  return *comm;
}

}  // namespace pathvlm::dist::testing
