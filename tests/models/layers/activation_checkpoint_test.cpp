// Activation checkpointing: same outputs and gradients as the plain forward, with dropout (RNG restored),
// the function really recomputed in backward, and the caller's RNG stream left as it was.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/layers/activation_checkpoint.h"
#include "models/llama/model.h"

using namespace pathvlm;

TEST(ActivationCheckpoint, SameGradientsWithDropoutAndRecomputes) {
  torch::manual_seed(3);
  auto lin = torch::nn::Linear(8, 8);
  auto x = torch::randn({4, 8}, torch::requires_grad());
  int calls = 0;
  auto fn = [&](const torch::Tensor& h) {
    ++calls;
    return torch::dropout(torch::gelu(lin(h)), 0.5, /*train=*/true) * 2.0;
  };

  torch::manual_seed(11);
  auto plain = fn(x);
  plain.pow(2).sum().backward();
  auto plain_x_grad = x.grad().clone(), plain_w_grad = lin->weight.grad().clone();
  auto after_plain = torch::rand({1});  // the RNG stream after the forward
  x.mutable_grad().zero_();
  lin->weight.mutable_grad().zero_();

  torch::manual_seed(11);
  calls = 0;
  auto ckpt = models::checkpoint(fn, x);
  auto after_ckpt = torch::rand({1});
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(torch::equal(ckpt, plain));
  EXPECT_TRUE(torch::equal(after_ckpt, after_plain));
  ckpt.pow(2).sum().backward();
  EXPECT_EQ(calls, 2);  // recomputed in backward
  EXPECT_TRUE(torch::allclose(x.grad(), plain_x_grad));
  EXPECT_TRUE(torch::allclose(lin->weight.grad(), plain_w_grad));
}

TEST(ActivationCheckpoint, NoGradModeIsAPlainCall) {
  torch::NoGradGuard no_grad;
  int calls = 0;
  auto y = models::checkpoint([&](const torch::Tensor& h) { ++calls; return h * 3; }, torch::ones({2}));
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(y.requires_grad());
  EXPECT_FLOAT_EQ(y[1].item<float>(), 3.0f);
}

TEST(ActivationCheckpoint, LlamaLayersGiveTheSameLossAndGradients) {
  const auto config = models::llama_preset("tiny");
  auto tokens = torch::randint(config.vocab_size, {3, 24}, torch::kLong);
  auto run = [&](bool checkpointed) {
    torch::manual_seed(5);
    models::LlamaOptions options;
    options.checkpoint_layers = checkpointed;
    models::LlamaForCausalLM model(config, options);
    auto loss = model->forward(tokens).logsumexp(-1).mean();
    loss.backward();
    std::vector<torch::Tensor> grads{loss.detach()};
    for (auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  auto plain = run(false), ckpt = run(true);
  ASSERT_EQ(plain.size(), ckpt.size());
  EXPECT_TRUE(torch::equal(plain[0], ckpt[0]));
  for (size_t i = 1; i < plain.size(); ++i) EXPECT_TRUE(torch::allclose(plain[i], ckpt[i], 1e-5, 1e-6)) << i;
}
