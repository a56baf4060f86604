// models::Linear: torch::nn::Linear's initialisation bit for bit (same draws from the global generator), the
// LoRA adapter's names, initialisation, formula, dropout and merge.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "models/layers/linear.h"
#include "test_util.h"

using namespace pathvlm;
using models::Linear;
using models::LoraOptions;
using pathvlm::testing::error_of;

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

std::vector<std::string> names(torch::nn::Module& m) {
  std::vector<std::string> out;
  for (const auto& p : m.named_parameters()) out.push_back(p.key());
  return out;
}

}  // namespace

TEST(Linear, InitialisesAndDrawsLikeTorchLinear) {
  for (bool bias : {true, false}) {
    torch::manual_seed(11);
    torch::nn::Linear reference(torch::nn::LinearOptions(24, 40).bias(bias));
    const auto reference_next = torch::rand({4});
    torch::manual_seed(11);
    Linear ours(24, 40, bias);
    const auto ours_next = torch::rand({4});
    EXPECT_TRUE(torch::equal(ours->weight, reference->weight)) << bias;
    EXPECT_EQ(ours->bias.defined(), bias);
    if (bias) {
      EXPECT_TRUE(torch::equal(ours->bias, reference->bias));
    }
    EXPECT_TRUE(torch::equal(ours_next, reference_next)) << "the generator advanced differently, bias " << bias;
    EXPECT_EQ(names(*ours), bias ? (std::vector<std::string>{"weight", "bias"}) : std::vector<std::string>{"weight"});
    const auto x = torch::randn({3, 5, 24});
    EXPECT_TRUE(torch::equal(ours(x), reference(x)));
  }
}

TEST(Linear, SkipWeightInitDrawsNothingAndEndsWithItsScope) {
  EXPECT_FALSE(pathvlm::testing::moves_random_stream([] {
    const models::SkipWeightInit skip;
    const models::SkipWeightInit nested_off(false);  // an inner `false` does not undo an outer skip
    Linear skipped(64, 32, /*bias=*/true);
    EXPECT_EQ(skipped->weight.sizes(), (std::vector<int64_t>{32, 64}));
    EXPECT_EQ(skipped->bias.sizes(), (std::vector<int64_t>{32}));
    auto embedding = models::make_embedding(100, 16);
    EXPECT_EQ(embedding->weight.sizes(), (std::vector<int64_t>{100, 16}));
    EXPECT_TRUE(embedding->weight.requires_grad());
  })) << "a skipped layer drew random numbers";
  torch::manual_seed(5);
  Linear after(8, 8);
  auto embedding_after = models::make_embedding(10, 4);
  torch::manual_seed(5);
  torch::nn::Linear reference(8, 8);
  torch::nn::Embedding reference_embedding(10, 4);
  EXPECT_TRUE(torch::equal(after->weight, reference->weight)) << "initialisation stayed off after the scope";
  EXPECT_TRUE(torch::equal(embedding_after->weight, reference_embedding->weight)) << "not torch's initialisation";
}

TEST(Linear, LoraStartsAtTheBaseAndFollowsItsFormula) {
  torch::manual_seed(3);
  Linear layer(16, 12);
  const auto x = torch::randn({2, 7, 16});
  const auto base = layer(x).detach();
  layer->add_lora(LoraOptions(4, 8));
  EXPECT_EQ(names(*layer), (std::vector<std::string>{"weight", "bias", "lora_A.weight", "lora_B.weight"}));
  EXPECT_EQ(layer->lora_A.sizes(), (std::vector<int64_t>{4, 16}));
  EXPECT_EQ(layer->lora_B.sizes(), (std::vector<int64_t>{12, 4}));
  EXPECT_TRUE(torch::equal(layer->lora_B, torch::zeros({12, 4})));
  // PEFT's A: kaiming-uniform with a = sqrt(5) over fan_in 16, bound sqrt(6 / ((1 + 5) * 16)) = 1/4.
  EXPECT_LE(layer->lora_A.abs().max().item<double>(), 0.25);
  EXPECT_GT(layer->lora_A.abs().max().item<double>(), 0.2);
  EXPECT_TRUE(torch::equal(layer(x), base));

  torch::NoGradGuard no_grad;
  layer->lora_B.normal_();
  const auto expected = base + torch::matmul(torch::matmul(x, layer->lora_A.t()), layer->lora_B.t()) * (8.0 / 4.0);
  EXPECT_LT(max_abs_diff(layer(x), expected), 1e-5);

  Linear rs(16, 12);
  rs->add_lora(LoraOptions(4, 8).use_rslora(true));
  EXPECT_DOUBLE_EQ(rs->lora_options().scaling(), 8.0 / 2.0);
}

TEST(Linear, LoraDropoutOnlyWhileTraining) {
  torch::manual_seed(5);
  Linear layer(16, 8, /*bias=*/false);
  layer->add_lora(LoraOptions(2, 2).dropout(0.5));
  torch::NoGradGuard no_grad;
  layer->lora_B.normal_();
  const auto x = torch::randn({4, 16});
  const auto full = torch::matmul(x, layer->weight.t()) +
                    torch::matmul(torch::matmul(x, layer->lora_A.t()), layer->lora_B.t());
  layer->eval();
  EXPECT_LT(max_abs_diff(layer(x), full), 1e-5);
  layer->train();
  EXPECT_GT(max_abs_diff(layer(x), full), 1e-3);
}

TEST(Linear, MergeFoldsTheAdapterIntoTheWeight) {
  torch::manual_seed(7);
  Linear layer(32, 20);
  layer->add_lora(LoraOptions(8, 16).dropout(0.1));
  {
    torch::NoGradGuard no_grad;
    layer->lora_B.normal_(0.0, 0.1);
  }
  layer->eval();
  const auto x = torch::randn({3, 32});
  const auto unmerged = layer(x).detach();
  const auto expected_weight = (layer->weight + torch::matmul(layer->lora_B, layer->lora_A) * 2.0).detach();
  layer->merge_lora();
  EXPECT_FALSE(layer->has_lora());
  EXPECT_FALSE(layer->lora_A.defined());
  EXPECT_EQ(names(*layer), (std::vector<std::string>{"weight", "bias"}));
  EXPECT_LT(max_abs_diff(layer->weight, expected_weight), 1e-6);
  EXPECT_LT(max_abs_diff(layer(x), unmerged), 1e-5);
}

TEST(Linear, LoraErrors) {
  Linear layer(8, 8);
  EXPECT_NE(error_of([&] { layer->add_lora(LoraOptions(0, 8)); }).find("rank r 0"), std::string::npos);
  EXPECT_NE(error_of([&] { layer->merge_lora(); }).find("has no LoRA adapter"), std::string::npos);
  layer->add_lora(LoraOptions(2, 4));
  EXPECT_NE(error_of([&] { layer->add_lora(LoraOptions(2, 4)); }).find("already has a LoRA adapter"),
            std::string::npos);
}
