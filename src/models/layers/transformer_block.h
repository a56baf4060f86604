// The pre-norm transformer block shared by CLIP's towers, the toy LM and LLaMA:
//   h = x + drop(attn(norm1(x))),  out = h + drop(mlp(norm2(h)))
// The norm kind, the MLP kind and the children's registered names are options, so each model keeps the
// parameter names of its checkpoints (CLIP: self_attn, layer_norm1, mlp, layer_norm2; LLaMA: self_attn, mlp,
// input_layernorm, post_attention_layernorm).
#pragma once
#include <torch/torch.h>

#include <string>

#include "models/layers/attention.h"
#include "models/layers/norm.h"

namespace pathvlm::models {

struct TransformerBlockOptions {
  explicit TransformerBlockOptions(AttentionOptions attention) : attention_(std::move(attention)) {}
  TORCH_ARG(AttentionOptions, attention);
  // Hidden width of the MLP; 0 = 4 * width.
  TORCH_ARG(int64_t, mlp_hidden) = 0;
  // "gelu" or "quick_gelu" for fc1 -> act -> fc2 (models::Mlp); "swiglu" for models::GatedMlp.
  TORCH_ARG(std::string, mlp_act) = "gelu";
  // Biases on the SwiGLU MLP's projections (LLaMA's mlp_bias); fc1-act-fc2 MLPs always have them.
  TORCH_ARG(bool, mlp_bias) = false;
  TORCH_ARG(NormKind, norm) = NormKind::layer_norm;
  TORCH_ARG(double, norm_eps) = 1e-5;
  // Dropout on each residual branch while training.
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(std::string, attention_name) = "self_attn";
  TORCH_ARG(std::string, mlp_name) = "mlp";
  TORCH_ARG(std::string, norm1_name) = "input_layernorm";
  TORCH_ARG(std::string, norm2_name) = "post_attention_layernorm";
};

class TransformerBlockImpl : public torch::nn::Module {
 public:
  explicit TransformerBlockImpl(const TransformerBlockOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& inputs = {});

  TransformerBlockOptions options;
  Attention self_attn{nullptr};
  // Norms and MLP of the configured kinds; mlp.get<Mlp>() / mlp.get<GatedMlp>() reach the concrete module.
  torch::nn::AnyModule norm1, mlp, norm2;
};
TORCH_MODULE(TransformerBlock);

}  // namespace pathvlm::models
