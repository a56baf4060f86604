#include "models/slide/grid_position.h"

#include "core/error.h"

namespace pathvlm::models::slide {

torch::Tensor grid_position_embedding(const torch::Tensor& coords, int64_t grid_stride, int64_t width) {
  PATHVLM_CHECK(width > 0 && width % 4 == 0, "grid position embedding: width ", width, " is not a multiple of 4");
  PATHVLM_CHECK(grid_stride > 0, "grid position embedding: grid_stride ", grid_stride, " must be positive");
  PATHVLM_CHECK(coords.dim() == 3 && coords.size(2) == 2, "grid position embedding: expected coords [B, N, 2], got ",
                coords.sizes());
  // Integer division first: cells stay exact for any coordinate, float32 only sees small cell numbers.
  auto cells = coords.to(torch::kLong).div(grid_stride, "floor").to(torch::kFloat);
  const auto quarter = width / 4;
  auto frequencies =
      torch::pow(10000.0, -torch::arange(quarter, cells.options()) / static_cast<double>(quarter));  // [W/4]
  auto embed = [&](const torch::Tensor& cell) {  // [B, N] -> [B, N, W/2]
    auto angles = cell.unsqueeze(-1) * frequencies;
    return torch::cat({angles.sin(), angles.cos()}, -1);
  };
  return torch::cat({embed(cells.select(2, 0)), embed(cells.select(2, 1))}, -1);
}

}  // namespace pathvlm::models::slide
