// Golden vectors from transformers: a tiny random CLIPModel saved by save_pretrained and its fp32
// get_image_features / get_text_features on fixed inputs (written by scripts/gpu/clip_parity.py --write-golden).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "models/clip/weights.h"
#include "io/safetensors.h"

using namespace pathvlm;

TEST(ClipGolden, EmbeddingsEqualTransformers) {
  const std::string dir = std::string(PATHVLM_SOURCE_DIR) + "/tests/data/clip_golden";
  if (!std::filesystem::exists(dir + "/golden.safetensors")) {
    GTEST_SKIP() << "no golden vectors in " << dir
                 << " yet (owed: run scripts/gpu/clip_parity.py --write-golden where transformers is installed)";
  }
  auto model = models::load_clip(dir + "/model");
  model->eval();
  auto golden = safetensors::File::open(dir + "/golden.safetensors");
  torch::NoGradGuard no_grad;
  auto check = [](const torch::Tensor& ours, const torch::Tensor& expected, const char* what) {
    ASSERT_EQ(ours.sizes(), expected.sizes()) << what;
    const double scale = expected.abs().max().item<double>();
    const double diff = (ours - expected).abs().max().item<double>();
    EXPECT_LE(diff, 1e-4 * scale) << what << ": max abs diff " << diff << ", scale " << scale;
  };
  check(model->encode_image(golden.get("pixel_values")), golden.get("image_embeds"), "image_embeds");
  check(model->encode_text(golden.get("input_ids")), golden.get("text_embeds"), "text_embeds");
}
