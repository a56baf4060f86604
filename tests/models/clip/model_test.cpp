// ClipModel: HF parameter names and counts, the forward pass against a plain re-derivation of CLIP's math,
// pooling and causality, locking, activation checkpointing, hidden-state selection, bad inputs.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <set>

#include "core/error.h"
#include "models/clip/model.h"

using namespace pathvlm;
using models::ClipModel;
using models::ClipModelConfig;

namespace {

ClipModelConfig small_config(const std::string& act = "quick_gelu") {
  ClipModelConfig c;
  c.preset = "tiny";
  c.embed_dim = 24;
  c.image_size = 32;
  c.patch_size = 8;
  c.vision_width = 32;
  c.vision_layers = 3;
  c.vision_heads = 4;
  c.text_width = 32;
  c.text_layers = 2;
  c.text_heads = 2;
  c.context_length = 16;
  c.vocab_size = 100;
  c.hidden_act = act;
  return c;
}

ClipModel make_model(const ClipModelConfig& c, uint64_t seed = 1) {
  torch::manual_seed(seed);
  ClipModel model(c);
  // Non-trivial LayerNorm and bias values so that the reference comparison sees every parameter.
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    if (item.key().find("bias") != std::string::npos || item.key().find("norm") != std::string::npos) {
      item.value().add_(torch::randn_like(item.value()) * 0.1);
    }
  }
  return model;
}

// Token ids with sot, random body, eot (the max id) at `eot_at`, zeros after.
torch::Tensor make_ids(int64_t batch, int64_t length, int64_t vocab, std::vector<int64_t> eot_at) {
  auto ids = torch::randint(1, vocab - 2, {batch, length}, torch::kInt64);
  for (int64_t b = 0; b < batch; ++b) {
    ids[b][0] = vocab - 2;
    ids[b][eot_at[b]] = vocab - 1;
    if (eot_at[b] + 1 < length) ids[b].slice(0, eot_at[b] + 1).zero_();
  }
  return ids;
}

std::map<std::string, torch::Tensor> params_of(ClipModel& model) {
  std::map<std::string, torch::Tensor> p;
  for (const auto& item : model->named_parameters()) p[item.key()] = item.value().detach();
  return p;
}

// CLIP written out with explicit attention (softmax(q k^T / sqrt(d) + mask) v), from the parameters by name.
torch::Tensor reference_tower(std::map<std::string, torch::Tensor>& p, const std::string& prefix, torch::Tensor h,
                              int layers, int heads, bool causal, bool quick_gelu) {
  auto ln = [&](const torch::Tensor& x, const std::string& name) {
    auto mean = x.mean(-1, true);
    auto var = (x - mean).pow(2).mean(-1, true);
    return (x - mean) / torch::sqrt(var + 1e-5) * p.at(name + ".weight") + p.at(name + ".bias");
  };
  auto linear = [&](const torch::Tensor& x, const std::string& name) {
    return torch::matmul(x, p.at(name + ".weight").t()) + p.at(name + ".bias");
  };
  const auto B = h.size(0), L = h.size(1), D = h.size(2), hd = D / heads;
  for (int i = 0; i < layers; ++i) {
    const std::string l = prefix + ".encoder.layers." + std::to_string(i);
    auto x = ln(h, l + ".layer_norm1");
    auto split = [&](const torch::Tensor& t) { return t.view({B, L, heads, hd}).permute({0, 2, 1, 3}); };
    auto q = split(linear(x, l + ".self_attn.q_proj")), k = split(linear(x, l + ".self_attn.k_proj")),
         v = split(linear(x, l + ".self_attn.v_proj"));
    auto scores = torch::matmul(q, k.transpose(-1, -2)) / std::sqrt(double(hd));
    if (causal) scores = scores + torch::full({L, L}, -1e9).triu(1);
    auto attn = torch::matmul(torch::softmax(scores, -1), v).permute({0, 2, 1, 3}).reshape({B, L, D});
    h = h + linear(attn, l + ".self_attn.out_proj");
    auto m = linear(ln(h, l + ".layer_norm2"), l + ".mlp.fc1");
    m = quick_gelu ? m * torch::sigmoid(1.702 * m) : 0.5 * m * (1 + torch::erf(m / std::sqrt(2.0)));
    h = h + linear(m, l + ".mlp.fc2");
  }
  return h;
}

torch::Tensor reference_image(ClipModel& model, const torch::Tensor& pixels) {
  auto p = params_of(model);
  const auto& c = model->config();
  auto patches = torch::conv2d(pixels, p.at("vision_model.embeddings.patch_embedding.weight"), {}, c.patch_size);
  patches = patches.flatten(2).transpose(1, 2);
  auto cls = p.at("vision_model.embeddings.class_embedding").expand({pixels.size(0), 1, c.vision_width});
  auto h = torch::cat({cls, patches}, 1) + p.at("vision_model.embeddings.position_embedding.weight");
  auto mean = h.mean(-1, true), var = (h - mean).pow(2).mean(-1, true);
  h = (h - mean) / torch::sqrt(var + 1e-5) * p.at("vision_model.pre_layrnorm.weight") + p.at("vision_model.pre_layrnorm.bias");
  h = reference_tower(p, "vision_model", h, c.vision_layers, c.vision_heads, false, c.hidden_act == "quick_gelu");
  auto pooled = h.select(1, 0);
  mean = pooled.mean(-1, true), var = (pooled - mean).pow(2).mean(-1, true);
  pooled = (pooled - mean) / torch::sqrt(var + 1e-5) * p.at("vision_model.post_layernorm.weight") +
           p.at("vision_model.post_layernorm.bias");
  return torch::matmul(pooled, p.at("visual_projection.weight").t());
}

torch::Tensor reference_text(ClipModel& model, const torch::Tensor& ids) {
  auto p = params_of(model);
  const auto& c = model->config();
  auto h = p.at("text_model.embeddings.token_embedding.weight").index_select(0, ids.flatten()).view({ids.size(0), ids.size(1), -1});
  h = h + p.at("text_model.embeddings.position_embedding.weight").slice(0, 0, ids.size(1));
  h = reference_tower(p, "text_model", h, c.text_layers, c.text_heads, true, c.hidden_act == "quick_gelu");
  auto mean = h.mean(-1, true), var = (h - mean).pow(2).mean(-1, true);
  h = (h - mean) / torch::sqrt(var + 1e-5) * p.at("text_model.final_layer_norm.weight") +
      p.at("text_model.final_layer_norm.bias");
  std::vector<torch::Tensor> pooled;
  for (int64_t b = 0; b < ids.size(0); ++b) {
    int64_t eot = 0;
    for (int64_t t = 0; t < ids.size(1); ++t) {
      if (ids[b][t].item<int64_t>() > ids[b][eot].item<int64_t>()) eot = t;
    }
    pooled.push_back(h[b][eot]);
  }
  return torch::matmul(torch::stack(pooled), p.at("text_projection.weight").t());
}

double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) { return (a - b).abs().max().item<double>(); }

}  // namespace

TEST(ClipModel, ParameterNamesAreHuggingFaceCLIPModels) {
  auto model = make_model(small_config());
  auto p = params_of(model);
  for (const char* name : {"vision_model.embeddings.class_embedding", "vision_model.embeddings.patch_embedding.weight",
                           "vision_model.embeddings.position_embedding.weight", "vision_model.pre_layrnorm.weight",
                           "vision_model.pre_layrnorm.bias", "vision_model.encoder.layers.0.self_attn.q_proj.weight",
                           "vision_model.encoder.layers.2.self_attn.out_proj.bias",
                           "vision_model.encoder.layers.1.layer_norm1.weight", "vision_model.encoder.layers.1.mlp.fc1.weight",
                           "vision_model.encoder.layers.1.mlp.fc2.bias", "vision_model.encoder.layers.1.layer_norm2.bias",
                           "vision_model.post_layernorm.weight", "visual_projection.weight",
                           "text_model.embeddings.token_embedding.weight", "text_model.embeddings.position_embedding.weight",
                           "text_model.encoder.layers.1.self_attn.v_proj.weight", "text_model.final_layer_norm.weight",
                           "text_projection.weight", "logit_scale"}) {
    EXPECT_TRUE(p.count(name)) << name;
  }
  // 16 tensors per block; vision embeddings 3 + two LayerNorms 4; text embeddings 2 + final norm 2;
  // 2 projections; logit_scale.
  EXPECT_EQ(p.size(), 16u * (3 + 2) + 7 + 4 + 2 + 1);
  EXPECT_FALSE(p.count("visual_projection.bias"));
  EXPECT_EQ(p.at("vision_model.embeddings.patch_embedding.weight").sizes(), (std::vector<int64_t>{32, 3, 8, 8}));
  EXPECT_EQ(p.at("vision_model.embeddings.position_embedding.weight").sizes(), (std::vector<int64_t>{17, 32}));
  EXPECT_EQ(p.at("visual_projection.weight").sizes(), (std::vector<int64_t>{24, 32}));
  EXPECT_EQ(p.at("logit_scale").dim(), 0);
  EXPECT_NEAR(model->logit_scale.item<double>(), std::log(1 / 0.07), 1e-6);
}

TEST(ClipModel, PresetsHaveThePublishedParameterCounts) {
  // open_clip docs/model_profile.csv: ViT-B-16 149.62M parameters (logit_scale included). Building it takes
  // a few seconds, so the other presets are checked through their parts and sizes.
  ClipModelConfig b16;
  b16.preset = "ViT-B-16";
  ClipModel model(b16);
  EXPECT_EQ(models::count_parameters(*model), 149620737);
  EXPECT_EQ(model->config().hidden_act, "quick_gelu");
  ClipModelConfig b32;
  b32.preset = "ViT-B-32";
  auto r32 = models::resolve_clip_config(b32);
  // B/32 differs from B/16 only in its vision embeddings (patch size, positions): 151.28M.
  models::ClipVisionEmbeddings e16(768, 224, 16), e32(r32.vision_width, r32.image_size, r32.patch_size);
  EXPECT_EQ(models::count_parameters(*model) - models::count_parameters(*e16) + models::count_parameters(*e32),
            151277313);
  EXPECT_EQ(r32.patch_size, 32);
  EXPECT_EQ(r32.vision_width, 768);
  EXPECT_EQ(r32.text_width, 512);
  ClipModelConfig large;
  large.preset = "ViT-L-14";
  auto l = models::resolve_clip_config(large);
  EXPECT_EQ(l.vision_width, 1024);
  EXPECT_EQ(l.vision_layers, 24);
  EXPECT_EQ(l.embed_dim, 768);
  EXPECT_EQ(l.text_heads, 12);
  large.image_size = 336;  // overrides keep the rest of the preset
  EXPECT_EQ(models::resolve_clip_config(large).image_size, 336);
  EXPECT_EQ(models::resolve_clip_config(large).patch_size, 14);
}

TEST(ClipModel, TrainFlopsAreThreeTimesThePublishedForwardFlops) {
  // open_clip's pretrained table: ViT-B-16 41.09 GFLOPs, ViT-L-14 174.74 GFLOPs per 224 px image + text forward.
  for (auto [preset, gflops] : {std::pair{"ViT-B-16", 41.09}, std::pair{"ViT-L-14", 174.74}}) {
    ClipModelConfig c;
    c.preset = preset;
    const double forward = models::train_flops_per_sample(models::resolve_clip_config(c)) / 3;
    EXPECT_NEAR(forward / 1e9, gflops, 0.01 * gflops) << preset;
  }
}

TEST(ClipModel, ForwardMatchesPlainReimplementation) {
  for (const std::string act : {"quick_gelu", "gelu"}) {
    auto model = make_model(small_config(act));
    model->eval();
    torch::NoGradGuard no_grad;
    auto pixels = torch::randn({3, 3, 32, 32});
    auto img = model->encode_image(pixels);
    ASSERT_EQ(img.sizes(), (std::vector<int64_t>{3, 24}));
    EXPECT_LT(max_abs_diff(img, reference_image(model, pixels)), 1e-4) << act;
    auto ids = make_ids(3, 16, 100, {5, 15, 9});
    auto txt = model->encode_text(ids);
    ASSERT_EQ(txt.sizes(), (std::vector<int64_t>{3, 24}));
    EXPECT_LT(max_abs_diff(txt, reference_text(model, ids)), 1e-4) << act;
  }
}

TEST(ClipModel, TextPoolsAtEotAndIsCausal) {
  auto model = make_model(small_config());
  torch::NoGradGuard no_grad;
  auto ids = make_ids(2, 16, 100, {6, 6});
  auto base = model->encode_text(ids);
  auto later = ids.clone();
  later[0][10] = 42;  // after eot: no effect on the eot state
  EXPECT_EQ(max_abs_diff(model->encode_text(later), base), 0.0);
  auto earlier = ids.clone();
  earlier[0][3] = (earlier[0][3].item<int64_t>() % 90) + 1;  // before eot: changes row 0 only
  auto changed = model->encode_text(earlier);
  EXPECT_GT(max_abs_diff(changed[0], base[0]), 1e-4);
  EXPECT_LT(max_abs_diff(changed[1], base[1]), 1e-6);
  // Shorter inputs use the first L positions: the same text padded to 16 or cut at 7 gives the same embedding.
  EXPECT_LT(max_abs_diff(model->encode_text(ids.slice(1, 0, 7)), base), 1e-5);
}

TEST(ClipModel, ImageTokensSelectHiddenStatesLikeHF) {
  auto model = make_model(small_config());
  torch::NoGradGuard no_grad;
  auto pixels = torch::randn({2, 3, 32, 32});
  auto last = model->image_tokens(pixels);
  ASSERT_EQ(last.sizes(), (std::vector<int64_t>{2, 17, 32}));
  EXPECT_EQ(max_abs_diff(model->image_tokens(pixels, 3), last), 0.0);
  auto pooled = model->visual_projection(model->vision_model->post_layernorm(last.select(1, 0)));
  EXPECT_LT(max_abs_diff(pooled, model->encode_image(pixels)), 1e-6);
  auto penultimate = model->image_tokens(pixels, -2);
  auto layer2 = model->vision_model->encoder->layers->ptr<models::ClipEncoderLayerImpl>(2);
  EXPECT_LT(max_abs_diff(layer2->forward(penultimate, false), last), 1e-6);
  auto embeddings = model->image_tokens(pixels, 0);
  EXPECT_LT(max_abs_diff(embeddings, model->vision_model->pre_layrnorm(model->vision_model->embeddings(pixels))), 1e-6);
  EXPECT_THROW(model->image_tokens(pixels, 4), Error);
  EXPECT_THROW(model->image_tokens(pixels, -5), Error);
}

TEST(ClipModel, LockingFreezesExactlyTheLockedParameters) {
  auto trainable = [](ClipModel& m) {
    std::set<std::string> names;
    for (const auto& item : m->named_parameters()) {
      if (item.value().requires_grad()) names.insert(item.key());
    }
    return names;
  };
  auto starts = [](const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; };
  {
    auto model = make_model(small_config());
    model->lock_image(0);
    for (const auto& item : model->named_parameters()) {
      const auto& n = item.key();
      bool image = starts(n, "vision_model.") || starts(n, "visual_projection.");
      EXPECT_EQ(item.value().requires_grad(), !image) << n;
    }
  }
  {
    auto model = make_model(small_config());
    model->lock_image(1);
    for (const auto& n : trainable(model)) {
      if (starts(n, "text_") || n == "logit_scale") continue;
      EXPECT_TRUE(starts(n, "vision_model.encoder.layers.2.") || starts(n, "vision_model.post_layernorm.") ||
                  starts(n, "visual_projection."))
          << n;
    }
    EXPECT_EQ(trainable(model).count("vision_model.encoder.layers.2.mlp.fc1.weight"), 1u);
    EXPECT_EQ(trainable(model).count("visual_projection.weight"), 1u);
    EXPECT_EQ(trainable(model).count("vision_model.encoder.layers.1.mlp.fc1.weight"), 0u);
    EXPECT_EQ(trainable(model).count("vision_model.pre_layrnorm.weight"), 0u);
    const int64_t block = 4 * (32 * 32 + 32) + 4 * 32 + (32 * 128 + 128) + (128 * 32 + 32);
    const int64_t image_trainable = block + 2 * 32 + 24 * 32;
    int64_t text_and_scale = 0;
    for (const auto& item : model->named_parameters()) {
      if (!starts(item.key(), "vision_model.") && !starts(item.key(), "visual_projection.")) text_and_scale += item.value().numel();
    }
    EXPECT_EQ(models::count_parameters(*model, true), image_trainable + text_and_scale);
  }
  {
    auto model = make_model(small_config());
    model->lock_text();
    for (const auto& n : trainable(model)) EXPECT_FALSE(starts(n, "text_")) << n;
    EXPECT_EQ(trainable(model).count("logit_scale"), 1u);
    EXPECT_EQ(trainable(model).count("visual_projection.weight"), 1u);
    // Locked parameters get no gradient.
    auto loss = model->encode_text(make_ids(2, 16, 100, {4, 8})).sum() + model->encode_image(torch::randn({2, 3, 32, 32})).sum();
    loss.backward();
    EXPECT_FALSE(model->text_projection->weight.grad().defined());
    EXPECT_TRUE(model->visual_projection->weight.grad().defined());
  }
  auto model = make_model(small_config());
  EXPECT_THROW(model->lock_image(4), Error);
  EXPECT_THROW(model->lock_text(-1), Error);
}

TEST(ClipModel, ActivationCheckpointingGivesIdenticalGradients) {
  auto grads = [](bool checkpointing) {
    auto model = make_model(small_config(), 7);
    model->set_activation_checkpointing(checkpointing);
    torch::manual_seed(3);
    auto pixels = torch::randn({2, 3, 32, 32});
    auto ids = make_ids(2, 16, 100, {5, 11});
    auto img = model->encode_image(pixels), txt = model->encode_text(ids);
    auto logits = torch::matmul(img / img.norm(2, -1, true), (txt / txt.norm(2, -1, true)).t()) * model->logit_scale.exp();
    auto labels = torch::arange(2);
    auto loss = (torch::nn::functional::cross_entropy(logits, labels) +
                 torch::nn::functional::cross_entropy(logits.t(), labels)) / 2;
    loss.backward();
    std::map<std::string, torch::Tensor> g;
    for (const auto& item : model->named_parameters()) g[item.key()] = item.value().grad().clone();
    return std::make_pair(loss.item<double>(), g);
  };
  auto [loss_plain, g_plain] = grads(false);
  auto [loss_ckpt, g_ckpt] = grads(true);
  EXPECT_EQ(loss_plain, loss_ckpt);
  ASSERT_EQ(g_plain.size(), g_ckpt.size());
  for (const auto& [name, g] : g_plain) {
    EXPECT_LE(max_abs_diff(g, g_ckpt.at(name)), 1e-7 * (1 + g.abs().max().item<double>())) << name;
  }
  EXPECT_GT(g_plain.at("vision_model.encoder.layers.0.self_attn.q_proj.weight").abs().sum().item<double>(), 0);
}

TEST(ClipModel, BadInputsAndConfigsGiveClearErrors) {
  auto model = make_model(small_config());
  try {
    model->encode_image(torch::randn({1, 3, 64, 64}));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[B,3,32,32]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(model->encode_text(torch::full({1, 4}, 100, torch::kInt64)), Error);  // id outside vocab
  EXPECT_THROW(model->encode_text(torch::zeros({1, 17}, torch::kInt64)), Error);     // longer than context
  EXPECT_THROW(model->encode_text(torch::zeros({1, 4}, torch::kInt32)), Error);
  auto bad = small_config();
  bad.patch_size = 7;
  EXPECT_THROW(models::resolve_clip_config(bad), Error);
  bad = small_config();
  bad.vision_heads = 5;
  EXPECT_THROW(ClipModel{bad}, Error);
  bad = small_config();
  bad.preset = "ViT-H-14";
  EXPECT_THROW(models::resolve_clip_config(bad), Error);
}
