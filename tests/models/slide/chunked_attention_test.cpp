// The chunked (flash-style) attention equals dense softmax attention, forward and gradients, for chunk sizes
// that divide the lengths and ones that do not, with masked keys; queries without keys give zeros.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <limits>

#include "models/slide/chunked_attention.h"

using namespace pathvlm;

namespace {

torch::Tensor dense_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& key_mask) {
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  auto keep = key_mask.view({key_mask.size(0), 1, 1, key_mask.size(1)});
  scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  return torch::matmul(torch::softmax(scores, -1), v);
}

struct Inputs {
  torch::Tensor q, k, v, mask, grad_out;
};

// B = 2, H = 3, L = 10 queries, S = 13 keys of width 8; slide 0 keeps keys 0..8, slide 1 every third key.
Inputs make_inputs(torch::ScalarType dtype) {
  torch::manual_seed(21);
  auto options = torch::TensorOptions().dtype(dtype);
  Inputs in;
  in.q = torch::randn({2, 3, 10, 8}, options).requires_grad_();
  in.k = torch::randn({2, 3, 13, 8}, options).requires_grad_();
  in.v = torch::randn({2, 3, 13, 8}, options).requires_grad_();
  in.mask = torch::zeros({2, 13}, torch::kBool);
  in.mask[0].narrow(0, 0, 9).fill_(true);
  in.mask[1].index_put_({torch::arange(0, 13, 3)}, true);
  in.grad_out = torch::randn({2, 3, 10, 8}, options);
  return in;
}

std::vector<torch::Tensor> gradients(const torch::Tensor& out, const Inputs& in) {
  return torch::autograd::grad({out}, {in.q, in.k, in.v}, {in.grad_out});
}

}  // namespace

TEST(SlideChunkedAttention, EqualsDenseForwardAndGradientsForEveryChunkSize) {
  auto in = make_inputs(torch::kDouble);
  auto dense = dense_attention(in.q, in.k, in.v, in.mask);
  auto dense_grads = gradients(dense, in);
  for (int64_t chunk : {1, 3, 4, 7, 10, 13, 64}) {
    SCOPED_TRACE(chunk);
    auto out = models::slide::chunked_attention(in.q, in.k, in.v, in.mask, chunk);
    EXPECT_EQ(out.scalar_type(), torch::kDouble);
    EXPECT_TRUE(torch::allclose(out, dense, 1e-10, 1e-12));
    auto grads = gradients(out, in);
    for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(grads[i], dense_grads[i], 1e-9, 1e-11)) << i;
    // Masked keys get no gradient at all.
    auto masked = in.mask.logical_not().view({2, 1, 13, 1}).expand_as(grads[1]);
    EXPECT_EQ(grads[1].masked_select(masked).abs().max().item<double>(), 0.0);
    EXPECT_EQ(grads[2].masked_select(masked).abs().max().item<double>(), 0.0);
  }
}

TEST(SlideChunkedAttention, Float32AndNoMaskMatchDense) {
  auto in = make_inputs(torch::kFloat);
  auto all_keys = torch::ones({2, 13}, torch::kBool);
  auto dense = dense_attention(in.q, in.k, in.v, all_keys);
  auto out = models::slide::chunked_attention(in.q, in.k, in.v, torch::Tensor(), 4);
  EXPECT_TRUE(torch::allclose(out, dense, 1e-5, 1e-6));
  auto grads = gradients(out, in), dense_grads = gradients(dense, in);
  for (size_t i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(grads[i], dense_grads[i], 1e-4, 1e-5)) << i;
  // The dispatching entry point is the chunked function on CPU.
  EXPECT_TRUE(torch::equal(models::slide::memory_linear_attention(in.q, in.k, in.v, torch::Tensor(), 4), out));
}

TEST(SlideChunkedAttention, Bfloat16InputsAccumulateInFloat32) {
  auto in = make_inputs(torch::kFloat);
  auto reference = dense_attention(in.q, in.k, in.v, in.mask);
  auto out = models::slide::chunked_attention(in.q.to(torch::kBFloat16), in.k.to(torch::kBFloat16),
                                              in.v.to(torch::kBFloat16), in.mask, 4);
  EXPECT_EQ(out.scalar_type(), torch::kBFloat16);
  EXPECT_LT((out.to(torch::kFloat) - reference).abs().max().item<float>(), 0.05f);
}

TEST(SlideChunkedAttention, QueryWithoutKeysGetsZerosAndFiniteGradients) {
  auto in = make_inputs(torch::kDouble);
  in.mask[1].fill_(false);
  auto out = models::slide::chunked_attention(in.q, in.k, in.v, in.mask, 4);
  EXPECT_EQ(out[1].abs().max().item<double>(), 0.0);
  EXPECT_TRUE(torch::allclose(out[0], dense_attention(in.q, in.k, in.v, in.mask)[0]));
  for (const auto& g : gradients(out, in)) EXPECT_TRUE(torch::isfinite(g).all().item<bool>());
}

TEST(SlideChunkedAttention, RejectsMismatchedShapesAndMasks) {
  auto q = torch::randn({1, 2, 4, 8}), k = torch::randn({1, 2, 5, 8});
  EXPECT_THROW(models::slide::chunked_attention(q, k, torch::randn({1, 2, 6, 8}), {}, 2), std::exception);
  EXPECT_THROW(models::slide::chunked_attention(q, k, k, torch::ones({1, 4}, torch::kBool), 2), std::exception);
  EXPECT_THROW(models::slide::chunked_attention(q, k, k, torch::ones({1, 5}), 2), std::exception);
  EXPECT_THROW(models::slide::chunked_attention(q, k, k, {}, 0), std::exception);
}
