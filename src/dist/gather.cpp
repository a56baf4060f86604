// Gathering rows of different counts from every rank; see gather.h.
#include "dist/gather.h"

#include <algorithm>

namespace pathvlm::dist {

torch::Tensor gather_rows(const torch::Tensor& x, Comm* comm) {
  if (!comm || comm->world_size() == 1) return x;
  const int world = comm->world_size();
  auto count = torch::full({1}, static_cast<double>(x.size(0)), x.options().dtype(torch::kDouble));
  auto counts = torch::empty({world}, count.options());
  comm->allgather(count, counts);
  auto counts_cpu = counts.to(torch::kCPU);
  std::vector<int64_t> rows(world);
  int64_t most = 0;
  for (int r = 0; r < world; ++r) {
    rows[r] = static_cast<int64_t>(counts_cpu[r].item<double>());
    most = std::max(most, rows[r]);
  }
  // Equal-sized chunks for the collective: pad to the largest share, then drop the padding.
  auto sizes = x.sizes().vec();
  sizes[0] = most;
  auto padded = torch::zeros(sizes, x.options());
  if (x.size(0) > 0) padded.narrow(0, 0, x.size(0)).copy_(x);
  sizes[0] = most * world;
  auto all = torch::empty(sizes, x.options());
  comm->allgather(padded, all);
  std::vector<torch::Tensor> parts;
  for (int r = 0; r < world; ++r) parts.push_back(all.narrow(0, r * most, rows[r]));
  return torch::cat(parts);
}

}  // namespace pathvlm::dist
