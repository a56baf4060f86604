#include "models/swin/weights.h"

#include <cmath>

#include "core/error.h"
#include "io/safetensors.h"
#include "models/vit/loading.h"

namespace pathvlm::models {
namespace {

const char* const kStemWeight = "patch_embed.proj.0.weight";
const char* const kFirstBiasTable = "layers.0.blocks.0.attn.relative_position_bias_table";

// The config from the tensors' shapes; errors name the tensor.
SwinConfig ctranspath_config(const safetensors::Checkpoint& ckpt, const std::string& where) {
  const TensorShapeOf shape = shapes_in(ckpt);
  auto size = [&](const std::string& name, size_t axis, size_t rank) {
    const auto s = shape(name);
    PATHVLM_CHECK(s, where, ": lacks tensor '", name, "'");
    PATHVLM_CHECK(s->size() == rank && (*s)[axis] >= 1 && (*s)[axis] <= (1 << 20), where, ": tensor '", name,
                  "' has shape ", torch::IntArrayRef(*s), ", not ", rank, " dimensions of a Swin's sizes");
    return static_cast<int>((*s)[axis]);
  };
  SwinConfig c;
  c.embed_dim = size("patch_embed.proj.6.weight", 0, 4);
  c.depths.clear();
  c.heads.clear();
  for (int i = 0; ckpt.contains("layers." + std::to_string(i) + ".blocks.0.norm1.weight"); ++i) {
    const std::string stage = "layers." + std::to_string(i) + ".blocks.";
    int depth = 0;
    while (ckpt.contains(stage + std::to_string(depth) + ".norm1.weight")) ++depth;
    c.depths.push_back(depth);
    c.heads.push_back(size(stage + "0.attn.relative_position_bias_table", 1, 2));
  }
  PATHVLM_CHECK(!c.depths.empty(), where, ": no layers.0.blocks.0.norm1.weight: not a Swin");
  const int table = size(kFirstBiasTable, 0, 2);
  const int side = static_cast<int>(std::lround(std::sqrt(static_cast<double>(table))));
  PATHVLM_CHECK(side * side == table && side % 2 == 1, where, ": ", kFirstBiasTable, " has ", table,
                " rows, not (2 window - 1)²");
  c.window = (side + 1) / 2;
  const int hidden = size("layers.0.blocks.0.mlp.fc1.weight", 0, 2);
  PATHVLM_CHECK(hidden % c.embed_dim == 0, where, ": layers.0.blocks.0.mlp.fc1 is ", hidden,
                " wide, not a multiple of ", c.embed_dim);
  c.mlp_ratio = hidden / c.embed_dim;
  c.validate(where);
  return c;
}

void set_linear(Linear& layer, CheckpointTensors& t, const std::string& name) {
  t.copy(layer->weight, name + ".weight");
  if (layer->bias.defined()) t.copy(layer->bias, name + ".bias");
}

void set_batch_norm(torch::nn::BatchNorm2d& bn, CheckpointTensors& t, const std::string& name) {
  t.copy(bn->weight, name + ".weight");
  t.copy(bn->bias, name + ".bias");
  t.copy(bn->running_mean, name + ".running_mean");
  t.copy(bn->running_var, name + ".running_var");
}

// What the loader computes again or does not use: the shifted blocks' masks (TRIDENT drops them too), the batch
// norms' step counters, a classifier.
bool recomputed_or_unused(const std::string& name) {
  const auto ends_with = [&](const std::string& end) {
    return name.size() >= end.size() && name.compare(name.size() - end.size(), end.size(), end) == 0;
  };
  return ends_with(".attn_mask") || ends_with(".num_batches_tracked") || name.rfind("head.", 0) == 0;
}

}  // namespace

bool is_ctranspath(const std::string& path) {
  if (!holds_safetensors(path)) return false;
  const auto ckpt = safetensors::Checkpoint::open(path);
  return ckpt.contains(kStemWeight) && ckpt.contains(kFirstBiasTable);
}

Swin load_ctranspath(const std::string& path) {
  const auto ckpt = safetensors::Checkpoint::open(path);
  const std::string where = "CTransPath '" + path + "'";
  PATHVLM_CHECK(ckpt.contains(kStemWeight) && ckpt.contains(kFirstBiasTable), where,
                ": not a Swin with CTransPath's convolutional stem (", kStemWeight, ", ", kFirstBiasTable, ")");
  const SwinConfig config = ctranspath_config(ckpt, where);
  Swin swin = unset_module<Swin>(config);
  CheckpointTensors t(ckpt, where);
  t.copy(swin->stem_conv1->weight, "patch_embed.proj.0.weight");
  set_batch_norm(swin->stem_bn1, t, "patch_embed.proj.1");
  t.copy(swin->stem_conv2->weight, "patch_embed.proj.3.weight");
  set_batch_norm(swin->stem_bn2, t, "patch_embed.proj.4");
  t.copy(swin->stem_proj->weight, "patch_embed.proj.6.weight");
  t.copy(swin->stem_proj->bias, "patch_embed.proj.6.bias");
  set_layer_norm(swin->patch_norm, t, "patch_embed.norm");
  for (size_t i = 0; i < swin->stages.size(); ++i) {
    const std::string stage = "layers." + std::to_string(i) + ".";
    for (size_t j = 0; j < swin->stages[i].size(); ++j) {
      auto& block = *swin->stages[i][j];
      const std::string b = stage + "blocks." + std::to_string(j) + ".";
      set_layer_norm(block.norm1, t, b + "norm1");
      set_linear(block.qkv, t, b + "attn.qkv");
      set_linear(block.proj, t, b + "attn.proj");
      t.copy(block.relative_position_bias_table, b + "attn.relative_position_bias_table");
      const std::string index = b + "attn.relative_position_index";
      if (t.contains(index)) {
        const auto stored = t.get(index);
        PATHVLM_CHECK(stored.sizes() == block.relative_position_index.sizes() &&
                          stored.to(torch::kLong).equal(block.relative_position_index),
                      where, ": tensor '", index, "' is not the relative position index of a ",
                      config.window, "x", config.window, " window");
      }
      set_layer_norm(block.norm2, t, b + "norm2");
      set_linear(block.fc1, t, b + "mlp.fc1");
      set_linear(block.fc2, t, b + "mlp.fc2");
    }
    if (i < swin->merge_norms.size()) {
      set_layer_norm(swin->merge_norms[i], t, stage + "downsample.norm");
      set_linear(swin->merge_reductions[i], t, stage + "downsample.reduction");
    }
  }
  set_layer_norm(swin->norm, t, "norm");
  t.refuse_untaken(recomputed_or_unused, "CTransPath Swin");
  swin->eval();
  return swin;
}

}  // namespace pathvlm::models
