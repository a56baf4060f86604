// AdamW over flat shards against torch::optim::AdamW, fp32 master weights for bf16 parameters, weight-decay
// groups, clipping, schedules, preemption flag.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <csignal>

#include "core/error.h"
#include "train/adamw.h"
#include "train/preemption.h"
#include "train/schedule.h"

using namespace pathvlm::train;

TEST(AdamW, MatchesTorchAdamWOnAFlatShard) {
  torch::manual_seed(0);
  // Two "parameters" viewed from one flat buffer, as the Reducer lays them out.
  auto flat = torch::randn({30});
  auto flat_grad = torch::zeros({30});
  auto w_ref = flat.narrow(0, 0, 20).view({4, 5}).clone().requires_grad_(true);
  auto b_ref = flat.narrow(0, 20, 10).clone().requires_grad_(true);
  torch::optim::AdamW reference({w_ref}, torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0.1));
  torch::optim::AdamW reference_nodecay({b_ref}, torch::optim::AdamWOptions(1e-2).betas({0.9, 0.95}).eps(1e-8).weight_decay(0));

  AdamW opt({0.9, 0.95, 1e-8, 0.1});
  opt.add("0", flat.narrow(0, 0, 20), flat_grad.narrow(0, 0, 20), /*decay=*/true);
  opt.add("20", flat.narrow(0, 20, 10), flat_grad.narrow(0, 20, 10), /*decay=*/false);
  for (int step = 0; step < 10; ++step) {
    auto g = torch::randn({30});
    flat_grad.copy_(g);
    w_ref.mutable_grad() = g.narrow(0, 0, 20).view({4, 5}).clone();
    b_ref.mutable_grad() = g.narrow(0, 20, 10).clone();
    reference.step();
    reference_nodecay.step();
    opt.step(1e-2);
  }
  EXPECT_EQ(opt.step_count(), 10);
  EXPECT_TRUE(torch::allclose(flat.narrow(0, 0, 20).view({4, 5}), w_ref, 1e-6, 1e-7));
  EXPECT_TRUE(torch::allclose(flat.narrow(0, 20, 10), b_ref, 1e-6, 1e-7));
}

TEST(AdamW, StateRoundTripsAndContinuesIdentically) {
  auto make = [](torch::Tensor p, torch::Tensor g) {
    AdamW opt({0.9, 0.99, 1e-8, 0.05});
    opt.add("0", p, g, true);
    return opt;
  };
  torch::manual_seed(1);
  auto p1 = torch::randn({16}), g1 = torch::randn({16});
  auto p2 = p1.clone(), g2 = g1.clone();
  auto a = make(p1, g1);
  for (int i = 0; i < 3; ++i) a.step(1e-3);
  AdamW b = make(p2, g2);
  p2.copy_(p1);
  std::vector<std::pair<std::string, torch::Tensor>> saved;
  for (auto& [k, t] : a.state()) saved.emplace_back(k, t.clone());
  b.load_state(saved, a.step_count());
  a.step(1e-3);
  b.step(1e-3);
  EXPECT_TRUE(torch::equal(p1, p2));
  // Missing tensors are refused by name.
  saved.pop_back();
  try {
    b.load_state(saved, 3);
    FAIL() << "expected an error";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("0.exp_avg_sq"), std::string::npos) << e.what();
  }
}

// The point of master weights: with lr 1e-4 on weights in [1, 2) every Adam update (|step| <= ~lr) is under
// half a bf16 ulp there (2^-8 = 0.0039), so updating the bf16 values directly would round each one away. With
// the fp32 master the bf16 parameter is exactly fp32 AdamW's result rounded, after many steps too.
TEST(AdamW, Bf16ParametersWithMasterMatchFp32AdamWToRounding) {
  torch::manual_seed(3);
  const auto init = (1.0 + torch::rand({64})).to(torch::kBFloat16);  // exactly representable in both dtypes
  EXPECT_TRUE(torch::equal(init - 1e-4, init)) << "the update would be lost in bf16 arithmetic";
  auto ref = init.to(torch::kFloat32), ref_grad = torch::zeros({64});
  auto param = init.clone(), grad = torch::zeros({64}, torch::kBFloat16);
  AdamW fp32({0.9, 0.95, 1e-8, 0.1}), bf16({0.9, 0.95, 1e-8, 0.1});
  fp32.add("0", ref, ref_grad, /*decay=*/true);
  bf16.add("0", param, grad, /*decay=*/true);
  for (int step = 0; step < 300; ++step) {
    // Positive gradients (bf16 values, so both optimizers see the same ones): the weights drift down steadily.
    grad.copy_((0.5 + torch::rand({64})).to(torch::kBFloat16));
    ref_grad.copy_(grad);
    fp32.step(1e-4);
    bf16.step(1e-4);
  }
  EXPECT_EQ(param.scalar_type(), torch::kBFloat16);
  EXPECT_TRUE(torch::equal(param, ref.to(torch::kBFloat16)));
  // It moved by several bf16 ulps (0.0078 in [1, 2)), every element.
  EXPECT_GT((init.to(torch::kFloat32) - param.to(torch::kFloat32)).min().item<float>(), 3 * 0.0078f);
  // The master is checkpoint state, next to the fp32 moments.
  auto state = bf16.state();
  ASSERT_EQ(state.size(), 3u);
  EXPECT_EQ(state[2].first, "0.master");
  EXPECT_TRUE(torch::equal(state[2].second, ref));
  EXPECT_EQ(fp32.state().size(), 2u);
}

TEST(AdamW, MasterWeightsRoundTripAndRestoreTheParameter) {
  torch::manual_seed(4);
  auto p1 = torch::randn({16}).to(torch::kBFloat16), g1 = torch::randn({16}).to(torch::kBFloat16);
  auto p2 = torch::zeros({16}, torch::kBFloat16), g2 = g1.clone();
  AdamW a({0.9, 0.99, 1e-8, 0.05}), b({0.9, 0.99, 1e-8, 0.05});
  a.add("0", p1, g1, true);
  b.add("0", p2, g2, true);
  for (int i = 0; i < 3; ++i) a.step(1e-3);
  std::vector<std::pair<std::string, torch::Tensor>> saved;
  for (auto& [k, t] : a.state()) saved.emplace_back(k, t.clone());
  b.load_state(saved, a.step_count());
  EXPECT_TRUE(torch::equal(p1, p2));  // the parameter is the restored master rounded
  a.step(1e-3);
  b.step(1e-3);
  EXPECT_TRUE(torch::equal(p1, p2));
  // A checkpoint without masters (written by an fp32 run) is refused by name.
  saved.pop_back();
  try {
    b.load_state(saved, 3);
    FAIL() << "expected an error";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("'0.master' is missing"), std::string::npos) << e.what();
  }
}

TEST(AdamW, AFlaggedStepChangesNothingAndAnUnflaggedOneIsAPlainStep) {
  torch::manual_seed(5);
  auto p1 = torch::randn({8}), g1 = torch::randn({8});
  auto p2 = p1.clone(), g2 = g1.clone();
  AdamW flagged({0.9, 0.99, 1e-8, 0.1}), plain({0.9, 0.99, 1e-8, 0.1});
  flagged.add("0", p1, g1, true);
  plain.add("0", p2, g2, true);
  const auto yes = torch::ones({}), no = torch::zeros({});
  flagged.step(1e-2, no);
  plain.step(1e-2);
  EXPECT_TRUE(torch::equal(p1, p2));
  auto before = p1.clone();
  std::vector<torch::Tensor> moments;
  for (auto& [k, t] : flagged.state()) moments.push_back(t.clone());
  g1.fill_(std::numeric_limits<float>::quiet_NaN());
  flagged.step(1e-2, yes);
  EXPECT_TRUE(torch::equal(p1, before));
  size_t i = 0;
  for (auto& [k, t] : flagged.state()) EXPECT_TRUE(torch::equal(t, moments[i++])) << k;
  EXPECT_EQ(flagged.step_count(), 1);  // the skipped step is not counted: bias correction continues from 1
  g1.copy_(g2);
  flagged.step(1e-2, no);
  plain.step(1e-2);
  EXPECT_TRUE(torch::equal(p1, p2));
  EXPECT_EQ(flagged.step_count(), 2);
}

TEST(AdamW, WeightDecayGroups) {
  auto matrix = torch::zeros({3, 3}), vector = torch::zeros({3});
  EXPECT_TRUE(wants_weight_decay("blocks.0.mlp.fc.weight", matrix, {}));
  EXPECT_FALSE(wants_weight_decay("blocks.0.mlp.fc.bias", vector, {}));
  EXPECT_FALSE(wants_weight_decay("ln_f.weight", vector, {}));
  EXPECT_FALSE(wants_weight_decay("logit_scale", torch::zeros({}), {}));
  EXPECT_FALSE(wants_weight_decay("tok_embed.weight", matrix, {"embed"}));
  EXPECT_TRUE(wants_weight_decay("tok_embed.weight", matrix, {"pos_"}));
}

TEST(ClipGradNorm, ScalesToTheGlobalNorm) {
  auto a = torch::full({4}, 3.0), b = torch::full({9}, 4.0 / 3.0);  // |a|^2 = 36, |b|^2 = 16
  const double norm = clip_grad_norm({a, b}, 1.0, nullptr).item<double>();
  EXPECT_NEAR(norm, std::sqrt(52.0), 1e-6);
  auto sq = a.pow(2).sum() + b.pow(2).sum();
  EXPECT_NEAR(std::sqrt(sq.item<double>()), 1.0, 1e-5);
  // Below the limit nothing changes; a non-finite norm is returned untouched.
  auto c = torch::full({2}, 0.1);
  EXPECT_NEAR(clip_grad_norm({c}, 1.0, nullptr).item<double>(), std::sqrt(0.02), 1e-7);
  EXPECT_FLOAT_EQ(c[0].item<float>(), 0.1f);
  auto d = torch::tensor({1.0f, std::numeric_limits<float>::quiet_NaN()});
  EXPECT_TRUE(std::isnan(clip_grad_norm({d}, 1.0, nullptr).item<double>()));
}

TEST(Schedule, WarmupCosine) {
  OptimConfig o;
  o.lr = 1.0, o.warmup_steps = 4, o.schedule = "cosine", o.min_lr_ratio = 0.1;
  Schedule s(o, 15);
  EXPECT_DOUBLE_EQ(s.lr(0), 0.25);
  EXPECT_DOUBLE_EQ(s.lr(3), 1.0);
  EXPECT_DOUBLE_EQ(s.lr(4), 1.0);
  EXPECT_NEAR(s.lr(14), 0.1, 1e-12);  // reaches min at the last update
  EXPECT_NEAR(s.lr(9), 0.55, 1e-12);   // halfway
  for (int i = 5; i < 15; ++i) EXPECT_LT(s.lr(i), s.lr(i - 1));
}

TEST(Schedule, ConstantAndCooldown) {
  OptimConfig o;
  o.lr = 2.0, o.warmup_steps = 2, o.schedule = "constant";
  Schedule c(o, 10);
  EXPECT_DOUBLE_EQ(c.lr(0), 1.0);
  EXPECT_DOUBLE_EQ(c.lr(9), 2.0);
  o.schedule = "constant_cooldown", o.cooldown_steps = 4, o.min_lr_ratio = 0.0;
  Schedule cd(o, 10);
  EXPECT_DOUBLE_EQ(cd.lr(5), 2.0);
  EXPECT_DOUBLE_EQ(cd.lr(6), 1.5);
  EXPECT_DOUBLE_EQ(cd.lr(9), 0.0);
  o.cooldown_steps = 9;
  EXPECT_THROW(Schedule(o, 10), pathvlm::Error);
}

TEST(Preemption, SignalsOnlySetTheFlag) {
  install_preemption_handlers();
  clear_preemption();
  EXPECT_EQ(preemption_signal(), 0);
  std::raise(SIGUSR1);
  EXPECT_EQ(preemption_signal(), SIGUSR1);
  clear_preemption();
  std::raise(SIGTERM);
  EXPECT_EQ(preemption_signal(), SIGTERM);
  clear_preemption();
}
