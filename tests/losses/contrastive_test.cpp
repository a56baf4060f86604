// CLIP / SigLIP losses on one process: values against the formulas written out here, and the
// feature-cache accumulation against one full-batch pass. Multi-rank equivalence: loss_mpi_test.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "losses/contrastive.h"

using namespace pathvlm;

namespace {

torch::Tensor normalized(torch::Tensor x) { return x / x.norm(2, 1, true); }

// The symmetric InfoNCE written out in double loops.
double clip_loss_by_hand(const torch::Tensor& img, const torch::Tensor& txt, double log_scale) {
  auto s = torch::mm(img.to(torch::kDouble), txt.to(torch::kDouble).t()) * std::exp(log_scale);
  const int64_t n = s.size(0);
  auto a = s.accessor<double, 2>();
  double image_ce = 0, text_ce = 0;
  for (int64_t i = 0; i < n; ++i) {
    double row = 0, col = 0;
    for (int64_t j = 0; j < n; ++j) row += std::exp(a[i][j]), col += std::exp(a[j][i]);
    image_ce += std::log(row) - a[i][i];
    text_ce += std::log(col) - a[i][i];
  }
  return (image_ce / n + text_ce / n) / 2;
}

double siglip_loss_by_hand(const torch::Tensor& img, const torch::Tensor& txt, double log_scale, double bias) {
  auto s = torch::mm(img.to(torch::kDouble), txt.to(torch::kDouble).t());
  const int64_t n = s.size(0);
  auto a = s.accessor<double, 2>();
  double total = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double z = (i == j ? 1 : -1) * (std::exp(log_scale) * a[i][j] + bias);
      total += std::log1p(std::exp(-z));  // -log sigmoid(z)
    }
  return total / n;
}

}  // namespace

TEST(ClipLoss, MatchesFormulaOnFixedFeatures) {
  torch::manual_seed(3);
  auto img = normalized(torch::randn({6, 8}));
  auto txt = normalized(torch::randn({6, 8}));
  for (double ls : {0.0, losses::clip_initial_log_scale(), 4.0}) {
    auto loss = losses::clip_loss(img, txt, torch::tensor(ls), nullptr);
    EXPECT_NEAR(loss.item<double>(), clip_loss_by_hand(img, txt, ls), 1e-5) << "log_scale " << ls;
  }
  // Perfectly aligned, well separated pairs at a high temperature: loss near zero.
  auto eye = torch::eye(4);
  EXPECT_LT(losses::clip_loss(eye, eye, torch::tensor(std::log(100.0)), nullptr).item<double>(), 1e-6);
}

TEST(ClipLoss, InitialTemperatureAndClamp) {
  EXPECT_NEAR(std::exp(losses::clip_initial_log_scale()), 1 / 0.07, 1e-9);
  EXPECT_NEAR(std::exp(losses::max_log_scale()), 100.0, 1e-9);
  EXPECT_NEAR(std::exp(losses::siglip_initial_log_scale()), 10.0, 1e-9);
  EXPECT_EQ(losses::siglip_initial_bias(), -10.0);
}

TEST(ClipLoss, GradientOfTemperatureMatchesFiniteDifference) {
  torch::manual_seed(4);
  auto img = normalized(torch::randn({5, 7})).to(torch::kDouble);
  auto txt = normalized(torch::randn({5, 7})).to(torch::kDouble);
  auto ls = torch::tensor(1.3, torch::kDouble).requires_grad_();
  losses::clip_loss(img, txt, ls, nullptr).backward();
  const double h = 1e-4;
  double numeric = (clip_loss_by_hand(img, txt, 1.3 + h) - clip_loss_by_hand(img, txt, 1.3 - h)) / (2 * h);
  EXPECT_NEAR(ls.grad().item<double>(), numeric, 1e-4);
}

TEST(ClipLoss, SiglipMatchesFormula) {
  torch::manual_seed(5);
  auto img = normalized(torch::randn({5, 8}));
  auto txt = normalized(torch::randn({5, 8}));
  auto ls = torch::tensor(losses::siglip_initial_log_scale());
  auto bias = torch::tensor(losses::siglip_initial_bias());
  EXPECT_NEAR(losses::siglip_loss(img, txt, ls, bias, nullptr).item<double>(),
              siglip_loss_by_hand(img, txt, std::log(10.0), -10.0), 1e-4);
  EXPECT_NEAR(losses::siglip_loss(img, txt, torch::tensor(2.0), torch::tensor(0.5), nullptr).item<double>(),
              siglip_loss_by_hand(img, txt, 2.0, 0.5), 1e-4);
}

TEST(ClipLoss, RejectsMismatchedFeatures) {
  auto a = torch::randn({4, 8}), b = torch::randn({3, 8});
  try {
    losses::clip_loss(a, b, torch::tensor(0.0), nullptr);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("differ in shape"), std::string::npos) << e.what();
  }
}

// Two linear "towers" over fixed inputs: the feature cache over k micro-batches must give the gradients
// of one pass over the full batch, including the temperature's (counted once, not k times).
TEST(ClipLoss, FeatureCacheAccumulationEqualsFullBatch) {
  torch::manual_seed(6);
  const int64_t n = 12;
  auto x_img = torch::randn({n, 10}), x_txt = torch::randn({n, 9});
  for (bool siglip : {false, true}) {
    torch::manual_seed(7);
    torch::nn::Linear image_tower(10, 6), text_tower(9, 6);
    auto log_scale = torch::tensor(2.0).requires_grad_();
    auto bias = torch::tensor(-1.0).requires_grad_();
    auto params = [&] {
      std::vector<torch::Tensor> p = image_tower->parameters();
      for (auto& t : text_tower->parameters()) p.push_back(t);
      p.push_back(log_scale);
      if (siglip) p.push_back(bias);
      return p;
    };
    auto run = [&](size_t k) {
      for (auto& p : params()) p.mutable_grad() = torch::Tensor();
      const int64_t m = n / static_cast<int64_t>(k);
      auto encode = [&](size_t j) {
        auto rows = torch::arange(static_cast<int64_t>(j) * m, static_cast<int64_t>(j + 1) * m);
        return std::make_pair(normalized(image_tower(x_img.index_select(0, rows))),
                              normalized(text_tower(x_txt.index_select(0, rows))));
      };
      auto loss_of = [&](const torch::Tensor& i, const torch::Tensor& t, bool scale_grad) {
        auto s = scale_grad ? log_scale : log_scale.detach();
        auto b = scale_grad ? bias : bias.detach();
        return siglip ? losses::siglip_loss(i, t, s, b, nullptr) : losses::clip_loss(i, t, s, nullptr);
      };
      int backwards = 0;
      auto loss = losses::feature_cache_step(k, encode, loss_of, [&](size_t) { ++backwards; });
      EXPECT_EQ(backwards, static_cast<int>(k));
      std::vector<torch::Tensor> grads;
      for (auto& p : params()) grads.push_back(p.grad().clone());
      return std::make_pair(loss.item<double>(), grads);
    };
    auto [full_loss, full_grads] = run(1);
    for (size_t k : {2, 3, 4}) {
      auto [loss, grads] = run(k);
      EXPECT_NEAR(loss, full_loss, 1e-5) << "k=" << k << " siglip=" << siglip;
      ASSERT_EQ(grads.size(), full_grads.size());
      for (size_t g = 0; g < grads.size(); ++g) {
        EXPECT_TRUE(torch::allclose(grads[g], full_grads[g], 1e-4, 1e-6))
            << "k=" << k << " siglip=" << siglip << " parameter " << g << ": max diff "
            << (grads[g] - full_grads[g]).abs().max().item<double>();
      }
    }
  }
}
