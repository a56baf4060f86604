// TITAN's slide encoder (models/titan): random weights in the names of MahmoodLab/TITAN's model.safetensors, compared
// with the numpy reference of its encode_slide_from_patch_features (titan_reference.py) on slides that exercise its
// grid (shared cells summed, background dropped, an offset origin, gaps, one tile); the ALiBi slopes and the grid
// worked by hand; what is taken and what is refused. tests/cli/encode_titan_test.cpp runs it through `pathvlm encode`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "models/titan/titan_util.h"
#include "models/titan/weights.h"
#include "test_util.h"

using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

TEST(Titan, AlibiSlopesAsTitansGetSlopes) {
  // A power of two: 2^-1 .. 2^-8 (8 heads); otherwise the power below's, then every other one of the power above's.
  const std::vector<double> eight{0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625};
  EXPECT_EQ(models::alibi_slopes(8), eight);
  auto twelve = eight;
  for (double e : {-0.5, -1.5, -2.5, -3.5}) twelve.push_back(std::pow(2.0, e));
  EXPECT_EQ(models::alibi_slopes(12), twelve);
  const std::vector<double> six{0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125};
  EXPECT_EQ(models::alibi_slopes(6), six);
  EXPECT_EQ(models::alibi_slopes(1), std::vector<double>{std::pow(2.0, -8.0)});
}

TEST(Titan, GridSumsTilesSharingACellAndDropsBackground) {
  // 512-px tiles from (100, 50): cells (0,0), (1,0), (1,0) again, (0,1) with zero features, (3,2).
  const auto coords = torch::tensor({{100, 50}, {612, 50}, {700, 60}, {100, 562}, {1636, 1074}}, torch::kInt64);
  auto features = torch::arange(10, torch::kFloat32).view({5, 2}) + 1;
  features[3].zero_();
  const auto grid = models::titan_grid(features, coords, 512);
  EXPECT_TRUE(torch::equal(grid.cells, torch::tensor({{0, 0}, {1, 0}, {3, 2}}, torch::kInt64))) << grid.cells;
  EXPECT_TRUE(torch::equal(grid.features, torch::tensor({{1.f, 2.f}, {3.f + 5.f, 4.f + 6.f}, {9.f, 10.f}})))
      << grid.features;
}

TEST(Titan, SlideEmbeddingEqualsTitansOnItsGrid) {
  const std::string dir = write_titan(TitanFiles{"reference"});
  ASSERT_TRUE(models::is_titan(dir));
  ASSERT_TRUE(models::is_titan(dir + "/model.safetensors"));
  const auto slides = titan_test_slides();
  const auto expected = titan_reference_embeddings(dir, slides);
  ASSERT_TRUE(expected.defined());
  ASSERT_EQ(expected.sizes(), (std::vector<int64_t>{3, kTitanWidth}));

  EXPECT_FALSE(moves_random_stream([&] { models::load_titan(dir); }));
  auto titan = models::load_titan(dir);
  const auto& c = titan->config();
  EXPECT_EQ(c.input_dim, kTitanInput);
  EXPECT_EQ(c.width, kTitanWidth);
  EXPECT_EQ(c.depth, kTitanDepth);
  EXPECT_EQ(c.mlp_hidden, kTitanHidden);
  EXPECT_EQ(c.heads, kTitanHeads);
  EXPECT_EQ(c.pooler_heads, 8);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < slides.size(); ++i) {
    SCOPED_TRACE("slide " + std::to_string(i));
    const auto& s = slides[i];
    titan->set_attention_chunk(0);
    const auto embedding = titan->forward(s.features, s.coords, s.patch_size_level0);
    ASSERT_EQ(embedding.sizes(), (std::vector<int64_t>{kTitanWidth}));
    EXPECT_TRUE(torch::allclose(embedding, expected[i], 1e-4, 1e-4))
        << (embedding - expected[i]).abs().max().item<double>();
    // Chunks of 3 query rows: the bias is built piecewise, the result is the same.
    titan->set_attention_chunk(3);
    EXPECT_TRUE(torch::allclose(titan->forward(s.features, s.coords, s.patch_size_level0), embedding, 1e-5, 1e-5));
    // The tiles' order does not matter (the grid orders them); their positions do.
    const auto order = torch::randperm(s.coords.size(0));
    EXPECT_TRUE(torch::allclose(titan->forward(s.features.index_select(0, order), s.coords.index_select(0, order),
                                               s.patch_size_level0),
                                embedding, 1e-5, 1e-5));
  }
  // Slide 1 seen through twice its tile size: neighbours merge, and the embedding changes.
  titan->set_attention_chunk(0);
  const auto coarse = titan->forward(slides[0].features, slides[0].coords, 1024);
  EXPECT_GT((coarse - expected[0]).abs().max().item<double>(), 1e-2);
}

TEST(Titan, RefusalsNameTheFileAndWhatIsWrong) {
  TitanFiles absolute{"absolute"};
  absolute.vision_config["pos_encode_type"] = "abs";
  auto message = error_of([&] { models::load_titan(write_titan(absolute)); });
  EXPECT_NE(message.find("pos_encode_type 'abs' is not supported"), std::string::npos) << message;
  EXPECT_NE(message.find("config.json"), std::string::npos) << message;

  TitanFiles extra{"extra"};
  extra.extra_tensor = "vision_encoder.pos_embed";
  message = error_of([&] { models::load_titan(write_titan(extra)); });
  EXPECT_NE(message.find("vision_encoder.pos_embed"), std::string::npos) << message;

  TitanFiles missing{"missing"};
  missing.missing_tensor = "vision_encoder.blocks.modules_list.1.mlp.fc2.weight";
  message = error_of([&] { models::load_titan(write_titan(missing)); });
  EXPECT_NE(message.find("lacks tensor '" + missing.missing_tensor + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("pathvlm_titan_missing"), std::string::npos) << message;

  TitanFiles heads{"heads"};
  heads.vision_config["num_heads"] = 5;
  message = error_of([&] { models::load_titan(write_titan(heads)); });
  EXPECT_NE(message.find("does not split into 5 heads"), std::string::npos) << message;

  auto titan = models::load_titan(write_titan(TitanFiles{"inputs"}));
  message = error_of([&] { titan->forward(torch::zeros({3, kTitanInput + 1}), torch::zeros({3, 2}), 512); });
  EXPECT_NE(message.find("expected tile features [N, 20]"), std::string::npos) << message;
  message = error_of([&] { titan->forward(torch::zeros({3, kTitanInput}), torch::zeros({3, 2}), 0); });
  EXPECT_NE(message.find("patch_size_level0 must be positive"), std::string::npos) << message;
}

}  // namespace
