// Golden vectors from transformers: a tiny random LlamaForCausalLM (GQA, untied head) saved by save_pretrained,
// its fp32 logits on fixed input ids and its greedy continuation (written by scripts/gpu/llama_golden.py).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "io/safetensors.h"
#include "models/llama/weights.h"

using namespace pathvlm;

TEST(LlamaGolden, LogitsAndGreedyTokensEqualTransformers) {
  const std::string dir = std::string(PATHVLM_SOURCE_DIR) + "/tests/models/llama/golden";
  if (!std::filesystem::exists(dir + "/golden.safetensors")) {
    GTEST_SKIP() << "no golden vectors in " << dir << " yet (owed: run `python3 scripts/gpu/llama_golden.py "
                 << "tests/models/llama/golden` where transformers is installed, then commit the directory)";
  }
  auto model = models::load_llama(dir + "/model", torch::kFloat32, torch::kCPU);
  auto golden = safetensors::File::open(dir + "/golden.safetensors");
  torch::NoGradGuard no_grad;
  const auto input_ids = golden.get("input_ids");
  const auto expected = golden.get("logits");
  const auto logits = model->forward(input_ids);
  ASSERT_EQ(logits.sizes(), expected.sizes());
  const double scale = expected.abs().max().item<double>();
  const double diff = (logits - expected).abs().max().item<double>();
  EXPECT_LE(diff, 1e-4 * scale) << "max abs diff " << diff << ", scale " << scale;

  // Greedy decoding by full forwards (no cache): the argmax of the last position, appended, each step.
  const auto greedy = golden.get("greedy_tokens");
  auto tokens = input_ids;
  for (int64_t step = 0; step < greedy.size(1); ++step) {
    auto next = model->forward(tokens).select(1, tokens.size(1) - 1).argmax(-1, /*keepdim=*/true);
    tokens = torch::cat({tokens, next}, 1);
  }
  EXPECT_TRUE(torch::equal(tokens.narrow(1, input_ids.size(1), greedy.size(1)), greedy))
      << "ours " << tokens << "\ntransformers " << greedy;
}
