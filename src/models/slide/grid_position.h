// Fixed 2-D sin-cos position embedding of tiles on the slide's grid (Prov-GigaPath / MAE style): a tile at
// level-0 top-left (x, y) sits in cell (floor(x / grid_stride), floor(y / grid_stride)); the first half of the
// embedding encodes the column, the second half the row, each as [sin(c w_i), cos(c w_i)] with
// w_i = 10000^(-i / (width / 4)), i < width / 4.
//
//   auto pos = models::slide::grid_position_embedding(coords, /*grid_stride=*/256, /*width=*/256);
//   // coords [B, N, 2] int64 -> pos [B, N, 256] float32
#pragma once
#include <torch/torch.h>

namespace pathvlm::models::slide {

// width must be a multiple of 4; coordinates must be >= 0.
torch::Tensor grid_position_embedding(const torch::Tensor& coords, int64_t grid_stride, int64_t width);

}  // namespace pathvlm::models::slide
