// Gathering what ranks hold in different amounts: tensor rows (evaluation shares, embeddings to index) and strings.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "dist/comm.h"

namespace pathvlm::dist {

// Concatenation over ranks of `x` along dim 0 where ranks may hold different row counts. The result is
// identical on every rank. `comm` may be null (one process).
torch::Tensor gather_rows(const torch::Tensor& x, Comm* comm);

// Every rank's `s`, in rank order, on every rank (the bytes travel as uint8 tensors on `device`).
std::vector<std::string> allgather_strings(Comm& comm, torch::Device device, const std::string& s);

}  // namespace pathvlm::dist
