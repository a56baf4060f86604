// CLIP towers with Hugging Face CLIPModel's module layout (see model.h) and their initialisation.
#include "models/clip/model.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include "core/error.h"
#include "models/hidden_states.h"
#include "models/layers/activation_checkpoint.h"
#include "models/layers/mlp.h"

namespace pathvlm::models {

// ---- blocks --------------------------------------------------------------------------------------

ClipEncoderLayerImpl::ClipEncoderLayerImpl(int width, int heads, int mlp_dim, const std::string& act, double eps)
    : TransformerBlockImpl(TransformerBlockOptions(AttentionOptions(width, heads))
                               .mlp_hidden(mlp_dim)
                               .mlp_act(act)
                               .norm_eps(eps)
                               .norm1_name("layer_norm1")
                               .norm2_name("layer_norm2")) {}

torch::Tensor ClipEncoderLayerImpl::forward(const torch::Tensor& x, bool causal) {
  AttentionInputs inputs;
  inputs.causal = causal;
  return TransformerBlockImpl::forward(x, inputs);
}

ClipEncoderImpl::ClipEncoderImpl(int num_layers, int width, int heads, int mlp_dim, const std::string& act,
                                 double eps) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int i = 0; i < num_layers; ++i) layers->push_back(ClipEncoderLayer(width, heads, mlp_dim, act, eps));
}

torch::Tensor ClipEncoderImpl::forward(const torch::Tensor& x, bool causal, int num_layers) {
  const int n = num_layers < 0 ? static_cast<int>(layers->size()) : num_layers;
  const bool recompute = checkpointing && torch::GradMode::is_enabled();
  auto h = x;
  for (int i = 0; i < n; ++i) {
    auto layer = layers->ptr<ClipEncoderLayerImpl>(i);
    if (recompute) {
      h = checkpoint([layer, causal](const torch::Tensor& in) { return layer->forward(in, causal); }, h);
    } else {
      h = layer->forward(h, causal);
    }
  }
  return h;
}

// ---- towers --------------------------------------------------------------------------------------

ClipVisionEmbeddingsImpl::ClipVisionEmbeddingsImpl(int width, int image_size, int patch_size)
    : image_size_(image_size) {
  const int grid = image_size / patch_size;
  class_embedding = register_parameter("class_embedding", torch::randn({width}));
  patch_embedding = register_module(
      "patch_embedding", torch::nn::Conv2d(torch::nn::Conv2dOptions(3, width, patch_size).stride(patch_size).bias(false)));
  position_embedding = register_module("position_embedding", make_embedding(grid * grid + 1, width));
}

torch::Tensor ClipVisionEmbeddingsImpl::forward(const torch::Tensor& pixels) {
  PATHVLM_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == image_size_ &&
                    pixels.size(3) == image_size_,
                "clip image tower: expected pixels [B,3,", image_size_, ",", image_size_, "], got ", pixels.sizes());
  const auto batch = pixels.size(0);
  auto patches = patch_embedding(pixels.to(patch_embedding->weight.scalar_type()));  // [B,width,g,g]
  patches = patches.flatten(2).transpose(1, 2);                                     // [B,P,width]
  auto cls = class_embedding.to(patches.scalar_type()).view({1, 1, -1}).expand({batch, 1, patches.size(2)});
  return torch::cat({cls, patches}, 1) + position_embedding->weight.unsqueeze(0);
}

ClipVisionTransformerImpl::ClipVisionTransformerImpl(const ClipModelConfig& c) {
  auto norm = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.vision_width}).eps(c.layer_norm_eps)); };
  embeddings = register_module("embeddings", ClipVisionEmbeddings(c.vision_width, c.image_size, c.patch_size));
  pre_layrnorm = register_module("pre_layrnorm", norm());
  encoder = register_module("encoder", ClipEncoder(c.vision_layers, c.vision_width, c.vision_heads, c.vision_mlp_dim,
                                                   c.hidden_act, c.layer_norm_eps));
  post_layernorm = register_module("post_layernorm", norm());
}

torch::Tensor ClipVisionTransformerImpl::hidden_state(const torch::Tensor& pixels, int select_layer) {
  const int layers = static_cast<int>(encoder->layers->size());
  const int index = hidden_state_index(select_layer, layers);
  PATHVLM_CHECK(index >= 0 && index <= layers, "clip image tower: hidden state ", select_layer,
                " is outside the ", layers + 1, " hidden states (-", layers + 1, "..", layers, ")");
  auto h = pre_layrnorm(embeddings(pixels));
  return encoder(h, /*causal=*/false, index);
}

ClipTextEmbeddingsImpl::ClipTextEmbeddingsImpl(int vocab_size, int width, int context_length) {
  token_embedding = register_module("token_embedding", make_embedding(vocab_size, width));
  position_embedding = register_module("position_embedding", make_embedding(context_length, width));
}

torch::Tensor ClipTextEmbeddingsImpl::forward(const torch::Tensor& ids) {
  const auto context = position_embedding->weight.size(0), vocab = token_embedding->weight.size(0);
  PATHVLM_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kInt64 && ids.size(1) >= 1 && ids.size(1) <= context,
                "clip text tower: expected int64 ids [B,L] with 1 <= L <= ", context, ", got ", ids.scalar_type(), " ",
                ids.sizes());
  if (ids.is_cpu() && ids.numel() > 0) {  // host memory; on GPU the embedding kernel checks (no host read here)
    const auto dense = ids.contiguous();
    const auto [lo_it, hi_it] = std::minmax_element(dense.data_ptr<int64_t>(), dense.data_ptr<int64_t>() + dense.numel());
    const int64_t lo = *lo_it, hi = *hi_it;
    PATHVLM_CHECK(lo >= 0 && hi < vocab, "clip text tower: token ids must be in [0, ", vocab, "), got [", lo, ", ",
                  hi, "]");
  }
  return token_embedding(ids) + position_embedding->weight.slice(0, 0, ids.size(1)).unsqueeze(0);
}

ClipTextTransformerImpl::ClipTextTransformerImpl(const ClipModelConfig& c) {
  embeddings = register_module("embeddings", ClipTextEmbeddings(c.vocab_size, c.text_width, c.context_length));
  encoder = register_module("encoder", ClipEncoder(c.text_layers, c.text_width, c.text_heads, c.text_mlp_dim,
                                                   c.hidden_act, c.layer_norm_eps));
  final_layer_norm = register_module(
      "final_layer_norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.text_width}).eps(c.layer_norm_eps)));
}

torch::Tensor ClipTextTransformerImpl::pooled(const torch::Tensor& ids) {
  auto h = final_layer_norm(encoder(embeddings(ids), /*causal=*/true));
  auto eot = ids.argmax(-1);
  return h.index({torch::arange(h.size(0), eot.options()), eot});
}

// ---- model ---------------------------------------------------------------------------------------

ClipModelImpl::ClipModelImpl(const ClipModelConfig& config, bool init_weights)
    : config_(resolve_clip_config(config)) {
  const auto& c = config_;
  // Without init_weights: Linear layers and embeddings (nearly every value) are left undrawn, and the few small
  // modules whose constructors draw anyway (patch convolution, class embedding, projections) give the stream back.
  const SkipWeightInit skip_init(!init_weights);
  std::optional<KeepCpuRandomStream> keep_stream;
  if (!init_weights) keep_stream.emplace();
  text_model = register_module("text_model", ClipTextTransformer(c));
  vision_model = register_module("vision_model", ClipVisionTransformer(c));
  visual_projection =
      register_module("visual_projection", torch::nn::Linear(torch::nn::LinearOptions(c.vision_width, c.embed_dim).bias(false)));
  text_projection =
      register_module("text_projection", torch::nn::Linear(torch::nn::LinearOptions(c.text_width, c.embed_dim).bias(false)));
  logit_scale = register_parameter("logit_scale", torch::tensor(std::log(1.0 / 0.07), torch::kFloat32));
  if (init_weights) init_clip_weights(*this);
}

torch::Tensor ClipModelImpl::encode_image(const torch::Tensor& pixels) {
  auto h = vision_model->pre_layrnorm(vision_model->embeddings(pixels));
  h = vision_model->encoder(h, /*causal=*/false);
  auto pooled = vision_model->post_layernorm(h.select(1, 0));
  return visual_projection(pooled);
}

torch::Tensor ClipModelImpl::encode_text(const torch::Tensor& ids) { return text_projection(text_model->pooled(ids)); }

torch::Tensor ClipModelImpl::image_tokens(const torch::Tensor& pixels, int select_layer) {
  return vision_model->hidden_state(pixels, select_layer);
}

void ClipModelImpl::set_activation_checkpointing(bool on) {
  vision_model->encoder->checkpointing = on;
  text_model->encoder->checkpointing = on;
}

namespace {

// Freezes `tower` and `projection` except the last `unlocked` encoder blocks and, if any block is
// unlocked, `after` (the final norm) and the projection.
void lock_tower(torch::nn::Module& tower, ClipEncoder& encoder, torch::nn::Module& after,
                torch::nn::Linear& projection, int unlocked, const char* what) {
  const int layers = static_cast<int>(encoder->layers->size());
  PATHVLM_CHECK(unlocked >= 0 && unlocked <= layers, "clip ", what, ": ", unlocked,
                " unlocked blocks requested but the tower has ", layers);
  for (auto& p : tower.parameters()) p.set_requires_grad(false);
  for (auto& p : projection->parameters()) p.set_requires_grad(false);
  if (unlocked == 0) return;
  for (int i = layers - unlocked; i < layers; ++i) {
    for (auto& p : encoder->layers[i]->parameters()) p.set_requires_grad(true);
  }
  for (auto& p : after.parameters()) p.set_requires_grad(true);
  for (auto& p : projection->parameters()) p.set_requires_grad(true);
}

}  // namespace

void ClipModelImpl::lock_image(int unlocked_last_blocks) {
  lock_tower(*vision_model, vision_model->encoder, *vision_model->post_layernorm, visual_projection,
             unlocked_last_blocks, "lock_image");
}

void ClipModelImpl::lock_text(int unlocked_last_layers) {
  lock_tower(*text_model, text_model->encoder, *text_model->final_layer_norm, text_projection, unlocked_last_layers,
             "lock_text");
}

namespace {

void init_clip_encoder(ClipEncoder& encoder, int width, int layers) {
  const double in_std = std::pow(width, -0.5) * std::pow(2.0 * layers, -0.5);
  const double out_std = std::pow(width, -0.5);
  const double fc_std = std::pow(2.0 * width, -0.5);
  for (size_t i = 0; i < encoder->layers->size(); ++i) {
    auto layer = encoder->layers->ptr<ClipEncoderLayerImpl>(i);
    for (auto* proj : {&layer->self_attn->q_proj, &layer->self_attn->k_proj, &layer->self_attn->v_proj}) {
      (*proj)->weight.normal_(0.0, in_std);
    }
    layer->self_attn->out_proj->weight.normal_(0.0, out_std);
    auto mlp = layer->mlp.get<Mlp>();
    mlp->fc1->weight.normal_(0.0, fc_std);
    mlp->fc2->weight.normal_(0.0, in_std);
  }
}

// Biases zero and LayerNorms identity.
void init_biases_and_norms(torch::nn::Module& module) {
  for (auto& item : module.named_parameters()) {
    const auto& name = item.key();
    if (name.size() >= 5 && name.compare(name.size() - 5, 5, ".bias") == 0) item.value().zero_();
    if (name.find("norm") != std::string::npos && name.find(".weight") != std::string::npos) item.value().fill_(1.0);
  }
}

}  // namespace

void init_clip_text_weights(ClipTextTransformerImpl& text, torch::nn::Linear& projection, const ClipModelConfig& c) {
  torch::NoGradGuard no_grad;
  init_biases_and_norms(text);
  text.embeddings->token_embedding->weight.normal_(0.0, 0.02);
  text.embeddings->position_embedding->weight.normal_(0.0, 0.02);
  init_clip_encoder(text.encoder, c.text_width, c.text_layers);
  projection->weight.normal_(0.0, std::pow(c.text_width, -0.5));
}

void init_clip_weights(ClipModelImpl& model) {
  torch::NoGradGuard no_grad;
  const auto& c = model.config();
  // The draws in HF's order (kept so seeded models stay what they were).
  init_biases_and_norms(model);
  model.text_model->embeddings->token_embedding->weight.normal_(0.0, 0.02);
  model.text_model->embeddings->position_embedding->weight.normal_(0.0, 0.02);
  model.vision_model->embeddings->class_embedding.normal_(0.0, std::pow(c.vision_width, -0.5));
  model.vision_model->embeddings->patch_embedding->weight.normal_(0.0, 0.02);
  model.vision_model->embeddings->position_embedding->weight.normal_(0.0, 0.02);
  init_clip_encoder(model.vision_model->encoder, c.vision_width, c.vision_layers);
  init_clip_encoder(model.text_model->encoder, c.text_width, c.text_layers);
  model.visual_projection->weight.normal_(0.0, std::pow(c.vision_width, -0.5));
  model.text_projection->weight.normal_(0.0, std::pow(c.text_width, -0.5));
  model.logit_scale.fill_(std::log(1.0 / 0.07));
}

int64_t count_parameters(torch::nn::Module& module, bool trainable_only) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) {
    if (!trainable_only || p.requires_grad()) n += p.numel();
  }
  return n;
}

}  // namespace pathvlm::models
