// apply_lora / merge_lora on a tiny LLaMA: target matching, the adapted model starting equal to the base,
// gradients reaching only the adapters, merged and unmerged forwards agreeing, errors naming the target.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/llama/model.h"
#include "models/lora/apply.h"
#include "test_util.h"

using namespace pathvlm;
using models::LoraOptions;
using pathvlm::testing::error_of;

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

models::LlamaForCausalLM tiny_llama(uint64_t seed) {
  torch::manual_seed(seed);
  return models::LlamaForCausalLM(models::llama_preset("tiny"));
}

torch::Tensor tokens() { return torch::randint(0, 512, {2, 9}, torch::kLong); }

// Every adapter's B drawn at random, as if training had moved it (zero B hides any merge mistake).
void perturb_adapters(torch::nn::Module& m) {
  torch::NoGradGuard no_grad;
  for (const auto& [path, layer] : models::lora_layers(m)) layer->lora_B.normal_(0.0, 0.05);
}

}  // namespace

TEST(Lora, TargetsMatchPathsOrTheirLastNames) {
  EXPECT_TRUE(models::matches_module("q_proj", "model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(models::matches_module("q_proj", "q_proj"));
  EXPECT_FALSE(models::matches_module("q_proj", "model.layers.0.self_attn.qq_proj"));
  EXPECT_FALSE(models::matches_module("proj", "model.layers.0.self_attn.q_proj"));
  EXPECT_TRUE(models::matches_module("self_attn.q_proj", "model.layers.1.self_attn.q_proj"));
  EXPECT_TRUE(models::matches_module("model.layers.*.mlp.*_proj", "model.layers.1.mlp.down_proj"));
  EXPECT_FALSE(models::matches_module("model.layers.0.*", "model.layers.1.mlp.down_proj"));
  EXPECT_TRUE(models::is_lora_parameter("model.layers.0.self_attn.q_proj.lora_A.weight"));
  EXPECT_FALSE(models::is_lora_parameter("model.layers.0.self_attn.q_proj.weight"));
}

TEST(Lora, AdaptsTheChosenLayersAndStartsAtTheBase) {
  auto lm = tiny_llama(1);
  lm->eval();
  const auto x = tokens();
  const auto base = lm->forward(x).detach();
  const auto adapted = models::apply_lora(*lm, {"q_proj", "model.layers.1.mlp.down_proj"}, LoraOptions(4, 8));
  EXPECT_EQ(adapted, (std::vector<std::string>{"model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.q_proj",
                                               "model.layers.1.mlp.down_proj"}));
  std::vector<std::string> lora_names;
  for (const auto& p : lm->named_parameters())
    if (models::is_lora_parameter(p.key())) lora_names.push_back(p.key());
  EXPECT_EQ(lora_names, (std::vector<std::string>{
                            "model.layers.0.self_attn.q_proj.lora_A.weight", "model.layers.0.self_attn.q_proj.lora_B.weight",
                            "model.layers.1.self_attn.q_proj.lora_A.weight", "model.layers.1.self_attn.q_proj.lora_B.weight",
                            "model.layers.1.mlp.down_proj.lora_A.weight", "model.layers.1.mlp.down_proj.lora_B.weight"}));
  auto params = lm->named_parameters();
  EXPECT_EQ(params["model.layers.1.mlp.down_proj.lora_A.weight"].sizes(), (std::vector<int64_t>{4, 176}));
  EXPECT_EQ(params["model.layers.1.mlp.down_proj.lora_B.weight"].sizes(), (std::vector<int64_t>{64, 4}));
  EXPECT_TRUE(torch::equal(lm->forward(x), base));  // B = 0
  // lm_head is a models::Linear too.
  EXPECT_EQ(models::apply_lora(*lm, {"lm_head"}, LoraOptions(2, 2)), (std::vector<std::string>{"lm_head"}));
}

TEST(Lora, OnlyAdaptersReceiveGradients) {
  auto lm = tiny_llama(2);
  models::apply_lora(*lm, {"q_proj", "v_proj", "up_proj"}, LoraOptions(4, 8));
  perturb_adapters(*lm);  // with B = 0, A's gradient is zero too
  for (auto& p : lm->named_parameters()) p.value().requires_grad_(models::is_lora_parameter(p.key()));
  const auto x = tokens();
  auto logits = lm->forward(x);
  torch::nn::functional::cross_entropy(logits.reshape({-1, 512}), x.reshape({-1})).backward();
  int adapters = 0;
  for (const auto& p : lm->named_parameters()) {
    if (models::is_lora_parameter(p.key())) {
      ++adapters;
      ASSERT_TRUE(p.value().grad().defined()) << p.key();
      EXPECT_GT(p.value().grad().abs().max().item<double>(), 0.0) << p.key();
    } else {
      EXPECT_FALSE(p.value().grad().defined()) << p.key();
    }
  }
  EXPECT_EQ(adapters, 2 * 3 * 2);
}

TEST(Lora, MergedAndUnmergedForwardsAgree) {
  auto lm = tiny_llama(3);
  auto plain = tiny_llama(3);
  models::apply_lora(*lm, {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"},
                     LoraOptions(8, 16).dropout(0.05));
  perturb_adapters(*lm);
  lm->eval();
  const auto x = tokens();
  const auto unmerged = lm->forward(x).detach();
  EXPECT_GT(max_abs_diff(unmerged, plain->forward(x)), 1e-3);  // the adapters matter
  EXPECT_EQ(models::merge_lora(*lm), 2 * 7);
  const auto merged = lm->forward(x).detach();
  EXPECT_LT(max_abs_diff(merged, unmerged), 1e-4);
  // Back to the plain parameter set.
  std::vector<std::string> names, plain_names;
  for (const auto& p : lm->named_parameters()) names.push_back(p.key());
  for (const auto& p : plain->named_parameters()) plain_names.push_back(p.key());
  EXPECT_EQ(names, plain_names);
  EXPECT_TRUE(models::lora_layers(*lm).empty());
}

TEST(Lora, ErrorsNameTheTarget) {
  auto lm = tiny_llama(4);
  const auto message = error_of([&] { models::apply_lora(*lm, {"q_proj", "query"}, LoraOptions(4, 8)); });
  EXPECT_NE(message.find("'query' matches no Linear layer"), std::string::npos) << message;
  EXPECT_NE(message.find("q_proj"), std::string::npos) << message;
  EXPECT_NE(message.find("model.layers.0.self_attn.q_proj"), std::string::npos) << message;
  EXPECT_TRUE(models::lora_layers(*lm).empty());  // nothing adapted when a target fails
  models::apply_lora(*lm, {"q_proj"}, LoraOptions(4, 8));
  EXPECT_NE(error_of([&] { models::apply_lora(*lm, {"self_attn.*"}, LoraOptions(4, 8)); })
                .find("'model.layers.0.self_attn.q_proj' has an adapter already"),
            std::string::npos);
}
