// The 2-D sin-cos grid position embedding: a tile's cell is floor(coord / grid_stride); column in the first
// half, row in the second; known values at the first frequency (1 rad per cell).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "models/slide/grid_position.h"

using namespace pathvlm;

TEST(SlideGridPosition, CellsColumnsRowsAndValues) {
  // Tiles at (0, 0), (255, 10) [same cell], (256, 0) [next column], (0, 512) [third row].
  auto coords = torch::tensor({0, 0, 255, 10, 256, 0, 0, 512}, torch::kLong).view({1, 4, 2});
  auto pos = models::slide::grid_position_embedding(coords, 256, 8);
  ASSERT_EQ(pos.sizes(), (std::vector<int64_t>{1, 4, 8}));
  EXPECT_TRUE(torch::equal(pos[0][0], pos[0][1]));
  // Cell (0, 0): sin 0 = 0, cos 0 = 1 in both halves.
  EXPECT_TRUE(torch::equal(pos[0][0], torch::tensor({0.f, 0.f, 1.f, 1.f, 0.f, 0.f, 1.f, 1.f})));
  // Column 1: first half [sin 1, sin 0.01, cos 1, cos 0.01] (w = 10000^(-i/2)); the row half unchanged.
  EXPECT_NEAR(pos[0][2][0].item<float>(), std::sin(1.0), 1e-6);
  EXPECT_NEAR(pos[0][2][1].item<float>(), std::sin(0.01), 1e-6);
  EXPECT_NEAR(pos[0][2][2].item<float>(), std::cos(1.0), 1e-6);
  EXPECT_TRUE(torch::equal(pos[0][2].narrow(0, 4, 4), pos[0][0].narrow(0, 4, 4)));
  // Row 2: second half [sin 2, sin 0.02, cos 2, cos 0.02].
  EXPECT_NEAR(pos[0][3][4].item<float>(), std::sin(2.0), 1e-6);
  EXPECT_NEAR(pos[0][3][7].item<float>(), std::cos(0.02), 1e-6);
  EXPECT_TRUE(torch::equal(pos[0][3].narrow(0, 0, 4), pos[0][0].narrow(0, 0, 4)));
}

TEST(SlideGridPosition, RejectsWidthsNotMultipleOfFour) {
  EXPECT_THROW(models::slide::grid_position_embedding(torch::zeros({1, 1, 2}, torch::kLong), 256, 6), std::exception);
}
