#include "models/vit/config.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/ascii.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "core/pil_filters.h"

using json = nlohmann::json;

namespace pathvlm::models {

void VitConfig::validate(const std::string& where) const {
  PATHVLM_CHECK(patch_size > 0 && image_size > 0 && image_size % patch_size == 0, where, ": image size ", image_size,
                " is not a whole number of ", patch_size, "-pixel patches");
  PATHVLM_CHECK(width > 0 && depth > 0 && heads > 0 && width % heads == 0, where, ": width ", width,
                " does not split into ", heads, " heads");
  PATHVLM_CHECK(mlp == "gelu" || mlp == "swiglu", where, ": MLP '", mlp, "' is neither gelu nor swiglu");
  PATHVLM_CHECK(global_pool == "token" || global_pool == "avg" || global_pool == "token+avg", where, ": pooling '",
                global_pool, "' is not supported (token, avg, or token+avg for a model without one)");
  PATHVLM_CHECK(class_token || global_pool == "avg", where, ": pooling '", global_pool, "' needs a class token");
  PATHVLM_CHECK(!fc_norm || global_pool == "avg", where, ": pooling '", global_pool,
                "' does not fit a final norm that follows an avg pooling (timm's fc_norm): only avg does");
  PATHVLM_CHECK(reg_tokens >= 0 && mlp_hidden > 0, where, ": negative register tokens or MLP width");
  for (int i = 0; i < 3; ++i) {
    PATHVLM_CHECK(std::isfinite(mean[i]) && std::isfinite(std[i]) && std[i] > 0, where, ": pixel mean/std [",
                  mean[0], ", ", mean[1], ", ", mean[2], "] / [", std[0], ", ", std[1], ", ", std[2],
                  "] are not finite with a positive std");
  }
}

namespace {

const char* const kPatchWeight = "patch_embed.proj.weight";
// Above any real ViT's width, patch, MLP width or positions (ViT-22B's MLP is 24576 wide), so sizes stay ints.
constexpr int64_t kMaxSize = int64_t{1} << 20;

// The heads of timm's ViT sizes (tiny, small, base, large, huge, giant, DINOv2 giant, gigantic) by width.
int usual_heads(int width, const std::string& where) {
  static const std::map<int, int> heads = {{192, 3},   {384, 6},   {768, 12},  {1024, 16},
                                           {1280, 16}, {1408, 16}, {1536, 24}, {1664, 16}};
  const auto it = heads.find(width);
  PATHVLM_CHECK(it != heads.end(), where, ": no usual head count for width ", width,
                "; give it as model_args.num_heads in config.json");
  return it->second;
}

// The side of a square of n positions, -1 when n is not a square.
int whole_sqrt(int n) {
  const int r = static_cast<int>(std::lround(std::sqrt(static_cast<double>(std::max(n, 0)))));
  return r * r == n && r > 0 ? r : -1;
}

// `key` of `cfg` (the JSON object `label`, e.g. "pretrained_cfg.", names in errors) as 3 numbers.
std::array<double, 3> three_numbers(const json& cfg, const char* key, const std::array<double, 3>& fallback,
                                    const std::string& at, const std::string& label = "") {
  if (!json_fields::present(cfg, key)) return fallback;
  const json& v = cfg.at(key);
  PATHVLM_CHECK(v.is_array() && v.size() == 3 && v[0].is_number() && v[1].is_number() && v[2].is_number(), at,
                ": ", label, key, " must be 3 numbers, got ", v.dump());
  return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>()};
}

// Size `axis` of tensor `name`, which must have `rank` dimensions; a size no ViT has is refused before it is used.
int tensor_size(const TensorShapeOf& shape_of, const std::string& name, size_t axis, size_t rank,
                const std::string& where) {
  const auto s = shape_of(name);
  PATHVLM_CHECK(s, where, ": lacks tensor '", name, "'");
  PATHVLM_CHECK(s->size() == rank, where, ": tensor '", name, "' has shape ", torch::IntArrayRef(*s), ", not ", rank,
                " dimensions");
  PATHVLM_CHECK((*s)[axis] >= 1 && (*s)[axis] <= kMaxSize, where, ": tensor '", name, "' has shape ",
                torch::IntArrayRef(*s), ": size ", (*s)[axis], " is outside 1..", kMaxSize);
  return static_cast<int>((*s)[axis]);
}

json object_or_empty(const json& j, const char* key, const std::string& at) {
  if (!json_fields::present(j, key)) return json::object();
  PATHVLM_CHECK(j.at(key).is_object(), at, ": '", key, "' must be an object, got ", j.at(key).dump());
  return j.at(key);
}

// Width and patch size from the patch embedding's convolution [width,3,P,P].
void read_patch_embedding(const TensorShapeOf& shape_of, const std::string& name, const std::string& where,
                          VitConfig& c) {
  c.width = tensor_size(shape_of, name, 0, 4, where);
  c.patch_size = tensor_size(shape_of, name, 2, 4, where);
  const bool rgb_square = tensor_size(shape_of, name, 1, 4, where) == 3 &&
                         tensor_size(shape_of, name, 3, 4, where) == c.patch_size;
  PATHVLM_CHECK(rgb_square, where, ": ", name, " is not [width,3,P,P] but ", torch::IntArrayRef(*shape_of(name)));
}

}  // namespace

VitConfig timm_vit_config(const TensorShapeOf& shape_of, const std::string& config_json, const std::string& at,
                          const std::string& where) {
  const json cfg = config_json.empty() ? json::object() : json_fields::parse(config_json, at);
  PATHVLM_CHECK(cfg.is_object(), at, ": not a JSON object");
  auto has = [&](const std::string& name) { return shape_of(name).has_value(); };
  auto size = [&](const std::string& name, size_t axis, size_t rank) {
    return tensor_size(shape_of, name, axis, rank, where);
  };
  const json args = object_or_empty(cfg, "model_args", at);
  const std::string architecture = json_fields::string_or(cfg, "architecture", "", at);
  PATHVLM_CHECK(architecture.empty() || architecture.rfind("vit_", 0) == 0, at, ": architecture '", architecture,
                "' is not a timm VisionTransformer (vit_*)");

  VitConfig c;
  read_patch_embedding(shape_of, kPatchWeight, where, c);
  c.depth = 0;
  while (has("blocks." + std::to_string(c.depth) + ".norm1.weight")) ++c.depth;
  PATHVLM_CHECK(c.depth > 0, where, ": no blocks.0.norm1.weight: not a timm ViT");
  const int64_t heads = json_fields::integer_or(args, "num_heads", 0, at + ": model_args");
  PATHVLM_CHECK(heads >= 0 && heads <= c.width, at, ": model_args.num_heads ", heads, " is not 1..", c.width);
  c.heads = heads > 0 ? static_cast<int>(heads) : usual_heads(c.width, where);

  c.class_token = has("cls_token");
  c.reg_tokens = has("reg_token") ? size("reg_token", 1, 3) : 0;
  const int positions = size("pos_embed", 1, 3);
  if (json_fields::present(args, "no_embed_class")) {
    c.no_embed_class = json_fields::bool_or(args, "no_embed_class", false, at + ": model_args");
  } else {  // the grid is square: only one reading of the length gives a whole side
    c.no_embed_class = whole_sqrt(positions - c.prefix_tokens()) < 0 && whole_sqrt(positions) > 0;
  }
  const int grid = whole_sqrt(positions - (c.no_embed_class ? 0 : c.prefix_tokens()));
  PATHVLM_CHECK(grid > 0, where, ": pos_embed holds ", positions, " positions, not a square grid of patches",
                c.no_embed_class ? "" : " after the class and register tokens");
  c.image_size = grid * c.patch_size;
  if (json_fields::present(args, "img_size")) {
    const json& s = args.at("img_size");
    const bool square = s.is_number_integer() || (s.is_array() && s.size() == 2 && s[0] == s[1] && s[0].is_number());
    PATHVLM_CHECK(square && (s.is_array() ? s[0] : s).get<int>() == c.image_size, at, ": model_args.img_size ",
                  s.dump(), " is not the ", c.image_size, " px the position embeddings are for (", grid, "x", grid,
                  " patches of ", c.patch_size, "); resampling them is not supported");
  }

  if (has("blocks.0.mlp.fc1_g.weight")) {  // timm's SwiGLU: separate gate and value projections
    c.mlp = "swiglu";
    c.mlp_hidden = size("blocks.0.mlp.fc1_g.weight", 0, 2);
  } else {
    const int fc1 = size("blocks.0.mlp.fc1.weight", 0, 2), fc2 = size("blocks.0.mlp.fc2.weight", 1, 2);
    PATHVLM_CHECK(fc2 == fc1 || 2 * fc2 == fc1, where, ": blocks.0.mlp.fc1 gives ", fc1, " features and fc2 reads ",
                  fc2, ": neither an MLP nor a packed SwiGLU");
    c.mlp = fc2 == fc1 ? "gelu" : "swiglu";  // SwiGLUPacked: fc1 holds the gate and the value, fc2 reads half
    c.mlp_hidden = fc2;
  }
  // timm's config.json names the activation as a string when at all ("silu", "torch.nn.modules.activation.SiLU").
  const std::string act = json_fields::string_or(args, "act_layer", "", at + ": model_args");
  const std::string lower = ascii_lower(act);
  const auto names = [&](const char* part) { return lower.find(part) != std::string::npos; };
  const bool fits = c.mlp == "swiglu" ? names("silu") || names("swish") : names("gelu") && !names("tanh");
  PATHVLM_CHECK(act.empty() || fits, at, ": model_args.act_layer '", act, "' with ",
                c.mlp == "swiglu" ? "a gated (SwiGLU) MLP: only SiLU is supported"
                                  : "a plain MLP: only exact GELU is supported");

  const std::string top_pool = json_fields::string_or(cfg, "global_pool", "token", at);
  const std::string pool = json_fields::string_or(args, "global_pool", top_pool, at + ": model_args");
  c.global_pool = pool.empty() ? "token+avg" : pool;
  // timm's default: the final norm follows an avg pooling, and precedes the others.
  c.fc_norm = json_fields::bool_or(args, "fc_norm", c.global_pool == "avg", at + ": model_args");
  const json pretrained = object_or_empty(cfg, "pretrained_cfg", at);
  c.mean = three_numbers(pretrained, "mean", c.mean, at, "pretrained_cfg.");
  c.std = three_numbers(pretrained, "std", c.std, at, "pretrained_cfg.");
  c.interpolation = json_fields::string_or(pretrained, "interpolation", c.interpolation, at + ": pretrained_cfg");
  c.validate(where);
  return c;
}

namespace {

// The side of a square size as transformers' image processors write it: a number, {height, width} or
// {shortest_edge} (a square tile resized by its shortest edge stays square).
int square_side(const json& v, const std::string& key, const std::string& at) {
  auto side = [&](const json& n) {
    PATHVLM_CHECK(n.is_number_integer() && n.get<int64_t>() >= 1 && n.get<int64_t>() <= kMaxSize, at, ": ", key,
                  " must hold sizes in pixels, got ", v.dump());
    return static_cast<int>(n.get<int64_t>());
  };
  if (v.is_number()) return side(v);
  PATHVLM_CHECK(v.is_object(), at, ": ", key, " must be a number or an object, got ", v.dump());
  if (v.contains("shortest_edge")) return side(v.at("shortest_edge"));
  PATHVLM_CHECK(v.contains("height") && v.contains("width"), at, ": ", key,
                " has neither height/width nor shortest_edge: ", v.dump());
  const int height = side(v.at("height")), width = side(v.at("width"));
  PATHVLM_CHECK(height == width, at, ": ", key, " is ", height, "x", width, "; only square inputs are supported");
  return height;
}

}  // namespace

HfVitLayout hf_vit_config(const TensorShapeOf& shape_of, const std::string& config_json,
                          const std::string& preprocessor_json, const std::string& at,
                          const std::string& preprocessor_at, const std::string& where) {
  const json cfg = json_fields::parse(config_json, at);
  PATHVLM_CHECK(cfg.is_object(), at, ": not a JSON object");
  HfVitLayout layout;
  layout.model_type = json_fields::string_or(cfg, "model_type", "", at);
  const bool vit = layout.model_type == "vit", registers = layout.model_type == "dinov2_with_registers";
  PATHVLM_CHECK(vit || registers || layout.model_type == "dinov2", at, ": model_type '", layout.model_type,
                "' is not a transformers ViT (vit, dinov2, dinov2_with_registers)");
  const std::string embedding = "embeddings.patch_embeddings.projection.weight";
  const std::string base = (vit ? "vit" : layout.model_type) + ".";  // task heads keep the model under this name
  layout.prefix = shape_of(embedding) ? "" : base;
  const std::string& p = layout.prefix;
  auto has = [&](const std::string& name) { return shape_of(p + name).has_value(); };
  auto size = [&](const std::string& name, size_t axis, size_t rank) {
    return tensor_size(shape_of, p + name, axis, rank, where);
  };

  VitConfig& c = layout.config;
  read_patch_embedding(shape_of, p + embedding, where, c);
  layout.norm1 = vit ? "layernorm_before" : "norm1";
  layout.norm2 = vit ? "layernorm_after" : "norm2";
  c.depth = 0;
  while (has("encoder.layer." + std::to_string(c.depth) + "." + layout.norm1 + ".weight")) ++c.depth;
  PATHVLM_CHECK(c.depth > 0, where, ": no ", p, "encoder.layer.0.", layout.norm1, ".weight: not a ",
                layout.model_type, " checkpoint");
  const int64_t heads = json_fields::integer_or(cfg, "num_attention_heads", 12, at);  // transformers' default
  PATHVLM_CHECK(heads >= 1 && heads <= c.width, at, ": num_attention_heads ", heads, " is not 1..", c.width);
  c.heads = static_cast<int>(heads);
  c.norm_eps = json_fields::number_or(cfg, "layer_norm_eps", vit ? 1e-12 : 1e-6, at);
  PATHVLM_CHECK(c.norm_eps > 0 && c.norm_eps < 1, at, ": layer_norm_eps ", c.norm_eps, " is not in (0, 1)");

  // [1, count, width] tokens.
  auto tokens = [&](const std::string& name) {
    PATHVLM_CHECK(size(name, 0, 3) == 1 && size(name, 2, 3) == c.width, where, ": tensor '", p, name, "' has shape ",
                  torch::IntArrayRef(*shape_of(p + name)), ", not [1, count, ", c.width, "]");
    return size(name, 1, 3);
  };
  PATHVLM_CHECK(tokens("embeddings.cls_token") == 1, where, ": ", p, "embeddings.cls_token is not one token");
  c.class_token = true;
  // DINOv2's registers get no position embedding: the class token's is folded into it when the weights load.
  c.reg_tokens = registers ? tokens("embeddings.register_tokens") : 0;
  c.no_embed_class = registers;
  const int positions = tokens("embeddings.position_embeddings");
  layout.position_grid = whole_sqrt(positions - 1);
  PATHVLM_CHECK(layout.position_grid > 0, where, ": ", p, "embeddings.position_embeddings holds ", positions,
                " positions, not the class token's and a square grid of patches");

  const std::string layer0 = "encoder.layer.0.";
  if (vit) {
    layout.fc1 = "intermediate.dense";
    layout.fc2 = "output.dense";
  } else {
    const bool swiglu = has(layer0 + "mlp.weights_in.weight");
    layout.fc1 = swiglu ? "mlp.weights_in" : "mlp.fc1";
    layout.fc2 = swiglu ? "mlp.weights_out" : "mlp.fc2";
  }
  const int fc1 = size(layer0 + layout.fc1 + ".weight", 0, 2), fc2 = size(layer0 + layout.fc2 + ".weight", 1, 2);
  c.mlp = layout.fc1 == "mlp.weights_in" ? "swiglu" : "gelu";  // DINOv2's SwiGLU packs the gate, then the value
  PATHVLM_CHECK(fc1 == (c.mlp == "swiglu" ? 2 * fc2 : fc2), where, ": ", p, layer0, layout.fc1, " gives ", fc1,
                " features and ", layout.fc2, " reads ", fc2);
  c.mlp_hidden = fc2;
  const std::string act = json_fields::string_or(cfg, "hidden_act", "gelu", at);
  PATHVLM_CHECK(c.mlp == "swiglu" || act == "gelu", at, ": hidden_act '", act,
                "' is not supported (exact GELU, \"gelu\", is)");

  // The input the model was trained on, and how its pixels are normalised.
  const json pre = preprocessor_json.empty() ? json() : json_fields::parse(preprocessor_json, preprocessor_at);
  PATHVLM_CHECK(pre.is_object(), preprocessor_at, preprocessor_json.empty() ? " is missing" : ": not a JSON object",
                ": it gives the pixel mean/std and the input size the model was trained with (it comes with the model "
                "on the hub)");
  const bool crop = json_fields::bool_or(pre, "do_center_crop", json_fields::present(pre, "crop_size"),
                                         preprocessor_at);
  const bool resize = json_fields::bool_or(pre, "do_resize", true, preprocessor_at);
  const char* size_key = crop ? "crop_size" : "size";
  c.image_size = (crop || resize) && json_fields::present(pre, size_key)
                     ? square_side(pre.at(size_key), size_key, preprocessor_at)
                     : layout.position_grid * c.patch_size;
  // The filter it resizes with: `resample` in PIL's numbering, else its processor's default (BitImageProcessor,
  // DINOv2's: bicubic; ViTImageProcessor's: bilinear).
  const bool bit = json_fields::string_or(pre, "image_processor_type", "", preprocessor_at).rfind("BitImage", 0) == 0;
  const int64_t resample = json_fields::integer_or(pre, "resample", bit ? 3 : 2, preprocessor_at);
  c.interpolation = pil_filter_name(resample);
  PATHVLM_CHECK(json_fields::bool_or(pre, "do_rescale", true, preprocessor_at) &&
                    std::abs(json_fields::number_or(pre, "rescale_factor", 1.0 / 255, preprocessor_at) * 255 - 1) <
                        1e-6,
                preprocessor_at, ": only pixels rescaled by 1/255 (do_rescale, rescale_factor) are supported");
  if (json_fields::bool_or(pre, "do_normalize", true, preprocessor_at)) {
    PATHVLM_CHECK(json_fields::present(pre, "image_mean") && json_fields::present(pre, "image_std"), preprocessor_at,
                  ": lacks image_mean / image_std");
    c.mean = three_numbers(pre, "image_mean", c.mean, preprocessor_at);
    c.std = three_numbers(pre, "image_std", c.std, preprocessor_at);
  } else {
    c.mean = {0, 0, 0};
    c.std = {1, 1, 1};
  }
  PATHVLM_CHECK(c.patch_size > 0 && c.image_size % c.patch_size == 0, preprocessor_at, ": input size ", c.image_size,
                " is not a whole number of ", c.patch_size, "-pixel patches");
  // ViTModel takes only the size its position embeddings are for (transformers refuses others unless asked to
  // interpolate); DINOv2 resamples them (bicubic), as pathvlm does when the weights load.
  PATHVLM_CHECK(c.grid() == layout.position_grid || !vit, preprocessor_at, ": input size ", c.image_size,
                " px is not the ", layout.position_grid * c.patch_size,
                " px ViTModel's position embeddings are for (transformers resamples only DINOv2's)");
  c.global_pool = "token";  // the class token: ViTModel's last_hidden_state[:, 0], DINOv2's pooler_output
  c.validate(where);
  return layout;
}

}  // namespace pathvlm::models
