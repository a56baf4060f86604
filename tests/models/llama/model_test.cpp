// The LLaMA causal LM against an independent re-derivation of its arithmetic from the named parameters (plain
// torch ops in fp64), activation checkpointing, and incremental decoding with a KV cache and left padding.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <map>
#include <string>

#include "core/error.h"
#include "llama_test_util.h"
#include "models/llama/model.h"

using namespace pathvlm;
using models::LlamaConfig;
using models::LlamaForCausalLM;
using pathvlm::testing::random_llama;
using pathvlm::testing::tiny_llama_config;

namespace {

using Params = std::map<std::string, torch::Tensor>;

Params params_fp64(LlamaForCausalLM& model) {
  Params p;
  for (const auto& item : model->named_parameters()) p[item.key()] = item.value().detach().to(torch::kFloat64);
  return p;
}

// HF LlamaRMSNorm: normalise in fp32 (here fp64), then scale.
torch::Tensor rms_norm(const torch::Tensor& x, const torch::Tensor& weight, double eps) {
  return weight * (x / torch::sqrt(x.pow(2).mean(-1, true) + eps));
}

torch::Tensor linear(const Params& p, const std::string& name, const torch::Tensor& x) {
  auto y = torch::matmul(x, p.at(name + ".weight").t());
  auto bias = p.find(name + ".bias");
  return bias == p.end() ? y : y + bias->second;
}

// One frequency 1 / theta^(2i / d) as a scaling rewrites it: linear divides it by the factor; llama3 (LLaMA-3.1)
// divides it when its wavelength 2 pi / f is longer than original / low_freq_factor, keeps it when shorter than
// original / high_freq_factor, and in between blends f / factor and f with weight s = (original / wavelength - low)
// / (high - low) on f.
double scaled_frequency(double f, const models::RopeScaling& s) {
  if (s.type == "linear") return f / s.factor;
  if (s.type != "llama3") return f;
  const double wavelength = 2 * M_PI / f, original = static_cast<double>(s.original_max_position_embeddings);
  if (wavelength > original / s.low_freq_factor) return f / s.factor;
  if (wavelength < original / s.high_freq_factor) return f;
  const double smooth = (original / wavelength - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  return (1 - smooth) * f / s.factor + smooth * f;
}

// Rotate-half RoPE on [B, heads, T, d] at positions 0..T-1: inv_freq = 1 / theta^(arange(0, d, 2) / d), scaled.
torch::Tensor rope(const torch::Tensor& x, double theta, const models::RopeScaling& scaling) {
  const auto T = x.size(2), d = x.size(3);
  auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  auto inv_freq = torch::ones({d / 2}, f64);
  for (int64_t i = 0; i < d / 2; ++i) inv_freq[i] = scaled_frequency(1.0 / std::pow(theta, 2.0 * i / d), scaling);
  auto angles = torch::outer(torch::arange(T, f64), inv_freq);  // [T, d/2]
  auto cos = angles.cos(), sin = angles.sin();
  auto x1 = x.narrow(-1, 0, d / 2), x2 = x.narrow(-1, d / 2, d / 2);
  return torch::cat({x1 * cos - x2 * sin, x2 * cos + x1 * sin}, -1);
}

torch::Tensor reference_logits(const Params& p, const LlamaConfig& c, const torch::Tensor& tokens) {
  const auto B = tokens.size(0), T = tokens.size(1), d = c.head_dim;
  const auto nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  auto x = p.at("model.embed_tokens.weight").index_select(0, tokens.flatten()).view({B, T, c.hidden_size});
  auto future = torch::ones({T, T}, torch::kBool).triu(1);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = "model.layers." + std::to_string(i) + ".";
    auto h = rms_norm(x, p.at(l + "input_layernorm.weight"), c.rms_norm_eps);
    auto split = [&](const torch::Tensor& t, int64_t n) { return t.view({B, T, n, d}).permute({0, 2, 1, 3}); };
    auto q = split(linear(p, l + "self_attn.q_proj", h), nh);
    auto k = split(linear(p, l + "self_attn.k_proj", h), nkv);
    if (p.count(l + "self_attn.q_norm.weight")) {  // Qwen3: each head's q and k normalised before the rotation
      q = rms_norm(q, p.at(l + "self_attn.q_norm.weight"), c.rms_norm_eps);
      k = rms_norm(k, p.at(l + "self_attn.k_norm.weight"), c.rms_norm_eps);
    }
    q = rope(q, c.rope_theta, c.rope_scaling);
    k = rope(k, c.rope_theta, c.rope_scaling);
    auto v = split(linear(p, l + "self_attn.v_proj", h), nkv);
    k = k.repeat_interleave(nh / nkv, 1);
    v = v.repeat_interleave(nh / nkv, 1);
    auto scores = torch::matmul(q, k.transpose(2, 3)) / std::sqrt(static_cast<double>(d));
    auto attn = torch::matmul(torch::softmax(scores.masked_fill(future, -INFINITY), -1), v);
    x = x + linear(p, l + "self_attn.o_proj", attn.permute({0, 2, 1, 3}).reshape({B, T, nh * d}));
    h = rms_norm(x, p.at(l + "post_attention_layernorm.weight"), c.rms_norm_eps);
    auto gate = linear(p, l + "mlp.gate_proj", h);
    x = x + linear(p, l + "mlp.down_proj", gate * torch::sigmoid(gate) * linear(p, l + "mlp.up_proj", h));
  }
  x = rms_norm(x, p.at("model.norm.weight"), c.rms_norm_eps);
  return c.tie_word_embeddings ? torch::matmul(x, p.at("model.embed_tokens.weight").t())
                               : linear(p, "lm_head", x);
}

double max_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

torch::Tensor tokens(int64_t B, int64_t T, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(0, vocab, {B, T}, torch::kInt64);
}

void expect_matches_reference(const LlamaConfig& config) {
  auto model = random_llama(config, 3);
  auto ids = tokens(2, 11, config.vocab_size, 4);
  torch::NoGradGuard no_grad;
  auto ours = model->forward(ids);
  auto expected = reference_logits(params_fp64(model), config, ids);
  ASSERT_EQ(ours.sizes(), expected.sizes());
  const double scale = expected.abs().max().item<double>();
  EXPECT_GT(scale, 1.0);  // the random weights make logits that differ
  EXPECT_LE(max_diff(ours, expected), 2e-5 * scale) << "scale " << scale;
}

}  // namespace

TEST(LlamaModel, ParameterNamesAreHuggingFaces) {
  auto config = tiny_llama_config();
  config.attention_bias = true;
  config.mlp_bias = true;
  LlamaForCausalLM model(config);
  auto params = model->named_parameters();
  EXPECT_EQ(params.size(), 1 + 2 * (8 + 6 + 2) + 2u);  // embedding, 2 layers, final norm, head
  for (const char* name : {"model.embed_tokens.weight", "model.layers.1.self_attn.q_proj.bias",
                           "model.layers.1.self_attn.o_proj.weight", "model.layers.0.mlp.down_proj.bias",
                           "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
                           "model.norm.weight", "lm_head.weight"}) {
    EXPECT_TRUE(params.contains(name)) << name;
  }
  EXPECT_EQ(params["model.layers.0.self_attn.k_proj.weight"].sizes(), torch::IntArrayRef({16, 32}));
  int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  EXPECT_EQ(total, config.num_parameters());
}

TEST(LlamaModel, MatchesReDerivationWithGqaAndUntiedHead) { expect_matches_reference(tiny_llama_config()); }

TEST(LlamaModel, MatchesReDerivationWithLinearRopeScaling) {
  auto config = tiny_llama_config();
  config.rope_scaling = {"linear", 4.0};  // Vicuna v1.5-16k's
  expect_matches_reference(config);
}

// LLaMA-3.1's scaling, with a short original context so that the tiny head's 4 frequencies fall in all three bands
// (theta 500: wavelengths 6.3, 29.7, 140 and 664 positions against 64 / 4 = 16 and 64 / 1 = 64).
TEST(LlamaModel, MatchesReDerivationWithLlama3RopeScaling) {
  auto config = tiny_llama_config();
  config.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 64};
  expect_matches_reference(config);
  const auto inv_freq = models::RotaryEmbedding(config.head_dim, config.rope_theta, config.rope_scaling)
                            .inv_freq(torch::kCPU);
  const auto plain = models::RotaryEmbedding(config.head_dim, config.rope_theta).inv_freq(torch::kCPU);
  EXPECT_EQ(inv_freq[0].item<float>(), plain[0].item<float>());            // short wave: kept
  EXPECT_FLOAT_EQ(inv_freq[2].item<float>(), plain[2].item<float>() / 8);  // long waves: divided
  EXPECT_FLOAT_EQ(inv_freq[3].item<float>(), plain[3].item<float>() / 8);
  EXPECT_LT(inv_freq[1].item<float>(), plain[1].item<float>());  // between: blended
  EXPECT_GT(inv_freq[1].item<float>(), plain[1].item<float>() / 8);
}

// Qwen2 is LLaMA with biases on q, k and v (none on o_proj); the reference adds whichever biases the model has.
TEST(LlamaModel, Qwen2HasBiasesOnQkvOnlyAndMatchesReDerivation) {
  auto config = tiny_llama_config();
  config.model_type = "qwen2";
  config.qkv_bias = true;
  config.tie_word_embeddings = true;  // Qwen2.5 up to 3B
  LlamaForCausalLM model(config);
  auto params = model->named_parameters();
  for (const char* name : {"q_proj", "k_proj", "v_proj"}) {
    EXPECT_TRUE(params.contains(std::string("model.layers.0.self_attn.") + name + ".bias")) << name;
  }
  EXPECT_FALSE(params.contains("model.layers.0.self_attn.o_proj.bias"));
  EXPECT_FALSE(params.contains("model.layers.0.mlp.down_proj.bias"));
  int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  EXPECT_EQ(total, config.num_parameters());
  expect_matches_reference(config);
}

// Qwen3 is LLaMA with each head's q and k RMS-normalised over head_dim (one weight each, shared by the heads) before
// the rotation.
TEST(LlamaModel, Qwen3NormalisesQueriesAndKeysPerHeadAndMatchesReDerivation) {
  auto config = tiny_llama_config();
  config.model_type = "qwen3";
  config.qk_norm = true;
  LlamaForCausalLM model(config);
  auto params = model->named_parameters();
  EXPECT_EQ(params["model.layers.1.self_attn.q_norm.weight"].sizes(), torch::IntArrayRef({config.head_dim}));
  EXPECT_EQ(params["model.layers.1.self_attn.k_norm.weight"].sizes(), torch::IntArrayRef({config.head_dim}));
  int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  EXPECT_EQ(total, config.num_parameters());
  expect_matches_reference(config);
  // The same weights without the norms compute something else (the check is not vacuous).
  auto plain = config;
  plain.model_type = "llama";
  plain.qk_norm = false;
  auto without = random_llama(plain, 3);
  LlamaForCausalLM with_norms(config);  // the norms' weights stay one
  torch::NoGradGuard no_grad;
  auto same = without->named_parameters();
  for (auto& item : with_norms->named_parameters())
    if (same.contains(item.key())) item.value().copy_(same[item.key()]);
  auto ids = tokens(1, 7, config.vocab_size, 4);
  EXPECT_GT((with_norms->forward(ids) - without->forward(ids)).abs().max().item<double>(), 1e-3);
}

// Mistral's layers are LLaMA's: within its sliding window the same weights give the same logits; beyond it the
// model refuses rather than attending to keys the window would hide.
TEST(LlamaModel, MistralWithinItsWindowIsLlama) {
  auto config = tiny_llama_config();
  config.model_type = "mistral";
  config.sliding_window = 11;
  expect_matches_reference(config);  // 11 tokens
  auto model = random_llama(config, 3);
  torch::NoGradGuard no_grad;
  try {
    model->forward(tokens(1, 12, config.vocab_size, 4));
    ADD_FAILURE() << "12 tokens ran in an 11-token window";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("12 tokens exceed the sliding window of 11"), std::string::npos) << e.what();
  }
}

TEST(LlamaModel, MatchesReDerivationWithBiases) {
  auto config = tiny_llama_config();
  config.attention_bias = true;
  config.mlp_bias = true;
  expect_matches_reference(config);
}

TEST(LlamaModel, MatchesReDerivationTied) {
  auto config = tiny_llama_config();
  config.tie_word_embeddings = true;
  config.num_key_value_heads = 4;
  expect_matches_reference(config);
  LlamaForCausalLM model(config);
  EXPECT_FALSE(model->lm_head);
  EXPECT_FALSE(model->named_parameters().contains("lm_head.weight"));
}

TEST(LlamaModel, ActivationCheckpointingGivesEqualOutputsAndGradients) {
  const auto config = tiny_llama_config();
  auto plain = random_llama(config, 5);
  models::LlamaOptions options;
  options.checkpoint_layers = true;
  auto checkpointed = random_llama(config, 5, options);
  auto ids = tokens(2, 9, config.vocab_size, 6);
  auto weights = torch::randn({2, 9, config.vocab_size});
  auto a = plain->forward(ids), b = checkpointed->forward(ids);
  EXPECT_EQ(max_diff(a, b), 0.0);
  (a * weights).sum().backward();
  (b * weights).sum().backward();
  auto pa = plain->named_parameters(), pb = checkpointed->named_parameters();
  for (const auto& item : pa) {
    const auto& ga = item.value().grad();
    const auto& gb = pb[item.key()].grad();
    ASSERT_TRUE(ga.defined() && gb.defined()) << item.key();
    EXPECT_GT(ga.abs().max().item<double>(), 0.0) << item.key();
    EXPECT_LE(max_diff(ga, gb), 1e-6 * (1.0 + ga.abs().max().item<double>())) << item.key();
  }
}

TEST(LlamaModel, CachedDecodingEqualsFullForward) {
  const auto config = tiny_llama_config();
  auto model = random_llama(config, 7);
  auto ids = tokens(2, 10, config.vocab_size, 8);
  torch::NoGradGuard no_grad;
  auto full = model->forward(ids);
  auto caches = model->make_caches();
  models::LlamaInputs in;
  in.caches = &caches;
  std::vector<torch::Tensor> steps = {model->forward(ids.narrow(1, 0, 6), in)};
  for (int64_t t = 6; t < 10; ++t) steps.push_back(model->forward(ids.narrow(1, t, 1), in));
  EXPECT_EQ(caches.front().length(), 10);
  EXPECT_LE(max_diff(torch::cat(steps, 1), full), 1e-5 * full.abs().max().item<double>());
}

TEST(LlamaModel, LeftPaddedBatchEqualsEachRowAlone) {
  const auto config = tiny_llama_config();
  auto model = random_llama(config, 9);
  torch::NoGradGuard no_grad;
  // Prompts of 7 and 4 tokens; the shorter one is left-padded with token 0 and masked out.
  auto long_ids = tokens(1, 9, config.vocab_size, 10), short_ids = tokens(1, 6, config.vocab_size, 11);
  const int64_t pad = 3;
  auto batch = torch::cat({long_ids.narrow(1, 0, 7), torch::cat({torch::zeros({1, pad}, torch::kInt64),
                                                                 short_ids.narrow(1, 0, 4)}, 1)});
  auto keep = torch::ones({2, 7}, torch::kInt64);
  keep[1].narrow(0, 0, pad).zero_();

  auto caches = model->make_caches();
  models::LlamaInputs in;
  in.caches = &caches;
  in.attention_mask = keep;
  auto prefill = model->forward(batch, in);
  // Two decode steps: each row's next token is its own continuation; the mask grows by one kept key.
  std::vector<torch::Tensor> step_logits;
  for (int64_t s = 0; s < 2; ++s) {
    keep = torch::cat({keep, torch::ones({2, 1}, torch::kInt64)}, 1);
    in.attention_mask = keep;
    auto next = torch::cat({long_ids.narrow(1, 7 + s, 1), short_ids.narrow(1, 4 + s, 1)});
    step_logits.push_back(model->forward(next, in));
  }

  auto alone_long = model->forward(long_ids);
  auto alone_short = model->forward(short_ids);
  const double tol = 1e-5 * alone_long.abs().max().item<double>();
  EXPECT_LE(max_diff(prefill[0], alone_long[0].narrow(0, 0, 7)), tol);
  EXPECT_LE(max_diff(prefill[1].narrow(0, pad, 4), alone_short[0].narrow(0, 0, 4)), tol);
  for (int64_t s = 0; s < 2; ++s) {
    EXPECT_LE(max_diff(step_logits[s][0][0], alone_long[0][7 + s]), tol) << "step " << s;
    EXPECT_LE(max_diff(step_logits[s][1][0], alone_short[0][4 + s]), tol) << "step " << s;
  }
}
