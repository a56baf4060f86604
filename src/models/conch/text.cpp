#include "models/conch/text.h"

#include "core/error.h"
#include "models/layers/linear.h"
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
  token_embedding = register_module("token_embedding", make_embedding(config_.vocab, w));
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

torch::Tensor ConchTextImpl::encode(const text::Tokenizer& tokenizer, const std::vector<std::string>& texts) {
  const int64_t length = config_.positions - 1;  // the class token takes the last row
  return forward(conch_token_ids(tokenizer, texts, length).to(token_embedding->weight.device()));
}

torch::Tensor conch_token_ids(const text::Tokenizer& tokenizer, const std::vector<std::string>& texts, int64_t length) {
  const auto special = [&](const char* token) {
    const int32_t id = tokenizer.special_tokens().id_of(token);
    PATHVLM_CHECK(id >= 0, "tokenizer '", tokenizer.path(), "' has no ", token, " token: is it CONCH's ",
                  "(conch_byte_level_bpe_uncased.json)?");
    return static_cast<int64_t>(id);
  };
  const int64_t start = special("<start_of_text>"), end = special("<end_of_text>"), pad = special("<pad>");
  PATHVLM_CHECK(length >= 2, "CONCH prompts of ", length,
                " tokens leave no room for <start_of_text> and <end_of_text>");
  auto ids = torch::full({static_cast<int64_t>(texts.size()), length}, pad, torch::kLong);
  auto rows = ids.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto tokens = tokenizer.encode(texts[i], /*add_bos=*/false);
    // transformers' truncation: the text's tokens cut from the end, the special tokens kept.
    const auto kept = static_cast<size_t>(std::min<int64_t>(static_cast<int64_t>(tokens.size()), length - 2));
    rows[i][0] = start;
    for (size_t j = 0; j < kept; ++j) rows[i][j + 1] = tokens[j];
    rows[i][kept + 1] = end;
  }
  return ids;
}

}  // namespace pathvlm::models
