#include "models/vit/config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/error.h"
#include "core/json_fields.h"

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
  PATHVLM_CHECK(reg_tokens >= 0 && mlp_hidden > 0, where, ": negative register tokens or MLP width");
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

std::array<double, 3> three_numbers(const json& cfg, const char* key, const std::array<double, 3>& fallback,
                                    const std::string& at) {
  if (!json_fields::present(cfg, key)) return fallback;
  const json& v = cfg.at(key);
  PATHVLM_CHECK(v.is_array() && v.size() == 3 && v[0].is_number() && v[1].is_number() && v[2].is_number(), at,
                ": pretrained_cfg.", key, " must be 3 numbers, got ", v.dump());
  return {v[0].get<double>(), v[1].get<double>(), v[2].get<double>()};
}

json object_or_empty(const json& j, const char* key, const std::string& at) {
  if (!json_fields::present(j, key)) return json::object();
  PATHVLM_CHECK(j.at(key).is_object(), at, ": '", key, "' must be an object, got ", j.at(key).dump());
  return j.at(key);
}

}  // namespace

VitConfig timm_vit_config(const TensorShapeOf& shape_of, const std::string& config_json, const std::string& at,
                          const std::string& where) {
  const json cfg = config_json.empty() ? json::object() : json_fields::parse(config_json, at);
  PATHVLM_CHECK(cfg.is_object(), at, ": not a JSON object");
  auto has = [&](const std::string& name) { return shape_of(name).has_value(); };
  // Size `axis` of tensor `name`, which must have `rank` dimensions; a size no ViT has is refused before it is used.
  auto size = [&](const std::string& name, size_t axis, size_t rank) {
    const auto s = shape_of(name);
    PATHVLM_CHECK(s, where, ": lacks tensor '", name, "'");
    PATHVLM_CHECK(s->size() == rank, where, ": tensor '", name, "' has shape ", torch::IntArrayRef(*s), ", not ", rank,
                  " dimensions");
    PATHVLM_CHECK((*s)[axis] >= 1 && (*s)[axis] <= kMaxSize, where, ": tensor '", name, "' has shape ",
                  torch::IntArrayRef(*s), ": size ", (*s)[axis], " is outside 1..", kMaxSize);
    return static_cast<int>((*s)[axis]);
  };
  const json args = object_or_empty(cfg, "model_args", at);
  const std::string architecture = json_fields::string_or(cfg, "architecture", "", at);
  PATHVLM_CHECK(architecture.empty() || architecture.rfind("vit_", 0) == 0, at, ": architecture '", architecture,
                "' is not a timm VisionTransformer (vit_*)");

  VitConfig c;
  c.width = size(kPatchWeight, 0, 4);
  c.patch_size = size(kPatchWeight, 2, 4);
  PATHVLM_CHECK(size(kPatchWeight, 1, 4) == 3 && size(kPatchWeight, 3, 4) == c.patch_size, where, ": ", kPatchWeight,
                " is not [width,3,P,P] but ", torch::IntArrayRef(*shape_of(kPatchWeight)));
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
  std::string lower = act;
  for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  const auto names = [&](const char* part) { return lower.find(part) != std::string::npos; };
  const bool fits = c.mlp == "swiglu" ? names("silu") || names("swish") : names("gelu") && !names("tanh");
  PATHVLM_CHECK(act.empty() || fits, at, ": model_args.act_layer '", act, "' with ",
                c.mlp == "swiglu" ? "a gated (SwiGLU) MLP: only SiLU is supported"
                                  : "a plain MLP: only exact GELU is supported");

  const std::string top_pool = json_fields::string_or(cfg, "global_pool", "token", at);
  const std::string pool = json_fields::string_or(args, "global_pool", top_pool, at + ": model_args");
  c.global_pool = pool.empty() ? "token+avg" : pool;
  if (json_fields::present(args, "fc_norm")) {
    const bool fc_norm = json_fields::bool_or(args, "fc_norm", false, at + ": model_args");
    PATHVLM_CHECK(fc_norm == c.norm_after_pool(), at, ": model_args.fc_norm ", fc_norm, " with pooling '", pool,
                  "' is not supported (the norm goes after an avg pooling, before the others)");
  }
  const json pretrained = object_or_empty(cfg, "pretrained_cfg", at);
  c.mean = three_numbers(pretrained, "mean", c.mean, at);
  c.std = three_numbers(pretrained, "std", c.std, at);
  c.validate(where);
  return c;
}

}  // namespace pathvlm::models
