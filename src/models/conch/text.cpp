#include "models/conch/text.h"

#include "core/error.h"
#include "models/layers/transformer_block.h"

namespace pathvlm::models {

void ConchTextConfig::validate(const std::string& where) const {
  PATHVLM_CHECK(vocab > 0 && positions > 1 && width > 0 && heads > 0 && width % heads == 0 && layers >= 0 &&
                    mlp_hidden > 0 && embed_dim > 0 && pad_id >= 0 && pad_id < vocab,
                where, ": a text tower of ", vocab, " tokens, ", positions, " positions, width ", width, " in ", heads,
                " heads, ", layers, " blocks, MLP ", mlp_hidden, ", embedding ", embed_dim, " and pad id ", pad_id,
                " does not fit together");
}

ConchTextImpl::ConchTextImpl(const ConchTextConfig& config) : config_(config) {
  config_.validate("CONCH text tower");
  const int64_t w = config_.width;
  token_embedding = register_module("token_embedding", torch::nn::Embedding(config_.vocab, w));
  positional_embedding = register_parameter("positional_embedding", torch::zeros({config_.positions, w}));
  cls_emb = register_parameter("cls_emb", torch::zeros({w}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.layers; ++i) {
    blocks->push_back(TransformerBlock(TransformerBlockOptions(AttentionOptions(w, config_.heads))
                                           .mlp_hidden(config_.mlp_hidden)
                                           .mlp_act("gelu")
                                           .norm_eps(1e-5)));
  }
  ln_final = register_module("ln_final", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(1e-5)));
  text_projection = register_parameter("text_projection", torch::zeros({w, config_.embed_dim}));
}

torch::Tensor ConchTextImpl::forward(const torch::Tensor& ids) {
  PATHVLM_CHECK(ids.dim() == 2 && ids.size(1) >= 1 && ids.size(1) < config_.positions, "CONCH text tower: ids ",
                ids.sizes(), " are not [batch, 1..", config_.positions - 1, "]");
  const int64_t batch = ids.size(0), rows = ids.size(1) + 1;
  auto x = torch::cat({token_embedding(ids), cls_emb.view({1, 1, -1}).expand({batch, 1, config_.width})}, 1);
  x = x + positional_embedding.narrow(0, 0, rows);
  // Causal, and the class token's row (the last, which causality leaves whole) as build_cls_mask makes it.
  auto keep = torch::ones({rows, rows}, torch::TensorOptions(torch::kBool).device(ids.device())).tril();
  keep = keep.unsqueeze(0).repeat({batch, 1, 1});
  keep.select(1, rows - 1).copy_(torch::cat({torch::ones({batch, 1}, keep.options()), ids.ne(config_.pad_id)}, 1));
  AttentionInputs inputs;
  inputs.causal = false;
  inputs.mask = keep.unsqueeze(1);
  for (const auto& block : *blocks) x = block->as<TransformerBlockImpl>()->forward(x, inputs);
  return torch::matmul(ln_final(x.select(1, rows - 1)), text_projection);
}

}  // namespace pathvlm::models
