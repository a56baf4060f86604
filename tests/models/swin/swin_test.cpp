// CTransPath (models/swin): a random Swin in the names of its published state dict, compared with the numpy reference
// of timm 0.5's swin_tiny with TransPath's ConvStem (swin_reference.py: window attention with the relative position
// bias, the shifted blocks' region mask, patch merging, the token mean); what is taken for CTransPath; the refusals.
// tests/wsi/slide_cli_test.cpp runs it through `pathvlm embed`.
#include <gtest/gtest.h>

#include <filesystem>

#include "models/conch/weights.h"
#include "models/swin/swin_util.h"
#include "models/swin/weights.h"
#include "models/vit/timm_weights.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

TEST(CTransPath, FeaturesMatchTimmsSwinWithTheConvStem) {
  const std::string dir = write_ctranspath("reference");
  ASSERT_TRUE(models::is_ctranspath(dir));
  EXPECT_FALSE(models::is_timm_vit(dir));
  EXPECT_FALSE(models::is_conch(dir));
  const auto pixels = random_pixels(2, kSwinInput);
  const auto expected = swin_reference_features(dir, pixels);
  ASSERT_TRUE(expected.defined());
  ASSERT_EQ(expected.size(1), kSwinFeatures);

  EXPECT_FALSE(moves_random_stream([&] { models::load_ctranspath(dir); }));
  auto swin = models::load_ctranspath(dir);
  const auto& c = swin->config();
  EXPECT_EQ(c.embed_dim, kSwinEmbed);
  EXPECT_EQ(c.depths, std::vector<int>(kSwinStages, kSwinDepth));
  EXPECT_EQ(c.heads, (std::vector<int>{3, 6, 12, 24}));
  EXPECT_EQ(c.window, kSwinWindow);
  EXPECT_EQ(c.features(), kSwinFeatures);
  torch::NoGradGuard no_grad;
  const auto got = swin->forward(normalised(pixels, c.mean, c.std));
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-4)) << (got - expected).abs().max().item<double>();
  fs::remove_all(dir);
}

TEST(CTransPath, EveryTensorOfAnotherShapeIsRefusedOrRuns) {
  const std::string dir = write_ctranspath("lying");
  const auto pixels = normalised(random_pixels(1, kSwinInput));
  expect_lying_shapes_refused(dir, models::load_ctranspath, [&](models::Swin swin) {
    torch::NoGradGuard no_grad;
    EXPECT_EQ(swin->forward(pixels).size(1), swin->config().features());
  });
  fs::remove_all(dir);
}

TEST(CTransPath, WhatIsNotItsSwinIsRefusedNamingTheFileAndTheTensor) {
  std::string dir = write_ctranspath("extra", "layers.0.blocks.0.attn.q_norm.weight");
  auto message = error_of([&] { models::load_ctranspath(dir); });
  EXPECT_NE(message.find("CTransPath '" + dir + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("layers.0.blocks.0.attn.q_norm.weight"), std::string::npos) << message;
  fs::remove_all(dir);

  // A relative position index that is not a window's (another layout's buffer) is refused, not silently replaced.
  dir = write_ctranspath("bad_index");
  rewrite_tensor(dir, "layers.1.blocks.0.attn.relative_position_index",
                 [](const torch::Tensor& index) { return index.flip(1); });
  message = error_of([&] { models::load_ctranspath(dir); });
  EXPECT_NE(message.find("layers.1.blocks.0.attn.relative_position_index"), std::string::npos) << message;
  fs::remove_all(dir);

  const std::string vit = write_timm_vit({"not_swin"});
  EXPECT_FALSE(models::is_ctranspath(vit));
  message = error_of([&] { models::load_ctranspath(vit); });
  EXPECT_NE(message.find("not a Swin with CTransPath's convolutional stem"), std::string::npos) << message;
  fs::remove_all(vit);
}
