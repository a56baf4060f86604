// Random TITAN slide encoders for the tests (models/titan, `pathvlm encode --model TITAN/`): a model.safetensors in
// the names of MahmoodLab/TITAN's (vision_encoder.*, with the text tower's and the caption pooler's tensors it also
// holds), a config.json, and TITAN's slide embeddings from the numpy reference (titan_reference.py).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "io/safetensors.h"
#include "models/vit/timm_vit_util.h"

namespace pathvlm::testing {

// 12 heads of 4 (TITAN's count, whose slopes mix two powers of two) and 8 pooler heads of 6; 2 blocks.
inline constexpr int kTitanInput = 20, kTitanWidth = 48, kTitanDepth = 2, kTitanHidden = 80, kTitanHeads = 12;

struct TitanFiles {
  std::string name;
  nlohmann::json vision_config = {{"num_heads", kTitanHeads}, {"attn_pooler_heads", 8}, {"pos_encode_type", "alibi"}};
  std::string extra_tensor{};    // a vision_encoder tensor TITAN does not have, when not empty
  std::string missing_tensor{};  // a tensor left out, when not empty
};

inline std::string write_titan(const TitanFiles& files) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pathvlm_titan_" + files.name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  torch::manual_seed(std::hash<std::string>{}(files.name) % 1000);
  safetensors::NamedTensors t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale = 0.2, double offset = 0.0) {
    if (name != files.missing_tensor) t.emplace_back(name, torch::randn(shape) * scale + offset);
  };
  const std::string v = "vision_encoder.";
  const int W = kTitanWidth;
  add(v + "patch_embed.0.weight", {W, kTitanInput}, 0.3);
  add(v + "patch_embed.0.bias", {W}, 0.1);
  add(v + "cls_token", {1, 1, W}, 1.0);
  for (int i = 0; i < kTitanDepth; ++i) {
    const std::string b = v + "blocks.modules_list." + std::to_string(i) + ".";
    for (const char* norm : {"norm1", "norm2"}) {
      add(b + norm + ".weight", {W}, 0.1, 1.0);
      add(b + norm + ".bias", {W}, 0.1);
    }
    // Large enough that the scores, not only the ALiBi bias, decide where each token looks.
    add(b + "attn.qkv.weight", {3 * W, W}, 0.4);
    add(b + "attn.qkv.bias", {3 * W});
    add(b + "attn.proj.weight", {W, W}, 0.15);
    add(b + "attn.proj.bias", {W});
    add(b + "mlp.fc1.weight", {kTitanHidden, W}, 0.15);
    add(b + "mlp.fc1.bias", {kTitanHidden});
    add(b + "mlp.fc2.weight", {W, kTitanHidden}, 0.15);
    add(b + "mlp.fc2.bias", {W});
  }
  add(v + "norm.weight", {W}, 0.1, 1.0);
  add(v + "norm.bias", {W}, 0.1);
  const std::string p = v + "attn_pool_contrastive.";
  add(p + "query", {1, W}, 1.0);
  for (const char* norm : {"ln_q", "ln_k"}) {
    add(p + norm + ".weight", {W}, 0.1, 1.0);
    add(p + norm + ".bias", {W}, 0.1);
  }
  add(p + "attn.in_proj_weight", {3 * W, W}, 0.4);
  add(p + "attn.in_proj_bias", {3 * W});
  add(p + "attn.out_proj.weight", {W, W}, 0.2);
  add(p + "attn.out_proj.bias", {W});
  // What the slide embedding leaves out: the caption pooler, the projection into the text space, the text tower.
  add(v + "attn_pool.query", {4, W});
  add(v + "attn_pool.attn.in_proj_weight", {3 * W, W});
  add(v + "proj", {W, W});
  add("text_encoder.token_embedding.weight", {10, W});
  if (!files.extra_tensor.empty()) add(files.extra_tensor, {2});
  safetensors::save((dir / "model.safetensors").string(), t);
  std::ofstream(dir / "config.json") << nlohmann::json{{"model_type", "titan"},
                                                       {"vision_config", files.vision_config}}
                                            .dump(2);
  return dir.string();
}

// One slide's tiles as TRIDENT's .h5 holds them: features [N, D], level-0 corners [N, 2], the tile edge at level 0.
struct TitanSlide {
  torch::Tensor features, coords;
  int64_t patch_size_level0 = 512;
};

// TITAN's embedding of each slide by the numpy reference, [slides, width].
inline torch::Tensor titan_reference_embeddings(const std::string& dir, const std::vector<TitanSlide>& slides) {
  safetensors::NamedTensors t;
  for (size_t i = 0; i < slides.size(); ++i) {
    t.emplace_back("features_" + std::to_string(i), slides[i].features.to(torch::kFloat32));
    t.emplace_back("coords_" + std::to_string(i), slides[i].coords.to(torch::kInt64));
    t.emplace_back("patch_" + std::to_string(i), torch::full({1}, slides[i].patch_size_level0, torch::kInt64));
  }
  const std::string file = dir + "/slides.safetensors";
  safetensors::save(file, t);
  std::string output;
  const int status = run_command(std::string("/usr/bin/python3 ") + PATHVLM_SOURCE_DIR +
                                     "/tests/models/titan/titan_reference.py " + dir + " " + file,
                                 output);
  EXPECT_EQ(status, 0) << output;
  if (status != 0) return {};
  return json_matrix(nlohmann::json::parse(output));
}

// Slides that exercise TITAN's grid: an offset origin and corners off the grid's lines, two tiles in one cell, a
// tile of zero features alone in its cell (background) and one sharing a cell, gaps, a single tile; values exact in
// float16, as .h5 files may store them.
inline std::vector<TitanSlide> titan_test_slides() {
  torch::manual_seed(7);
  auto features = [](int64_t n) { return (torch::randn({n, kTitanInput}) * 2).to(torch::kHalf).to(torch::kFloat32); };
  std::vector<TitanSlide> slides;
  // 1: a 6 x 5 grid of 512-px tiles from (3000, 517), some corners jittered within their cell, holes.
  TitanSlide a;
  std::vector<std::array<int64_t, 2>> corners;
  for (int64_t x = 0; x < 6; ++x)
    for (int64_t y = 0; y < 5; ++y)
      if ((x * 7 + y * 3) % 5 != 0) corners.push_back({3000 + x * 512 + (x * y % 3) * 100, 517 + y * 512});
  corners.push_back({3000 + 512 + 300, 517 + 2 * 512 + 200});  // shares a cell with the tile at (1, 2)
  corners.push_back({3000 + 5 * 512, 517 + 4 * 512 + 10});      // shares (5, 4), zero features
  corners.push_back({3000 + 8 * 512, 517});                      // alone at (8, 0), zero features: background
  a.coords = torch::empty({static_cast<int64_t>(corners.size()), 2}, torch::kInt64);
  for (size_t i = 0; i < corners.size(); ++i) {
    a.coords[i][0] = corners[i][0];
    a.coords[i][1] = corners[i][1];
  }
  a.features = features(a.coords.size(0));
  a.features[-1].zero_();
  a.features[-2].zero_();
  slides.push_back(a);
  // 2: one tile.
  slides.push_back({features(1), torch::tensor({{40960, 20480}}, torch::kInt64), 1024});
  // 3: 40 tiles scattered over a 12 x 12 grid of 224-px tiles (some cells shared).
  TitanSlide c;
  c.coords = torch::randint(0, 12, {40, 2}, torch::kInt64) * 224 + 1000;
  c.features = features(40);
  c.patch_size_level0 = 224;
  slides.push_back(c);
  return slides;
}

}  // namespace pathvlm::testing
