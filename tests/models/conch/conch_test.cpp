// CONCH image towers (models/conch): random weights in the names of both releases' state dicts, compared with the
// numpy reference of what CLAM and TRIDENT compute (conch_reference.py): v1's attention-pooled features over its
// 448-px trunk (nn.MultiheadAttention pooler, OpenAI statistics), v1.5's 224-px trunk run at 448 px with its position
// embeddings interpolated as its forward does (DINO's bicubic scale), stored positions of another grid resampled
// first; what is taken for CONCH; the refusals. tests/wsi/slide_cli_test.cpp runs one through `pathvlm embed`.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/pixel_statistics.h"
#include "models/conch/conch_util.h"
#include "models/conch/weights.h"
#include "models/vit/timm_weights.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

void expect_matches_reference(const ConchLayout& layout) {
  SCOPED_TRACE(layout.name);
  const std::string dir = write_conch(layout);
  ASSERT_TRUE(models::is_conch(dir));
  ASSERT_TRUE(models::is_conch(dir + "/model.safetensors"));
  EXPECT_FALSE(models::is_timm_vit(dir));
  const auto pixels = random_pixels(2, kConchInput);
  const auto expected = conch_reference_features(dir, pixels);
  ASSERT_TRUE(expected.defined());
  ASSERT_EQ(expected.size(1), kConchPooled);

  EXPECT_FALSE(moves_random_stream([&] { models::load_conch(dir); }));
  models::Conch conch = models::load_conch(dir);
  EXPECT_EQ(conch.version, layout.version);
  const auto& trunk = conch.model->trunk->config();
  EXPECT_EQ(trunk.image_size, kConchInput);
  const bool v1 = layout.version == "v1";
  const std::array<double, 3> imagenet_mean{0.485, 0.456, 0.406}, imagenet_std{0.229, 0.224, 0.225};
  EXPECT_EQ(trunk.mean, v1 ? kOpenAiMean : imagenet_mean);
  EXPECT_EQ(trunk.std, v1 ? kOpenAiStd : imagenet_std);
  EXPECT_EQ(conch.model->features(), kConchPooled);
  torch::NoGradGuard no_grad;
  const auto got = conch.model->forward(normalised(pixels, trunk.mean, trunk.std));
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-4)) << (got - expected).abs().max().item<double>();
  fs::remove_all(dir);
}

}  // namespace

TEST(Conch, V1GivesTheAttentionPooledFeaturesOfEncodeImageWithoutProjection) {
  expect_matches_reference({"v1"});
}

// pool: proj. v1's features projected into the space its text tower shares (encode_image(proj_contrast=True,
// normalize=False)); v1.5, an image tower alone, has no projection to give.
TEST(Conch, V1ProjectsItsFeaturesWithProjContrastWhenAsked) {
  const std::string dir = write_conch({"v1_projected"});
  const auto pixels = random_pixels(2, kConchInput);
  const auto expected = conch_reference_features(dir, pixels, true);
  ASSERT_TRUE(expected.defined());
  ASSERT_EQ(expected.size(1), kConchProjection);
  auto model = models::load_conch(dir).model;
  EXPECT_EQ(model->features(), kConchPooled);
  model->set_projected(true, "test");
  EXPECT_EQ(model->features(), kConchProjection);
  const auto& trunk = model->trunk->config();
  torch::NoGradGuard no_grad;
  const auto got = model->forward(normalised(pixels, trunk.mean, trunk.std));
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-4)) << (got - expected).abs().max().item<double>();
  fs::remove_all(dir);

  const std::string v15 = write_conch({"v15_projected", "v1.5"});
  const auto message = error_of([&] { models::load_conch(v15).model->set_projected(true, "CONCH v1.5 'x'"); });
  EXPECT_NE(message.find("CONCH v1.5 'x' has no contrastive projection"), std::string::npos) << message;
  fs::remove_all(v15);
}

TEST(Conch, V15RunsItsSmallerTrunkAt448PixelsWithPositionsInterpolatedAsItsForwardDoes) {
  expect_matches_reference({"v15", "v1.5"});
}

TEST(Conch, PositionsStoredForAnotherGridAreResampledToTheModelsFirst) {
  expect_matches_reference({"v1_grid10", "v1", 10});
  expect_matches_reference({"v15_grid14", "v1.5", 14});  // stored at 448 px: down to 224's grid, then up again
}

TEST(Conch, EveryTensorOfAnotherShapeIsRefusedOrRuns) {
  for (const char* version : {"v1", "v1.5"}) {
    const std::string dir = write_conch({std::string("lying_") + version, version});
    const auto pixels = normalised(random_pixels(1, kConchInput));
    expect_lying_shapes_refused(
        dir, [](const std::string& d) { return models::load_conch(d).model; },
        [&](models::ConchVision conch) {
          torch::NoGradGuard no_grad;
          EXPECT_EQ(conch->forward(pixels).size(1), conch->features());
        });
    fs::remove_all(dir);
  }
}

TEST(Conch, WhatIsNotACONCHTowerIsRefusedNamingTheFileAndTheTensor) {
  // v1.5's repository holds the tile encoder alone: any other tensor is refused.
  std::string dir = write_conch({"extra_v15", "v1.5", 0, "trunk.blocks.0.attn.q_norm.weight"});
  auto message = error_of([&] { models::load_conch(dir); });
  EXPECT_NE(message.find("CONCH v1.5 '" + dir + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("trunk.blocks.0.attn.q_norm.weight"), std::string::npos) << message;
  fs::remove_all(dir);
  // v1's text tower and caption pooler are left out, but not a trunk tensor no timm ViT has.
  dir = write_conch({"extra_v1", "v1", 0, "visual.trunk.norm_pre.weight"});
  message = error_of([&] { models::load_conch(dir); });
  EXPECT_NE(message.find("visual.trunk.norm_pre.weight"), std::string::npos) << message;
  fs::remove_all(dir);

  // Position embeddings that are no class token + square grid.
  dir = write_conch({"bad_positions"});
  rewrite_tensor(dir, "visual.trunk.pos_embed", [](const torch::Tensor& t) { return t.narrow(1, 0, t.size(1) - 3); });
  message = error_of([&] { models::load_conch(dir); });
  EXPECT_NE(message.find("visual.trunk.pos_embed"), std::string::npos) << message;
  EXPECT_NE(message.find("square grid"), std::string::npos) << message;
  fs::remove_all(dir);

  // A timm ViT is no CONCH, and CONCH is no timm ViT.
  const std::string vit = write_timm_vit({"not_conch"});
  EXPECT_FALSE(models::is_conch(vit));
  message = error_of([&] { models::load_conch(vit); });
  EXPECT_NE(message.find("no CONCH image tower"), std::string::npos) << message;
  fs::remove_all(vit);
}
