// timm ViT tile encoders (models/vit): random weights in timm's names and config.json, for the layouts the
// pathology encoders publish (UNI: LayerScale + GELU MLP; H-optimus / UNI2-h: register tokens, position embeddings
// for the patches only, packed SwiGLU; Virchow2: no pooling, class token + patch mean; an avg-pooled ViT with a
// split SwiGLU and no qkv bias), compared with timm's forward written in numpy (timm_vit_reference.py); what is
// taken for a timm ViT; the refusals. tests/wsi/slide_cli_test.cpp runs one through `pathvlm embed`.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/vit/timm_vit_util.h"
#include "models/vit/timm_weights.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

void expect_matches_timm(const Layout& layout, int features) {
  SCOPED_TRACE(layout.name);
  const std::string dir = write_timm_vit(layout);
  ASSERT_TRUE(models::is_timm_vit(dir));
  const auto pixels = random_pixels(3);
  const auto expected = reference_features(dir, pixels);
  ASSERT_TRUE(expected.defined());
  ASSERT_EQ(expected.size(1), features);

  EXPECT_FALSE(moves_random_stream([&] { models::load_timm_vit(dir); }));
  auto vit = models::load_timm_vit(dir);
  EXPECT_EQ(vit->config().reg_tokens, layout.reg_tokens);
  EXPECT_EQ(vit->config().no_embed_class, layout.no_embed_class);
  EXPECT_EQ(vit->config().mean, kMean);
  torch::NoGradGuard no_grad;
  const auto got = vit->forward(normalised(pixels));
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-4)) << (got - expected).abs().max().item<double>();
  fs::remove_all(dir);
}

}  // namespace

TEST(TimmVit, UniLayoutMatchesTimm) {
  expect_matches_timm({"uni"}, kWidth);
}

TEST(TimmVit, RegisterTokensWithPatchOnlyPositionsAndPackedSwigluMatchTimm) {
  Layout layout{"hoptimus"};
  layout.reg_tokens = 4;
  layout.architecture = "vit_giant_patch14_reg4_dinov2";  // timm's default no_embed_class: true
  layout.no_embed_class = true;  // pathvlm infers it: 16 positions for 16 patches and 5 prefix tokens
  layout.mlp = "packed";
  expect_matches_timm(layout, kWidth);
  layout.name = "uni2";
  layout.reg_tokens = 8;
  layout.write_no_embed_class = true;
  expect_matches_timm(layout, kWidth);
}

TEST(TimmVit, VirchowWithoutPoolingGivesClassTokenAndPatchMean) {
  Layout layout{"virchow2"};
  layout.reg_tokens = 4;
  layout.mlp = "packed";
  layout.global_pool = "";
  expect_matches_timm(layout, 2 * kWidth);
}

TEST(TimmVit, AvgPoolingWithSplitSwigluAndNoQkvBiasMatchesTimm) {
  Layout layout{"avg"};
  layout.mlp = "split";
  layout.layer_scale = false;
  layout.qkv_bias = false;
  layout.global_pool = "avg";
  expect_matches_timm(layout, kWidth);
}

TEST(TimmVit, WhatItCannotRunIsRefusedNamingTheFileAndTheCause) {
  Layout extra{"extra"};
  extra.extra_tensor = true;
  const std::string dir = write_timm_vit(extra);
  auto message = error_of([&] { models::load_timm_vit(dir); });
  EXPECT_NE(message.find(dir), std::string::npos) << message;
  EXPECT_NE(message.find("blocks.0.attn.q_norm.weight"), std::string::npos) << message;

  // An img_size the position embeddings are not for (timm would resample them).
  json config = json::parse(std::ifstream(dir + "/config.json"));
  config["model_args"]["img_size"] = 224;
  std::ofstream(dir + "/config.json") << config.dump();
  message = error_of([&] { models::load_timm_vit(dir); });
  EXPECT_NE(message.find("config.json"), std::string::npos) << message;
  EXPECT_NE(message.find("img_size 224"), std::string::npos) << message;

  // A width with no usual head count and none given.
  config["model_args"].erase("num_heads");
  config["model_args"]["img_size"] = kImage;
  std::ofstream(dir + "/config.json") << config.dump();
  message = error_of([&] { models::load_timm_vit(dir); });
  EXPECT_NE(message.find("num_heads"), std::string::npos) << message;

  // Not a ViT architecture.
  config["architecture"] = "resnet50";
  std::ofstream(dir + "/config.json") << config.dump();
  message = error_of([&] { models::load_timm_vit(dir); });
  EXPECT_NE(message.find("resnet50"), std::string::npos) << message;

  // UNI as published: a pickle, refused with the conversion command.
  fs::remove(dir + "/model.safetensors");
  std::ofstream(dir + "/pytorch_model.bin", std::ios::binary) << std::string("PK\x03\x04", 4) << std::string(64, '\0');
  message = error_of([&] { models::load_timm_vit(dir); });
  EXPECT_NE(message.find("convert_to_safetensors.py"), std::string::npos) << message;
  fs::remove_all(dir);
}

TEST(TimmVit, EveryTensorOfAnotherShapeIsRefusedOrRuns) {
  Layout layout{"lying"};
  layout.reg_tokens = 2;
  layout.mlp = "packed";
  const std::string dir = write_timm_vit(layout);
  const auto pixels = normalised(random_pixels(1));
  expect_lying_shapes_refused(dir, models::load_timm_vit, [&](models::Vit vit) {
    torch::NoGradGuard no_grad;
    EXPECT_EQ(vit->forward(pixels).size(1), vit->config().features());
  });
  fs::remove_all(dir);
}

TEST(TimmVit, OnlyTimmLayoutsAreTakenForTimm) {
  const std::string dir = write_timm_vit({"detect"});
  EXPECT_TRUE(models::is_timm_vit(dir));
  EXPECT_TRUE(models::is_timm_vit(dir + "/model.safetensors"));  // the state dict alone, by its names
  fs::remove(dir + "/config.json");
  EXPECT_TRUE(models::is_timm_vit(dir));
  // A Hugging Face config.json (no timm architecture) and other names are not timm's.
  std::ofstream(dir + "/config.json") << R"({"model_type": "clip", "architectures": ["CLIPModel"]})";
  EXPECT_FALSE(models::is_timm_vit(dir));
  safetensors::save(dir + "/other.safetensors", {{"visual.conv1.weight", torch::zeros({2, 3, 4, 4})}});
  EXPECT_FALSE(models::is_timm_vit(dir + "/other.safetensors"));
  EXPECT_FALSE(models::is_timm_vit("tiny"));  // a CLIP preset
  fs::remove_all(dir);
}
