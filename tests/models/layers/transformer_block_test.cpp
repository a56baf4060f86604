// The shared pre-norm block: LLaMA-style configuration (names, RMSNorm, SwiGLU, GQA) against the block formula
// written out from its children, and residual dropout only while training.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <set>

#include "models/layers/gated_mlp.h"
#include "models/layers/transformer_block.h"

using namespace pathvlm;
using models::AttentionOptions;
using models::TransformerBlock;
using models::TransformerBlockOptions;

TEST(TransformerBlock, LlamaConfigurationNamesAndFormula) {
  torch::manual_seed(0);
  TransformerBlock block(
      TransformerBlockOptions(
          AttentionOptions(32, 4).kv_heads(2).bias(false).causal(true).out_name("o_proj"))
          .mlp_hidden(48)
          .mlp_act("swiglu")
          .norm(models::NormKind::rms_norm)
          .norm_eps(1e-6));
  std::set<std::string> names;
  for (const auto& p : block->named_parameters()) names.insert(p.key());
  const std::set<std::string> expected = {
      "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
      "mlp.gate_proj.weight",    "mlp.up_proj.weight",      "mlp.down_proj.weight",    "input_layernorm.weight",
      "post_attention_layernorm.weight"};
  EXPECT_EQ(names, expected);

  torch::NoGradGuard no_grad;
  for (auto& p : block->parameters()) {
    if (p.dim() == 1) p.uniform_(0.5, 1.5);  // non-trivial norm weights
  }
  auto x = torch::randn({2, 5, 32});
  auto h = x + block->self_attn(block->norm1.forward(x));
  auto expected_out = h + block->mlp.get<models::GatedMlp>()(block->norm2.forward(h));
  EXPECT_TRUE(torch::equal(block(x), expected_out));
}

TEST(TransformerBlock, ResidualDropoutOnlyWhileTraining) {
  torch::manual_seed(1);
  TransformerBlock block(TransformerBlockOptions(AttentionOptions(16, 2)).dropout(0.5));
  TransformerBlock plain(TransformerBlockOptions(AttentionOptions(16, 2)));
  {
    torch::NoGradGuard no_grad;
    auto from = block->parameters();
    auto to = plain->parameters();
    for (size_t i = 0; i < from.size(); ++i) to[i].copy_(from[i]);
  }
  auto x = torch::randn({1, 4, 16});
  EXPECT_FALSE(torch::allclose(block(x), plain(x)));
  block->eval();
  EXPECT_TRUE(torch::equal(block(x), plain(x)));
}
