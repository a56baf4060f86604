// models::Attention: GQA against explicitly repeated K/V heads, causality against a plain softmax re-derivation,
// masks, and incremental decoding through the KV cache against full causal attention.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <ATen/record_function.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "models/layers/attention.h"

using namespace pathvlm;
using models::Attention;
using models::AttentionInputs;
using models::AttentionOptions;

namespace {

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

// softmax(q k^T / sqrt(d) + causal) v with every head's own K/V (no grouping), from the module's weights.
torch::Tensor reference_attention(Attention& attn, const torch::Tensor& x, bool causal) {
  const auto B = x.size(0), L = x.size(1), H = attn->options.heads(), D = attn->options.head_dim();
  auto split = [&](const torch::Tensor& t) { return t.view({B, L, H, D}).permute({0, 2, 1, 3}); };
  auto q = split(attn->q_proj(x)), k = split(attn->k_proj(x)), v = split(attn->v_proj(x));
  auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(static_cast<double>(D));
  if (causal) scores = scores + torch::full({L, L}, -1e9).triu(1);
  auto out = torch::matmul(torch::softmax(scores, -1), v).permute({0, 2, 1, 3}).reshape({B, L, H * D});
  return attn->out_proj(out);
}

// Rows of a [kv_heads * D, ...] K/V projection repeated per group of query heads: [heads * D, ...].
torch::Tensor repeat_rows(const torch::Tensor& w, int64_t kv_heads, int64_t repeats) {
  auto shape = w.sizes().vec();
  auto grouped = w.reshape({kv_heads, -1}).repeat_interleave(repeats, 0);
  shape[0] *= repeats;
  return grouped.reshape(shape);
}

// Matrix products (mm or addmm: one per projection; attention itself multiplies batched) made by f.
template <class F>
int count_matrix_products(F&& f) {
  static thread_local int calls = 0;
  calls = 0;
  auto handle = at::addThreadLocalCallback(
      at::RecordFunctionCallback([](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
        if (std::strcmp(fn.name(), "aten::mm") == 0 || std::strcmp(fn.name(), "aten::addmm") == 0) ++calls;
        return nullptr;
      }).scopes({at::RecordScope::FUNCTION}));
  f();
  at::removeCallback(handle);
  return calls;
}

}  // namespace

TEST(Attention, GroupedQueryEqualsExplicitlyRepeatedHeads) {
  torch::manual_seed(0);
  Attention gqa(AttentionOptions(32, 8).kv_heads(2));
  Attention full(AttentionOptions(32, 8));
  ASSERT_EQ(gqa->k_proj->weight.sizes(), (std::vector<int64_t>{8, 32}));  // 2 kv heads of 4
  torch::NoGradGuard no_grad;
  full->q_proj->weight.copy_(gqa->q_proj->weight);
  full->q_proj->bias.copy_(gqa->q_proj->bias);
  full->out_proj->weight.copy_(gqa->out_proj->weight);
  full->out_proj->bias.copy_(gqa->out_proj->bias);
  full->k_proj->weight.copy_(repeat_rows(gqa->k_proj->weight, 2, 4));
  full->k_proj->bias.copy_(repeat_rows(gqa->k_proj->bias, 2, 4));
  full->v_proj->weight.copy_(repeat_rows(gqa->v_proj->weight, 2, 4));
  full->v_proj->bias.copy_(repeat_rows(gqa->v_proj->bias, 2, 4));
  auto x = torch::randn({2, 6, 32});
  for (bool causal : {false, true}) {
    AttentionInputs in;
    in.causal = causal;
    auto expected = reference_attention(full, x, causal);
    EXPECT_LT(max_abs_diff(gqa(x, in), expected), 1e-5) << "causal " << causal;
    EXPECT_LT(max_abs_diff(full(x, in), expected), 1e-5) << "causal " << causal;
  }
}

TEST(Attention, CausalQueriesIgnoreLaterTokens) {
  torch::manual_seed(1);
  Attention attn(AttentionOptions(16, 2).causal(true));
  torch::NoGradGuard no_grad;
  auto x = torch::randn({1, 5, 16});
  auto y = attn(x);
  EXPECT_LT(max_abs_diff(y, reference_attention(attn, x, true)), 1e-5);
  EXPECT_GT(max_abs_diff(y, reference_attention(attn, x, false)), 1e-3);  // causality changes the result
  auto changed = x.clone();
  changed.select(1, 3).normal_();
  auto y2 = attn(changed);
  EXPECT_LT(max_abs_diff(y.slice(1, 0, 3), y2.slice(1, 0, 3)), 1e-6);  // earlier positions unaffected
  EXPECT_GT(max_abs_diff(y.slice(1, 3), y2.slice(1, 3)), 1e-3);
}

TEST(Attention, BoolAndAdditiveMasksAgreeAndCombineWithCausal) {
  torch::manual_seed(2);
  Attention attn(AttentionOptions(16, 4).causal(true));
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 5, 16});
  // Key 1 of the second sequence masked out (e.g. padding), broadcast over heads and queries.
  auto keep = torch::ones({2, 1, 1, 5}, torch::kBool);
  keep[1][0][0][1] = false;
  auto additive = torch::zeros({2, 1, 1, 5}).masked_fill(keep.logical_not(), -INFINITY);
  AttentionInputs with_bool, with_additive;
  with_bool.mask = keep;
  with_additive.mask = additive;
  auto a = attn(x, with_bool), b = attn(x, with_additive);
  EXPECT_LT(max_abs_diff(a, b), 1e-6);
  // Sequence 0 is unmasked: plain causal attention. Sequence 1 differs from position 1 on.
  auto plain = attn(x);
  EXPECT_LT(max_abs_diff(a[0], plain[0]), 1e-6);
  EXPECT_LT(max_abs_diff(a[1].slice(0, 0, 1), plain[1].slice(0, 0, 1)), 1e-6);
  EXPECT_GT(max_abs_diff(a[1].slice(0, 2), plain[1].slice(0, 2)), 1e-4);
}

TEST(Attention, KvCacheOneTokenAtATimeEqualsFullCausalAttention) {
  torch::manual_seed(3);
  // GQA and RoPE too, as LLaMA decodes.
  Attention attn(AttentionOptions(32, 4).kv_heads(2).bias(false).causal(true).out_name("o_proj"));
  torch::NoGradGuard no_grad;
  const int64_t T = 7;
  auto x = torch::randn({2, T, 32});
  models::RotaryEmbedding rope(8, 10000.0);
  auto all = rope.cos_sin(torch::arange(T), torch::kFloat32);
  AttentionInputs full_in;
  full_in.rope = &all;
  auto full = attn(x, full_in);

  // A 3-token prompt, then one token per step.
  models::KvCache cache;
  std::vector<torch::Tensor> steps;
  for (int64_t start = 0; start < T;) {
    const int64_t len = start == 0 ? 3 : 1;
    auto cs = rope.cos_sin(torch::arange(start, start + len), torch::kFloat32);
    AttentionInputs in;
    in.rope = &cs;
    in.cache = &cache;
    steps.push_back(attn(x.slice(1, start, start + len), in));
    start += len;
    EXPECT_EQ(cache.length(), start);
  }
  EXPECT_LT(max_abs_diff(torch::cat(steps, 1), full), 1e-5);

  models::KvCache wrong;
  AttentionInputs in;
  in.cache = &wrong;
  attn(x.slice(1, 0, 1), in);
  EXPECT_THROW(attn(x.slice(0, 0, 1).slice(1, 1, 2), in), Error);  // batch 1 does not continue batch 2
}

TEST(Attention, NamesAndShapesFollowTheOptions) {
  Attention attn(AttentionOptions(24, 6).kv_heads(3).head_dim(8).bias(false).out_name("o_proj"));
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& p : attn->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  const std::map<std::string, std::vector<int64_t>> expected = {{"q_proj.weight", {48, 24}},
                                                                {"k_proj.weight", {24, 24}},
                                                                {"v_proj.weight", {24, 24}},
                                                                {"o_proj.weight", {24, 48}}};
  EXPECT_EQ(shapes, expected);
  EXPECT_EQ(attn(torch::randn({1, 3, 24})).sizes(), (std::vector<int64_t>{1, 3, 24}));
  EXPECT_THROW(Attention(AttentionOptions(24, 6).kv_heads(4)), Error);
  EXPECT_THROW(Attention(AttentionOptions(25, 6)), Error);
  EXPECT_THROW(attn(torch::randn({1, 3, 16})), Error);
}

// The fused q/k/v GEMM is the three projections: same outputs and same gradients of every parameter, with GQA
// widths, with and without biases, and with an adapter on one projection.
TEST(Attention, FusedQkvEqualsThreeProjectionsInValueAndGradient) {
  for (bool bias : {true, false}) {
    for (bool lora : {false, true}) {
      torch::manual_seed(3);
      Attention fused(AttentionOptions(32, 8).kv_heads(2).bias(bias).causal(true));
      Attention separate(AttentionOptions(32, 8).kv_heads(2).bias(bias).causal(true).fused_qkv(false));
      {
        torch::NoGradGuard no_grad;
        for (const auto& p : fused->named_parameters()) separate->named_parameters()[p.key()].copy_(p.value());
      }
      if (lora) {
        fused->v_proj->add_lora(models::LoraOptions(4, 8));
        separate->v_proj->add_lora(models::LoraOptions(4, 8));
        torch::NoGradGuard no_grad;
        fused->v_proj->lora_B.normal_();
        separate->v_proj->lora_A.copy_(fused->v_proj->lora_A);
        separate->v_proj->lora_B.copy_(fused->v_proj->lora_B);
      }
      const auto x = torch::randn({4, 9, 32});  // 36 rows: enough to fuse at width 32
      const auto target = torch::randn({4, 9, 32});
      torch::Tensor y_fused, y_separate;
      // q/k/v in one GEMM, then out_proj; with the adapter, its two GEMMs.
      EXPECT_EQ(count_matrix_products([&] { y_fused = fused(x); }), lora ? 4 : 2);
      y_separate = separate(x);
      EXPECT_LT(max_abs_diff(y_fused, y_separate), 1e-6) << "bias " << bias << " lora " << lora;
      (y_fused * target).sum().backward();
      (y_separate * target).sum().backward();
      // A token at a time (decoding) keeps three GEMMs: concatenating the weights would cost more than it saves.
      EXPECT_EQ(count_matrix_products([&] { fused(x.narrow(1, 0, 1)); }), lora ? 6 : 4);
      auto separate_params = separate->named_parameters();
      for (const auto& p : fused->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
        EXPECT_LT(max_abs_diff(p.value().grad(), separate_params[p.key()].grad()), 1e-5)
            << p.key() << " bias " << bias << " lora " << lora;
      }
    }
  }
}
