#include "models/titan/weights.h"

#include <filesystem>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/conch/weights.h"
#include "models/vit/loading.h"

namespace pathvlm::models {
namespace {

const std::string kPrefix = "vision_encoder.";

// TITAN's TitanVisionConfig defaults, for a directory without config.json.
constexpr int64_t kHeads = 12, kPoolerHeads = 8;

// What the slide embedding does not use: everything outside the vision encoder, its caption pooler (CoCa's 128
// queries) and the projection into the text tower's space.
bool outside_the_slide_embedding(const std::string& name) {
  return name.rfind(kPrefix, 0) != 0 || name.rfind(kPrefix + "attn_pool.", 0) == 0 || name == kPrefix + "proj";
}

// config.json's vision_config beside the weights, an empty object when there is no config.json.
nlohmann::json vision_config(const std::string& path) {
  const std::filesystem::path weights(path);
  auto dir = std::filesystem::is_directory(weights) ? weights : weights.parent_path();
  const auto file = (dir.empty() ? std::filesystem::path(".") : dir) / "config.json";
  if (!std::filesystem::exists(file)) return nlohmann::json::object();
  const auto config = json_fields::parse(read_text_file(file.string()), file.string());
  if (!json_fields::present(config, "vision_config")) return nlohmann::json::object();
  const auto& vision = config["vision_config"];
  PATHVLM_CHECK(vision.is_object(), file.string(), ": 'vision_config' must be an object");
  return vision;
}

}  // namespace

bool is_titan(const std::string& path) {
  if (!holds_safetensors(path)) return false;
  const auto ckpt = safetensors::Checkpoint::open(path);
  return ckpt.contains(kPrefix + "attn_pool_contrastive.query") && ckpt.contains(kPrefix + "patch_embed.0.weight");
}

TitanSlideEncoder load_titan(const std::string& path) {
  const auto ckpt = safetensors::Checkpoint::open(path);
  const std::string where = "TITAN '" + path + "'";
  PATHVLM_CHECK(ckpt.contains(kPrefix + "patch_embed.0.weight"), where, ": no '", kPrefix,
                "patch_embed.0.weight': not TITAN's slide encoder (MahmoodLab/TITAN's model.safetensors)");
  const auto vision = vision_config(path);
  const std::string at = where + " config.json vision_config";
  const auto positions = json_fields::string_or(vision, "pos_encode_type", "alibi", at);
  PATHVLM_CHECK(positions == "alibi", at, ": pos_encode_type '", positions, "' is not supported (TITAN's is 'alibi')");

  const TensorShapeOf stored = shapes_in(ckpt);
  TitanConfig c;
  const auto embed = bounded_shape(stored, kPrefix + "patch_embed.0.weight", 2, 1 << 16, where);
  c.width = embed[0];
  c.input_dim = embed[1];
  c.depth = 0;
  while (c.depth < 1024 && ckpt.contains(str(kPrefix, "blocks.modules_list.", c.depth, ".attn.qkv.weight"))) ++c.depth;
  PATHVLM_CHECK(c.depth > 0, where, ": no '", kPrefix, "blocks.modules_list.0.attn.qkv.weight'");
  c.mlp_hidden = bounded_shape(stored, kPrefix + "blocks.modules_list.0.mlp.fc1.weight", 2, 1 << 20, where)[0];
  c.heads = json_fields::integer_or(vision, "num_heads", kHeads, at);
  c.pooler_heads = json_fields::integer_or(vision, "attn_pooler_heads", kPoolerHeads, at);
  c.validate(where);
  const auto query = bounded_shape(stored, kPrefix + "attn_pool_contrastive.query", 2, 1 << 16, where);
  PATHVLM_CHECK(query[0] == 1 && query[1] == c.width, where, ": tensor '", kPrefix,
                "attn_pool_contrastive.query' is ", torch::IntArrayRef(query), ", not one query [1, ", c.width, "]");

  TitanSlideEncoder model = unset_module<TitanSlideEncoder>(c);
  CheckpointTensors t(ckpt, where);
  const auto embed_linear = t.linear(kPrefix + "patch_embed.0");
  set_vit_tensor(model->patch_embed->weight, embed_linear.weight, embed_linear.name + ".weight", where);
  set_vit_tensor(model->patch_embed->bias, embed_linear.bias, embed_linear.name + ".bias", where);
  t.copy(model->cls_token, kPrefix + "cls_token");
  VitConfig block_config;  // what set_vit_block asks of the model: a GELU MLP
  block_config.mlp = "gelu";
  for (int64_t i = 0; i < c.depth; ++i) {
    const std::string b = str(kPrefix, "blocks.modules_list.", i, ".");
    VitBlockWeights w;
    w.norm1 = t.linear(b + "norm1");
    w.norm2 = t.linear(b + "norm2");
    split_packed_qkv(w, t.linear(b + "attn.qkv"), c.width, where);
    w.out = t.linear(b + "attn.proj");
    w.fc1 = t.linear(b + "mlp.fc1");
    w.fc2 = t.linear(b + "mlp.fc2");
    set_vit_block(*model->blocks[i]->as<TransformerBlockImpl>(), block_config, w, where);
  }
  set_layer_norm(model->norm, t, kPrefix + "norm");
  set_multihead_pooler(*model->attn_pool_contrastive, t, kPrefix + "attn_pool_contrastive.");
  t.refuse_untaken(outside_the_slide_embedding, "TITAN's slide encoder");
  model->eval();
  return model;
}

}  // namespace pathvlm::models
