// Gathering rows of different counts from every rank; see gather.h.
#include "dist/gather.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace pathvlm::dist {

torch::Tensor gather_rows(const torch::Tensor& x, Comm* comm) {
  if (!comm || comm->world_size() == 1) return x;
  const int world = comm->world_size();
  auto count = torch::full({1}, static_cast<double>(x.size(0)), x.options().dtype(torch::kDouble));
  auto counts = torch::empty({world}, count.options());
  comm->allgather(count, counts);
  const auto counts_cpu = counts.to(torch::kCPU).contiguous();
  const double* count_of = counts_cpu.data_ptr<double>();
  std::vector<int64_t> rows(world);
  int64_t most = 0;
  for (int r = 0; r < world; ++r) {
    rows[r] = static_cast<int64_t>(count_of[r]);
    most = std::max(most, rows[r]);
  }
  if (most == 0) return x;  // nobody has rows: no second collective
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

std::vector<std::string> allgather_strings(Comm& comm, torch::Device device, const std::string& s) {
  const int world = comm.world_size();
  auto length = torch::tensor({static_cast<int64_t>(s.size())}, torch::kLong).to(device);
  auto lengths = torch::zeros({world}, torch::kLong).to(device);
  comm.allgather(length, lengths);
  lengths = lengths.cpu();
  const int64_t longest = std::max<int64_t>(1, lengths.max().item<int64_t>());
  auto mine = torch::zeros({longest}, torch::kUInt8);
  std::memcpy(mine.data_ptr(), s.data(), s.size());
  mine = mine.to(device);
  auto all = torch::zeros({world * longest}, torch::kUInt8).to(device);
  comm.allgather(mine, all);
  all = all.cpu();
  std::vector<std::string> out;
  for (int r = 0; r < world; ++r)
    out.emplace_back(static_cast<const char*>(all.data_ptr()) + r * longest,
                     static_cast<size_t>(lengths[r].item<int64_t>()));
  return out;
}

}  // namespace pathvlm::dist
