// Multi-rank contrastive losses, run under mpirun with 2 and 3 ranks (tests/losses/mpi.cmake).
// Every rank builds the same global batch and the same towers, computes the single-process reference on
// the whole batch itself, then the distributed version on its share, and compares.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/dist_test_util.h"
#include "losses/contrastive.h"

using namespace pathvlm;

namespace {

dist::Comm& world() { return dist::testing::world_comm(); }

torch::Tensor normalized(const torch::Tensor& x) { return x / x.norm(2, 1, true); }

torch::Tensor rank_mean(torch::Tensor t) {
  t = t.contiguous().clone();
  world().allreduce(t, dist::ReduceOp::Avg);
  return t;
}

// Two linear towers, a temperature and a SigLIP bias; the same on every rank (seeded).
struct Towers {
  torch::nn::Linear image{nullptr}, text{nullptr};
  torch::Tensor log_scale, bias;
  explicit Towers(uint64_t seed) {
    torch::manual_seed(seed);
    image = torch::nn::Linear(10, 6);
    text = torch::nn::Linear(9, 6);
    log_scale = torch::tensor(2.0).requires_grad_();
    bias = torch::tensor(-1.5).requires_grad_();
  }
  std::vector<torch::Tensor> params(bool siglip) {
    auto p = image->parameters();
    for (auto& t : text->parameters()) p.push_back(t);
    p.push_back(log_scale);
    if (siglip) p.push_back(bias);
    return p;
  }
  torch::Tensor loss(const torch::Tensor& img, const torch::Tensor& txt, bool siglip, dist::Comm* comm,
                     bool scale_grad = true) {
    auto s = scale_grad ? log_scale : log_scale.detach();
    auto b = scale_grad ? bias : bias.detach();
    return siglip ? losses::siglip_loss(img, txt, s, b, comm) : losses::clip_loss(img, txt, s, comm);
  }
};

struct Result {
  double loss;
  std::vector<torch::Tensor> grads;
};

Result grads_of(Towers& t, const torch::Tensor& loss, bool siglip) {
  loss.backward();
  Result r{loss.item<double>(), {}};
  for (auto& p : t.params(siglip)) r.grads.push_back(p.grad().clone());
  return r;
}

void expect_close(const std::vector<torch::Tensor>& got, const std::vector<torch::Tensor>& want, const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_TRUE(torch::allclose(got[i], want[i], 1e-4, 1e-6))
        << what << ": parameter " << i << " on rank " << world().rank() << ", max diff "
        << (got[i] - want[i]).abs().max().item<double>();
  }
}

}  // namespace

// W ranks x batch b against 1 process x batch W*b: the same loss (rank mean) and, after averaging over
// ranks as the Reducer does, the same gradients for towers and temperature; each rank's feature gradient
// is W times the global-loss gradient of its rows (the gradient of the sum of the ranks' losses).
TEST(MpiClipLoss, RanksTimesBatchEqualsOneProcessWithGlobalBatch) {
  const int w = world().world_size(), r = world().rank();
  ASSERT_GE(w, 2);
  const int64_t b = 4, n = b * w;
  torch::manual_seed(11);
  auto x_img = torch::randn({n, 10}), x_txt = torch::randn({n, 9});
  auto mine = torch::arange(r * b, (r + 1) * b);
  for (bool siglip : {false, true}) {
    Towers ref(21);
    auto ref_img = normalized(ref.image(x_img)), ref_txt = normalized(ref.text(x_txt));
    ref_img.retain_grad(), ref_txt.retain_grad();
    auto want = grads_of(ref, ref.loss(ref_img, ref_txt, siglip, nullptr), siglip);

    Towers t(21);
    auto img = normalized(t.image(x_img.index_select(0, mine)));
    auto txt = normalized(t.text(x_txt.index_select(0, mine)));
    img.retain_grad(), txt.retain_grad();
    auto got = grads_of(t, t.loss(img, txt, siglip, &world()), siglip);

    EXPECT_NEAR(rank_mean(torch::tensor(got.loss)).item<double>(), want.loss, 1e-5) << "siglip=" << siglip;
    std::vector<torch::Tensor> averaged;
    for (auto& g : got.grads) averaged.push_back(rank_mean(g));
    expect_close(averaged, want.grads, siglip ? "siglip" : "clip");
    EXPECT_TRUE(torch::allclose(img.grad(), w * ref_img.grad().index_select(0, mine), 1e-4, 1e-7))
        << "image feature gradient, siglip=" << siglip;
    EXPECT_TRUE(torch::allclose(txt.grad(), w * ref_txt.grad().index_select(0, mine), 1e-4, 1e-7))
        << "text feature gradient, siglip=" << siglip;
  }
}

// Feature-cache accumulation across ranks: W ranks x k micro-batches of m equals one process with the
// whole W*k*m batch.
TEST(MpiClipLoss, FeatureCacheAcrossRanksEqualsGlobalBatch) {
  const int w = world().world_size(), r = world().rank();
  const int64_t m = 2, k = 3, n = m * k * w;
  torch::manual_seed(12);
  auto x_img = torch::randn({n, 10}), x_txt = torch::randn({n, 9});
  for (bool siglip : {false, true}) {
    Towers ref(22);
    auto want = grads_of(ref, ref.loss(normalized(ref.image(x_img)), normalized(ref.text(x_txt)), siglip, nullptr),
                         siglip);
    Towers t(22);
    auto encode = [&](size_t j) {
      auto rows = torch::arange(r * m * k + static_cast<int64_t>(j) * m, r * m * k + static_cast<int64_t>(j + 1) * m);
      return std::make_pair(normalized(t.image(x_img.index_select(0, rows))),
                            normalized(t.text(x_txt.index_select(0, rows))));
    };
    auto loss_of = [&](const torch::Tensor& i, const torch::Tensor& x, bool scale_grad) {
      return t.loss(i, x, siglip, &world(), scale_grad);
    };
    auto loss = losses::feature_cache_step(k, encode, loss_of, [](size_t) {});
    EXPECT_NEAR(rank_mean(loss).item<double>(), want.loss, 1e-5);
    std::vector<torch::Tensor> averaged;
    for (auto& p : t.params(siglip)) averaged.push_back(rank_mean(p.grad()));
    expect_close(averaged, want.grads, siglip ? "siglip feature cache" : "clip feature cache");
  }
}
