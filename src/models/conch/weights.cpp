#include "models/conch/weights.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/pixel_statistics.h"
#include "io/safetensors.h"
#include "models/layers/linear.h"
#include "models/vit/loading.h"
#include "models/vit/timm_weights.h"

namespace pathvlm::models {
namespace {

namespace F = torch::nn::functional;

constexpr int kInputSize = 448;    // both versions' input (CONCH's image_size; TRIDENT's img_size for v1.5)
constexpr int kPoolerHeads = 8;    // attn_pooler_heads / n_head in both repositories' code

// Where a version keeps its parts, and the size its trunk is built for.
struct ConchLayout {
  std::string version, trunk, pooler, ln_contrast;  // trunk and pooler: prefixes; ln_contrast: the module
  int model_size;                   // the trunk's img_size: its position grid before the run-time interpolation
  std::array<double, 3> mean, std;  // the pixel normalisation its loader sets
  const char* interpolation;        // and how its transform resizes images
};

// v1: open_clip's transform (bicubic); v1.5: TRIDENT's (bilinear).
const ConchLayout kV1{"v1", "visual.trunk.", "visual.attn_pool_contrast.", "visual.ln_contrast", kInputSize,
                      kOpenAiMean, kOpenAiStd, "bicubic"};
const ConchLayout kV15{"v1.5", "trunk.", "attn_pool_contrast.", "ln_contrast", 224,
                       {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225}, "bilinear"};

// The layout whose pooler and trunk `checkpoint` holds, else null.
const ConchLayout* layout_of(const safetensors::Checkpoint& checkpoint) {
  for (const ConchLayout* layout : {&kV1, &kV15}) {
    if (checkpoint.contains(layout->pooler + "query") && checkpoint.contains(layout->trunk + "patch_embed.proj.weight"))
      return layout;
  }
  return nullptr;
}

// The side of the square grid of a class token + patches position table of `positions` rows, -1 when it is none.
int grid_of(int64_t positions) {
  const double patches = static_cast<double>(std::max<int64_t>(positions - 1, 0));
  const auto side = static_cast<int64_t>(std::lround(std::sqrt(patches)));
  return side > 0 && side * side == positions - 1 ? static_cast<int>(side) : -1;
}

// pos_embed [1, 1 + grid², W]: the class token's row kept, the patches' resampled as `how` says.
torch::Tensor resample_after_class(const torch::Tensor& positions, int grid, const F::InterpolateFuncOptions& how) {
  const auto patches = resample_patch_positions(positions.narrow(1, 1, positions.size(1) - 1), grid, how);
  return torch::cat({positions.narrow(1, 0, 1), patches}, 1);
}

// The checkpoint's position embeddings as the model runs them at kInputSize: resampled to the grid the trunk is built
// for when stored for another (timm's resample_abs_pos_embed: bilinear, no antialiasing), then, where the trunk is
// built smaller than its input (v1.5), interpolated as its forward does at every call (DINO's: bicubic at the scale
// (input grid + 0.1) / model grid).
torch::Tensor run_time_positions(const torch::Tensor& stored, const ConchLayout& layout, int patch,
                                 const std::string& where) {
  const int stored_grid = stored.dim() == 3 && stored.size(0) == 1 ? grid_of(stored.size(1)) : -1;
  PATHVLM_CHECK(stored_grid > 0, where, ": tensor '", layout.trunk, "pos_embed' has shape ", stored.sizes(),
                ", not [1, 1 + a square grid of patches, width]");
  const int model_grid = layout.model_size / patch, input_grid = kInputSize / patch;
  auto positions = stored;
  if (stored_grid != model_grid) {
    positions = resample_after_class(positions, stored_grid,
                                     F::InterpolateFuncOptions()
                                         .size(std::vector<int64_t>{model_grid, model_grid})
                                         .mode(torch::kBilinear)
                                         .align_corners(false));
  }
  if (input_grid == model_grid) return positions;
  const double scale = (input_grid + 0.1) / model_grid;
  return resample_after_class(positions, model_grid,
                              F::InterpolateFuncOptions()
                                  .scale_factor(std::vector<double>{scale, scale})
                                  .mode(torch::kBicubic)
                                  .align_corners(false)
                                  .recompute_scale_factor(false));
}

void set_linear(Linear& layer, const torch::Tensor& weight, const torch::Tensor& bias, const std::string& name,
                const std::string& where) {
  set_vit_tensor(layer->weight, weight, name, where);
  if (layer->bias.defined()) set_vit_tensor(layer->bias, bias, name + " (bias)", where);
}

// The pooler's projections: v1's nn.MultiheadAttention (set_multihead_pooler), v1.5's bias-free to_q, to_kv (keys,
// then values) and to_out.
void set_pooler(AttentionalPoolerImpl& pooler, CheckpointTensors& t, const ConchLayout& layout) {
  const std::string p = layout.pooler;
  if (&layout == &kV1) return set_multihead_pooler(pooler, t, p);
  t.copy(pooler.query, p + "query");
  set_layer_norm(pooler.ln_q, t, p + "ln_q");
  set_layer_norm(pooler.ln_k, t, p + "ln_k");
  const std::string& where = t.where();
  const auto kv = t.get(p + "to_kv.weight");
  PATHVLM_CHECK(kv.dim() == 2 && kv.size(0) % 2 == 0, where, ": tensor '", p, "to_kv.weight' has shape ", kv.sizes(),
                ", not keys and values stacked");
  const auto k_v = kv.chunk(2, 0);
  set_linear(pooler.q_proj, t.get(p + "to_q.weight"), {}, p + "to_q.weight", where);
  set_linear(pooler.k_proj, k_v[0], {}, p + "to_kv.weight", where);
  set_linear(pooler.v_proj, k_v[1], {}, p + "to_kv.weight", where);
  set_linear(pooler.out_proj, t.get(p + "to_out.weight"), {}, p + "to_out.weight", where);
}

// What a v1 checkpoint holds besides the image tower: the CoCa's text tower and decoder, the caption pooler and the
// temperature.
bool outside_the_tile_encoder(const std::string& name) {
  for (const char* part :
       {"text.", "text_decoder.", "logit_scale", "visual.attn_pool_caption.", "visual.ln_caption."}) {
    if (name.rfind(part, 0) == 0) return true;
  }
  return false;
}

// v1.5's repository holds the tile encoder alone: TRIDENT loads it strictly.
bool nothing_else(const std::string&) { return false; }

constexpr int64_t kTextHeadWidth = 64;  // open_clip's text towers: heads = width / 64 (CONCH's 768 -> 12)

}  // namespace

void set_multihead_pooler(AttentionalPoolerImpl& pooler, CheckpointTensors& t, const std::string& prefix) {
  t.copy(pooler.query, prefix + "query");
  set_layer_norm(pooler.ln_q, t, prefix + "ln_q");
  set_layer_norm(pooler.ln_k, t, prefix + "ln_k");
  const std::string& where = t.where();
  const std::string a = prefix + "attn.";
  std::vector<torch::Tensor> weights;
  if (t.contains(a + "in_proj_weight")) {
    weights = t.get(a + "in_proj_weight").chunk(3, 0);
  } else {
    weights = {t.get(a + "q_proj_weight"), t.get(a + "k_proj_weight"), t.get(a + "v_proj_weight")};
  }
  const auto bias = t.get(a + "in_proj_bias");
  PATHVLM_CHECK(bias.dim() == 1 && bias.size(0) == 3 * pooler.q_proj->weight.size(0), where, ": tensor '", a,
                "in_proj_bias' has shape ", bias.sizes(), ", not the queries', keys' and values' biases");
  const auto biases = bias.chunk(3, 0);
  set_linear(pooler.q_proj, weights[0], biases[0], a + "q_proj_weight", where);
  set_linear(pooler.k_proj, weights[1], biases[1], a + "k_proj_weight", where);
  set_linear(pooler.v_proj, weights[2], biases[2], a + "v_proj_weight", where);
  const auto out = t.linear(a + "out_proj");
  set_linear(pooler.out_proj, out.weight, out.bias, a + "out_proj.weight", where);
}

bool is_conch(const std::string& path) {
  return holds_safetensors(path) && layout_of(safetensors::Checkpoint::open(path)) != nullptr;
}

Conch load_conch(const std::string& path) {
  const auto ckpt = safetensors::Checkpoint::open(path);
  const ConchLayout* layout = layout_of(ckpt);
  PATHVLM_CHECK(layout, "'", path, "' holds no CONCH image tower (visual.attn_pool_contrast.query or ",
                "attn_pool_contrast.query with its trunk)");
  const std::string where = "CONCH " + layout->version + " '" + path + "'";

  // The trunk's config from its tensors, its positions read as the grid they will have once resampled.
  const TensorShapeOf stored = shapes_in(ckpt);
  const auto patch_weight = stored(layout->trunk + "patch_embed.proj.weight");
  PATHVLM_CHECK(patch_weight && patch_weight->size() == 4 && (*patch_weight)[2] > 0, where, ": tensor '",
                layout->trunk, "patch_embed.proj.weight' is not [width,3,P,P]");
  const int64_t input_grid = kInputSize / (*patch_weight)[2];
  const TensorShapeOf trunk_shapes = [&](const std::string& name) -> std::optional<std::vector<int64_t>> {
    if (name == "pos_embed" && ckpt.contains(layout->trunk + name))
      return std::vector<int64_t>{1, 1 + input_grid * input_grid, (*patch_weight)[0]};
    return stored(layout->trunk + name);
  };
  VitConfig trunk = timm_vit_config(trunk_shapes, "", "", where);
  PATHVLM_CHECK(trunk.class_token && trunk.reg_tokens == 0 && trunk.global_pool == "token", where,
                ": the trunk is not a ViT with a class token and no register tokens");
  trunk.mean = layout->mean;
  trunk.std = layout->std;
  trunk.interpolation = layout->interpolation;

  const auto query = stored(layout->pooler + "query");
  const auto ln_k = stored(layout->pooler + "ln_k.weight");
  // Bounded before anything is allocated: CONCH's pooler has 1 query, 512 or 768 wide.
  const bool fits = query && query->size() == 2 && (*query)[0] >= 1 && (*query)[0] <= 4096 && (*query)[1] >= 1 &&
                    (*query)[1] <= 65536 && ln_k && ln_k->size() == 1;
  PATHVLM_CHECK(fits, where, ": tensors '", layout->pooler, "query' [queries <= 4096, width <= 65536] and '",
                layout->pooler, "ln_k.weight' [trunk width] are missing or misshapen");
  AttentionalPoolerOptions pooler;
  pooler.queries = (*query)[0];
  pooler.width = (*query)[1];
  pooler.context_width = (*ln_k)[0];
  pooler.heads = kPoolerHeads;
  pooler.bias = layout == &kV1;
  PATHVLM_CHECK(pooler.context_width == trunk.width && pooler.width % pooler.heads == 0, where, ": the pooler is ",
                pooler.width, " wide (", pooler.heads, " heads) over ", pooler.context_width, "-wide tokens (",
                layout->pooler, "ln_k.weight), but the trunk is ", trunk.width, " wide");

  // v1's contrastive projection [pooled width, embedding width].
  std::optional<std::vector<int64_t>> projection;
  if (layout == &kV1) projection = stored("visual.proj_contrast");
  PATHVLM_CHECK(!projection || (projection->size() == 2 && (*projection)[0] == pooler.width &&
                                (*projection)[1] >= 1 && (*projection)[1] <= 65536),
                where, ": tensor 'visual.proj_contrast' is not [", pooler.width, ", embedding width <= 65536]");

  ConchVision model = unset_module<ConchVision>(trunk, pooler, projection ? (*projection)[1] : int64_t{0});
  CheckpointTensors t(ckpt, where);
  set_timm_vit(t, layout->trunk, model->trunk, [&](const torch::Tensor& positions) {
    return run_time_positions(positions, *layout, trunk.patch_size, where);
  });
  set_pooler(*model->attn_pool_contrast, t, *layout);
  set_layer_norm(model->ln_contrast, t, layout->ln_contrast);
  if (projection) t.copy(model->proj_contrast, "visual.proj_contrast");
  t.refuse_untaken(layout == &kV1 ? outside_the_tile_encoder : nothing_else,
                   "CONCH " + layout->version + " image tower");
  model->eval();
  return {model, layout->version};
}

ConchTextTower load_conch_text(const std::string& path) {
  const auto ckpt = safetensors::Checkpoint::open(path);
  const std::string where = "CONCH v1 text tower '" + path + "'";
  PATHVLM_CHECK(ckpt.contains("text.cls_emb"), where, ": no text.cls_emb: only CONCH v1's whole checkpoint "
                "(MahmoodLab/CONCH's pytorch_model.bin) has a text tower; v1.5's holds the image tower alone");
  const TensorShapeOf stored = shapes_in(ckpt);
  ConchTextConfig c;
  const auto embedding = bounded_shape(stored, "text.token_embedding.weight", 2, 1 << 20, where);
  c.vocab = embedding[0];
  c.width = embedding[1];
  c.positions = bounded_shape(stored, "text.positional_embedding", 2, 1 << 16, where)[0];
  c.layers = 0;
  while (c.layers < 1024 && ckpt.contains(str("text.transformer.resblocks.", c.layers, ".attn.in_proj_weight"))) {
    ++c.layers;
  }
  if (c.layers > 0) c.mlp_hidden = bounded_shape(stored, "text.transformer.resblocks.0.mlp.c_fc.weight", 2,
                                                 1 << 20, where)[0];
  c.embed_dim = bounded_shape(stored, "text.text_projection", 2, 1 << 20, where)[1];
  c.heads = std::max<int64_t>(1, c.width / kTextHeadWidth);
  c.validate(where);

  ConchText model = unset_module<ConchText>(c);
  CheckpointTensors t(ckpt, where);
  t.copy(model->token_embedding->weight, "text.token_embedding.weight");
  t.copy(model->positional_embedding, "text.positional_embedding");
  t.copy(model->cls_emb, "text.cls_emb");
  t.copy(model->text_projection, "text.text_projection");
  VitConfig block_config;  // what set_vit_block asks of the model: a GELU MLP
  block_config.mlp = "gelu";
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string b = str("text.transformer.resblocks.", i, ".");
    VitBlockWeights w;
    w.norm1 = t.linear(b + "ln_1");
    w.norm2 = t.linear(b + "ln_2");
    // nn.MultiheadAttention's packed q, k, v.
    split_packed_qkv(w, {t.get(b + "attn.in_proj_weight"), t.get_if(b + "attn.in_proj_bias"), b + "attn.in_proj"},
                     c.width, where);
    w.out = t.linear(b + "attn.out_proj");
    w.fc1 = t.linear(b + "mlp.c_fc");
    w.fc2 = t.linear(b + "mlp.c_proj");
    set_vit_block(*model->blocks[i]->as<TransformerBlockImpl>(), block_config, w, where);
  }
  set_layer_norm(model->ln_final, t, "text.ln_final");
  const auto scale = t.get("logit_scale");
  PATHVLM_CHECK(scale.numel() == 1, where, ": tensor 'logit_scale' holds ", scale.numel(), " values, not 1");
  t.refuse_untaken([](const std::string& name) { return name.rfind("visual.", 0) == 0 ||
                                                        name.rfind("text_decoder.", 0) == 0; },
                   "CONCH v1 text tower");
  model->eval();
  return {model, std::exp(scale.item<double>())};
}

std::unique_ptr<text::Tokenizer> open_conch_tokenizer(const std::string& model_path, const std::string& vocab) {
  if (!vocab.empty()) return text::open_tokenizer(vocab);
  const std::filesystem::path model(model_path);
  auto dir = std::filesystem::is_directory(model) ? model : model.parent_path();
  if (dir.empty()) dir = ".";
  PATHVLM_CHECK(std::filesystem::exists(dir / "tokenizer.json"), "CONCH '", model_path, "' has no tokenizer.json ",
                "beside it: pass --vocab with its tokenizer file (conch_byte_level_bpe_uncased.json, in ",
                "conch/open_clip_custom/tokenizers of the CONCH repository) or copy it to '",
                (dir / "tokenizer.json").string(), "'");
  return text::open_tokenizer(dir.string());
}

}  // namespace pathvlm::models
