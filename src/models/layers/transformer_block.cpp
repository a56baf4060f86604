#include "models/layers/transformer_block.h"

#include "core/error.h"
#include "models/layers/gated_mlp.h"
#include "models/layers/mlp.h"

namespace pathvlm::models {

TransformerBlockImpl::TransformerBlockImpl(const TransformerBlockOptions& opts) : options(opts) {
  const auto width = options.attention().width();
  const auto hidden = options.mlp_hidden() > 0 ? options.mlp_hidden() : 4 * width;
  PATHVLM_CHECK(options.dropout() >= 0.0 && options.dropout() < 1.0, "transformer block: dropout ",
                options.dropout(), " is outside [0, 1)");
  // Construction order attention, norm1, mlp, norm2 is the order of the children's random default
  // initialisation (CLIP's initialisation depends on it); registration order is the parameters' order.
  self_attn = register_module(options.attention_name(), Attention(options.attention()));
  norm1 = make_norm(options.norm(), width, options.norm_eps());
  register_module(options.norm1_name(), norm1.ptr());
  mlp = options.mlp_act() == "swiglu" ? torch::nn::AnyModule(GatedMlp(width, hidden, options.mlp_bias()))
                                      : torch::nn::AnyModule(Mlp(width, hidden, options.mlp_act()));
  register_module(options.mlp_name(), mlp.ptr());
  norm2 = make_norm(options.norm(), width, options.norm_eps());
  register_module(options.norm2_name(), norm2.ptr());
}

torch::Tensor TransformerBlockImpl::forward(const torch::Tensor& x, const AttentionInputs& inputs) {
  auto branch = [&](const torch::Tensor& t) {
    return options.dropout() > 0.0 ? torch::dropout(t, options.dropout(), is_training()) : t;
  };
  auto h = x + branch(self_attn->forward(norm1.forward(x), inputs));
  return h + branch(mlp.forward(norm2.forward(h)));
}

}  // namespace pathvlm::models
