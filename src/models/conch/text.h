// CONCH v1's text tower (mahmoodlab/CONCH's open_clip CoCa TextTransformer with embed_cls), the side of its zero-shot
// space that prompts go to:
//   x      = token_embedding(ids) with the learned cls_emb appended, + positional_embedding
//   blocks = open_clip's pre-norm residual blocks (nn.MultiheadAttention, GELU MLP, LayerNorm eps 1e-5): causal, except
//            that the appended class token reads only the keys CoCa's build_cls_mask leaves it
//   out    = ln_final(x's last row) @ text_projection         encode_text(normalize=False)
// CoCa's mask is off by one, and so is this: the class token reads key 0 and each key j >= 1 whose token j - 1 is not
// padding (so also the first pad after <end_of_text>, and itself only when the last token is not padding).
//
//   auto text = models::load_conch_text("CONCH/");            // models/conch/weights.h
//   auto embeddings = text.model->forward(ids);              // [B, L] token ids -> [B, 512]
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace pathvlm::models {

struct ConchTextConfig {
  int64_t vocab = 32007;
  int64_t positions = 128;  // token rows plus the class token
  int64_t width = 768, heads = 12, layers = 12, mlp_hidden = 3072;
  int64_t embed_dim = 512;  // the shared embedding's width
  int64_t pad_id = 0;       // CONCH's <pad>
  // Names the problem in `where`'s words when the sizes do not fit together.
  void validate(const std::string& where) const;
};

class ConchTextImpl : public torch::nn::Module {
 public:
  explicit ConchTextImpl(const ConchTextConfig& config);
  // Token ids [B, L], L < positions (the class token takes the row after them) -> [B, embed_dim], not normalised.
  torch::Tensor forward(const torch::Tensor& ids);
  // Texts through CONCH's tokenizer (conch_token_ids, as many rows as fit before the class token) -> [n, embed_dim].
  torch::Tensor encode(const text::Tokenizer& tokenizer, const std::vector<std::string>& texts);
  const ConchTextConfig& config() const { return config_; }

  torch::nn::Embedding token_embedding{nullptr};
  torch::Tensor positional_embedding, cls_emb, text_projection;  // [positions, W], [W], [W, embed_dim]
  torch::nn::ModuleList blocks{nullptr};                         // TransformerBlocks
  torch::nn::LayerNorm ln_final{nullptr};

 private:
  ConchTextConfig config_;
};
TORCH_MODULE(ConchText);

// The ids CONCH's tokenize gives `texts` (conch/open_clip_custom/custom_tokenizer.py with its tokenizer file,
// conch_byte_level_bpe_uncased.json), as encode_text reads them: <start_of_text>, the text's tokens cut to fit,
// <end_of_text>, then <pad> up to `length` (CONCH's 127: its 128 positions less the class token's) -> int64
// [texts, length]. An Error naming the tokenizer file when it lacks those tokens.
torch::Tensor conch_token_ids(const text::Tokenizer& tokenizer, const std::vector<std::string>& texts, int64_t length);

}  // namespace pathvlm::models
