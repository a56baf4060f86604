#include "models/llama/model.h"

#include "core/error.h"
#include "models/layers/activation_checkpoint.h"
#include "models/layers/transformer_block.h"

namespace pathvlm::models {

LlamaModelImpl::LlamaModelImpl(const LlamaConfig& config, const LlamaOptions& options)
    : config_(config), options_(options), rope_(config.head_dim, config.rope_theta, config.rope_scaling) {
  config.validate("llama");
  const SkipWeightInit skip_init(!options.init_weights);  // the loader overwrites every weight
  auto built = [&](const std::string& name, torch::nn::Module& piece) {
    if (options.on_built) options.on_built("model." + name, piece);
  };
  embed_tokens = register_module("embed_tokens", make_embedding(config.vocab_size, config.hidden_size));
  built("embed_tokens", *embed_tokens);
  layers = register_module("layers", torch::nn::ModuleList());
  const auto attention = AttentionOptions(config.hidden_size, config.num_attention_heads)
                             .kv_heads(config.num_key_value_heads)
                             .head_dim(config.head_dim)
                             .bias(config.attention_bias || config.qkv_bias)
                             .out_bias(config.attention_bias)
                             .qk_norm_eps(config.qk_norm ? config.rms_norm_eps : 0.0)
                             .causal(true)
                             .out_name("o_proj");
  const auto block = TransformerBlockOptions(attention)
                         .mlp_hidden(config.intermediate_size)
                         .mlp_act("swiglu")
                         .mlp_bias(config.mlp_bias)
                         .norm(NormKind::rms_norm)
                         .norm_eps(config.rms_norm_eps);
  for (int64_t i = 0; i < config.num_hidden_layers; ++i) {
    layers->push_back(TransformerBlock(block));
    built(str("layers.", i), *layers[i]);
  }
  norm = make_norm(NormKind::rms_norm, config.hidden_size, config.rms_norm_eps);
  register_module("norm", norm.ptr());
  built("norm", *norm.ptr());
  options_.on_built = nullptr;  // construction only: the loader's callback does not outlive the load
}

namespace {

// The keep mask [B, 1, T, S] of T queries over S keys when the caller gave per-key keep flags [B, S]: a key is
// seen when it is kept and not after the query; every query also sees itself, so the rows of padding tokens
// are never empty (an empty row would turn into NaN and reach real tokens through 0 * NaN).
torch::Tensor causal_keep_mask(const torch::Tensor& keep_keys, int64_t T) {
  const auto S = keep_keys.size(1), past = S - T;
  auto opts = keep_keys.options().dtype(torch::kBool);
  auto causal = torch::ones({T, S}, opts).tril(past);
  auto self = torch::zeros({T, S}, opts);
  self.narrow(1, past, T).fill_diagonal_(true);
  return keep_keys.to(torch::kBool).unsqueeze(1).unsqueeze(1).logical_and(causal).logical_or(self);
}

}  // namespace

torch::Tensor LlamaModelImpl::forward(const torch::Tensor& embeds, const LlamaInputs& inputs) {
  PATHVLM_CHECK(embeds.dim() == 3 && embeds.size(2) == config_.hidden_size, "llama: expected embeddings [B, T, ",
                config_.hidden_size, "], got ", embeds.sizes());
  const auto B = embeds.size(0), T = embeds.size(1);
  PATHVLM_CHECK(inputs.caches == nullptr || static_cast<int64_t>(inputs.caches->size()) == config_.num_hidden_layers,
                "llama: ", inputs.caches ? inputs.caches->size() : 0, " caches for ", config_.num_hidden_layers,
                " layers");
  const int64_t past = inputs.caches ? inputs.caches->front().length() : 0;
  PATHVLM_CHECK(config_.sliding_window == 0 || past + T <= config_.sliding_window, "mistral: ", past + T,
                " tokens exceed the sliding window of ", config_.sliding_window,
                " (attention within the window is not implemented; shorten the sequences)");

  AttentionInputs attn;
  torch::Tensor positions = inputs.position_ids;
  const auto& mask = inputs.attention_mask;
  if (mask.defined()) {
    attn.causal = false;
    if (mask.dim() == 4) {
      PATHVLM_CHECK(mask.size(0) == B && mask.size(2) == T && mask.size(3) == past + T, "llama: attention mask ",
                    mask.sizes(), " does not match ", B, " sequences of ", T, " queries over ", past + T, " keys");
      attn.mask = mask.to(torch::kBool);
    } else {
      PATHVLM_CHECK(mask.dim() == 2 && mask.size(0) == B && mask.size(1) == past + T, "llama: attention mask ",
                    mask.sizes(), " must be [", B, ", ", past + T, "] (cached + new tokens)");
      attn.mask = causal_keep_mask(mask, T);
      if (!positions.defined()) {
        auto counted = mask.to(torch::kLong).cumsum(-1) - 1;
        positions = counted.masked_fill(mask.to(torch::kBool).logical_not(), 1).narrow(1, past, T);
      }
    }
  }
  if (!positions.defined()) positions = torch::arange(past, past + T, embeds.options().dtype(torch::kLong));
  // Shared: a checkpointed layer recomputes in backward, after this call has returned.
  const auto cos_sin = std::make_shared<const RopeCosSin>(rope_.cos_sin(positions, embeds.scalar_type()));
  attn.rope = cos_sin.get();

  auto h = embeds;
  for (size_t i = 0; i < layers->size(); ++i) {
    auto layer = layers[i]->as<TransformerBlockImpl>();
    AttentionInputs layer_inputs = attn;
    if (inputs.caches != nullptr) layer_inputs.cache = &(*inputs.caches)[i];
    if (options_.checkpoint_layers && inputs.caches == nullptr) {
      h = checkpoint([layer, layer_inputs, cos_sin](const torch::Tensor& x) { return layer->forward(x, layer_inputs); },
                     h);
    } else {
      h = layer->forward(h, layer_inputs);
    }
  }
  return norm.forward(h);
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(const LlamaConfig& config, const LlamaOptions& options)
    : config_(config) {
  model = register_module("model", LlamaModel(config, options));
  if (!config.tie_word_embeddings) {
    const SkipWeightInit skip_init(!options.init_weights);
    lm_head = register_module("lm_head", Linear(config.hidden_size, config.vocab_size, /*bias=*/false));
    if (options.on_built) options.on_built("lm_head", *lm_head);
  }
  if (options.init_weights) {
    // HF's LlamaPreTrainedModel._init_weights: every matrix and the embedding normal(0, initializer_range),
    // biases zero, norms one (their construction default).
    torch::NoGradGuard no_grad;
    for (auto& p : named_parameters()) {
      const auto& name = p.key();
      if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
        p.value().zero_();
      } else if (p.value().dim() == 2) {
        p.value().normal_(0.0, config.initializer_range);
      }
    }
  }
}

torch::Tensor LlamaForCausalLMImpl::embed(const torch::Tensor& tokens) { return model->embed_tokens(tokens); }

torch::Tensor LlamaForCausalLMImpl::head(const torch::Tensor& hidden) {
  return lm_head ? lm_head(hidden) : torch::matmul(hidden, model->embed_tokens->weight.t());
}

torch::Tensor LlamaForCausalLMImpl::forward_embeds(const torch::Tensor& embeds, const LlamaInputs& inputs) {
  return head(model->forward(embeds, inputs));
}

torch::Tensor LlamaForCausalLMImpl::forward(const torch::Tensor& tokens, const LlamaInputs& inputs) {
  PATHVLM_CHECK(tokens.dim() == 2, "llama: expected token ids [B, T], got ", tokens.sizes());
  return forward_embeds(embed(tokens), inputs);
}

std::vector<KvCache> LlamaForCausalLMImpl::make_caches() const {
  return std::vector<KvCache>(static_cast<size_t>(config_.num_hidden_layers));
}

}  // namespace pathvlm::models
