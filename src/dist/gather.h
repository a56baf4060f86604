// Gathering tensors whose row counts differ between ranks (evaluation shares, embeddings to index).
#pragma once
#include <torch/torch.h>

#include "dist/comm.h"

namespace pathvlm::dist {

// Concatenation over ranks of `x` along dim 0 where ranks may hold different row counts. The result is
// identical on every rank. `comm` may be null (one process).
torch::Tensor gather_rows(const torch::Tensor& x, Comm* comm);

}  // namespace pathvlm::dist
