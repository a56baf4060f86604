#include "models/vit/model.h"

#include "core/error.h"
#include "models/hidden_states.h"
#include "models/layers/transformer_block.h"

namespace pathvlm::models {

VitImpl::VitImpl(const VitConfig& config) : config_(config) {
  config_.validate("ViT");
  const int w = config_.width;
  patch_embed = register_module(
      "patch_embed",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(3, w, config_.patch_size).stride(config_.patch_size).bias(true)));
  if (config_.class_token) cls_token = register_parameter("cls_token", torch::zeros({1, 1, w}));
  if (config_.reg_tokens > 0) reg_token = register_parameter("reg_token", torch::zeros({1, config_.reg_tokens, w}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, config_.position_embeddings(), w}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int i = 0; i < config_.depth; ++i) {
    blocks->push_back(TransformerBlock(TransformerBlockOptions(AttentionOptions(w, config_.heads))
                                           .mlp_hidden(config_.mlp_hidden)
                                           .mlp_act(config_.mlp)
                                           .mlp_bias(true)
                                           .norm_eps(config_.norm_eps)
                                           .attention_name("attn")
                                           .norm1_name("norm1")
                                           .norm2_name("norm2")));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(config_.norm_eps)));
}

namespace {

// hidden_state_index, checked.
int checked_hidden_state_index(int layer, int depth) {
  const int index = hidden_state_index(layer, depth);
  PATHVLM_CHECK(index >= 0 && index <= depth, "ViT: hidden state ", layer, " is outside the ", depth + 1,
                " hidden states of its ", depth, " blocks (-", depth + 1, "..", depth, ")");
  return index;
}

}  // namespace

torch::Tensor VitImpl::embed(const torch::Tensor& pixels) {
  const int s = config_.image_size;
  PATHVLM_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == s && pixels.size(3) == s,
                "ViT: expected pixels [B,3,", s, ",", s, "], got ", pixels.sizes());
  const auto batch = pixels.size(0);
  auto x = patch_embed(pixels.to(patch_embed->weight.scalar_type())).flatten(2).transpose(1, 2);  // [B,P,W]
  std::vector<torch::Tensor> prefix;
  if (cls_token.defined()) prefix.push_back(cls_token.to(x.scalar_type()).expand({batch, -1, -1}));
  if (reg_token.defined()) prefix.push_back(reg_token.to(x.scalar_type()).expand({batch, -1, -1}));
  const auto pos = pos_embed.to(x.scalar_type());
  if (config_.no_embed_class) {
    x = x + pos;
    prefix.push_back(x);
    x = torch::cat(prefix, 1);
  } else {
    prefix.push_back(x);
    x = torch::cat(prefix, 1) + pos;
  }
  return x;
}

torch::Tensor VitImpl::forward_tokens(const torch::Tensor& pixels, int hidden_layer, torch::Tensor* hidden) {
  const int keep = hidden ? checked_hidden_state_index(hidden_layer, config_.depth) : -1;
  auto x = embed(pixels);
  for (int i = 0; i <= config_.depth; ++i) {
    if (i == keep) *hidden = x;
    if (i < config_.depth) x = blocks->ptr<TransformerBlockImpl>(i)->forward(x);
  }
  return config_.fc_norm ? x : norm(x);
}

torch::Tensor VitImpl::hidden_state(const torch::Tensor& pixels, int layer) {
  const int index = checked_hidden_state_index(layer, config_.depth);
  auto x = embed(pixels);
  for (int i = 0; i < index; ++i) x = blocks->ptr<TransformerBlockImpl>(i)->forward(x);
  return x;
}

torch::Tensor VitImpl::pool(const torch::Tensor& tokens) {
  const int64_t prefix = config_.prefix_tokens();
  auto patches_mean = [&] { return tokens.narrow(1, prefix, tokens.size(1) - prefix).mean(1); };
  if (config_.global_pool == "token") return tokens.select(1, 0);
  if (config_.global_pool == "avg") return config_.fc_norm ? norm(patches_mean()) : patches_mean();
  return torch::cat({tokens.select(1, 0), patches_mean()}, 1);
}

void VitImpl::set_global_pool(const std::string& pool) {
  VitConfig c = config_;
  c.global_pool = pool;
  c.validate("ViT with pooling '" + pool + "'");
  config_ = c;
}

}  // namespace pathvlm::models
