// Config section `dist`: how processes talk to each other (backend, timeouts, gradient buckets, ZeRO).
#pragma once
#include <string>

#include "core/config.h"

namespace pathvlm::dist {

struct DistConfig {
  std::string backend = "auto";
  double timeout_s = 300;
  double bucket_mb = 25;
  double first_bucket_mb = 1;
  bool shard_optimizer = false;
  bool find_unused = false;

  template <class V>
  void visit(V& v) {
    v.field("backend", backend, "collective backend: auto = none for one rank, nccl for several CUDA ranks (an error in a build without "
            "NCCL), mpi for CPU ranks; mpi on CUDA stages every collective through host memory",
            cfg::OneOf{"auto", "mpi", "nccl"});
    v.field("timeout_s", timeout_s,
            "seconds any collective may take, waiting for the slowest rank included; a lost or stuck rank ends the job",
            cfg::Min(0.001));
    v.field("bucket_mb", bucket_mb, "gradient bucket cap in MiB (one allreduce per bucket)", cfg::Min(0.0));
    v.field("first_bucket_mb", first_bucket_mb, "cap of the first bucket in MiB, so communication starts early",
            cfg::Min(0.0));
    v.field("shard_optimizer", shard_optimizer,
            "ZeRO-1/2: reduce-scatter gradients, each rank updates its shard, all-gather parameters");
    v.field("find_unused", find_unused,
            "parameters that got no gradient count as zero-gradient (else: an error naming them)");
  }
};

}  // namespace pathvlm::dist
