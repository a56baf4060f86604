#include "models/titan/model.h"

#include <cmath>

#include "core/error.h"
#include "models/layers/transformer_block.h"

namespace pathvlm::models {

namespace {

constexpr double kTimmLayerNormEps = 1e-6;  // the blocks' and the final norm's (timm's ViT)
// float32 scores of one attention chunk: 16 MiB, which the allocators reuse (larger chunks were mapped and unmapped
// for each chunk on the CPU, a third of the time in the kernel).
constexpr int64_t kScoresPerChunk = int64_t{1} << 22;

}  // namespace

void TitanConfig::validate(const std::string& where) const {
  PATHVLM_CHECK(input_dim > 0 && width > 0 && depth > 0 && mlp_hidden > 0, where, ": sizes must be positive (input ",
                input_dim, ", width ", width, ", depth ", depth, ", MLP ", mlp_hidden, ")");
  PATHVLM_CHECK(heads > 0 && width % heads == 0, where, ": width ", width, " does not split into ", heads, " heads");
  PATHVLM_CHECK(pooler_heads > 0 && width % pooler_heads == 0, where, ": width ", width, " does not split into ",
                pooler_heads, " pooler heads");
}

TitanGrid titan_grid(const torch::Tensor& features, const torch::Tensor& coords, int64_t patch_size_level0) {
  PATHVLM_CHECK(features.dim() == 2 && features.size(0) > 0 && coords.dim() == 2 && coords.size(1) == 2 &&
                    coords.size(0) == features.size(0),
                "TITAN: expected features [N,D] and coords [N,2] of N > 0 tiles, got ", features.sizes(), " and ",
                coords.sizes());
  PATHVLM_CHECK(patch_size_level0 > 0, "TITAN: patch_size_level0 must be positive, got ", patch_size_level0);
  const auto xy = coords.to(torch::kInt64);
  const auto offset = std::get<0>(xy.min(0));
  const auto cells = torch::div(xy - offset, patch_size_level0, "floor");
  const auto columns = cells.select(1, 1).max() + 1;
  const auto linear = cells.select(1, 0) * columns + cells.select(1, 1);
  const auto unique = at::_unique2(linear, /*sorted=*/true, /*return_inverse=*/true);
  const auto& occupied = std::get<0>(unique);
  const auto summed = torch::zeros({occupied.size(0), features.size(1)}, features.options().dtype(torch::kFloat32))
                          .index_add_(0, std::get<1>(unique), features.to(torch::kFloat32));
  const auto tissue = (summed != 0).any(1);
  const auto kept = occupied.index({tissue});
  return {summed.index({tissue}), torch::stack({torch::div(kept, columns, "floor"), kept.remainder(columns)}, 1)};
}

std::vector<double> alibi_slopes(int64_t heads) {
  PATHVLM_CHECK(heads > 0, "ALiBi: heads must be positive, got ", heads);
  const auto power_of_two = [](int64_t n) {
    std::vector<double> slopes;
    for (int64_t i = 1; i <= n; ++i) slopes.push_back(std::pow(2.0, -8.0 * static_cast<double>(i) / n));
    return slopes;
  };
  int64_t below = 1;
  while (below * 2 <= heads) below *= 2;
  auto slopes = power_of_two(below);
  const auto above = power_of_two(2 * below);
  for (size_t i = 0; slopes.size() < static_cast<size_t>(heads); i += 2) slopes.push_back(above[i]);
  return slopes;
}

torch::Tensor alibi_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& cells, const torch::Tensor& slopes, int64_t chunk) {
  const int64_t heads = q.size(0), tokens = q.size(1), patches = tokens - 1;
  PATHVLM_CHECK(q.dim() == 3 && k.sizes() == q.sizes() && v.sizes() == q.sizes() && cells.dim() == 2 &&
                    cells.size(0) == patches && slopes.numel() == heads && chunk > 0,
                "ALiBi attention: expected q, k, v [H, 1 + n, d], cells [n, 2] and H slopes, got ", q.sizes(), ", ",
                cells.sizes(), " and ", slopes.numel());
  const auto f32 = q.options().dtype(torch::kFloat32);
  const auto keys = k.to(torch::kFloat32).transpose(1, 2), values = v.to(torch::kFloat32);
  const auto position = cells.to(f32);
  const auto negative_slopes = -slopes.to(f32).view({heads, 1, 1});
  const double scale = 1.0 / std::sqrt(static_cast<double>(q.size(2)));
  auto out = torch::empty(q.sizes(), f32);
  for (int64_t start = 0; start < tokens; start += chunk) {
    const int64_t rows = std::min(chunk, tokens - start);
    // Distances from this chunk's patch rows to every patch column; the class token's row and column stay 0.
    auto distance = torch::zeros({rows, tokens}, f32);
    const int64_t first = std::max<int64_t>(start, 1), patch_rows = start + rows - first;
    if (patch_rows > 0 && patches > 0) {
      const auto from = position.narrow(0, first - 1, patch_rows).unsqueeze(1);
      distance.narrow(0, first - start, patch_rows).narrow(1, 1, patches).copy_((from - position.unsqueeze(0))
                                                                                    .pow(2)
                                                                                    .sum(-1)
                                                                                    .sqrt());
    }
    // bias + (q / sqrt(d)) k^T in one GEMM: [H, rows, 1 + n]
    const auto scores = torch::baddbmm(negative_slopes * distance.unsqueeze(0),
                                       q.narrow(1, start, rows).to(torch::kFloat32) * scale, keys);
    out.narrow(1, start, rows).copy_(torch::matmul(torch::softmax(scores, -1), values));
  }
  return out.to(q.scalar_type());
}

TitanSlideEncoderImpl::TitanSlideEncoderImpl(const TitanConfig& config) : config_(config) {
  config_.validate("TITAN");
  const int64_t w = config_.width;
  patch_embed = register_module("patch_embed", Linear(config_.input_dim, w));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, w}));
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config_.depth; ++i) {
    blocks->push_back(TransformerBlock(TransformerBlockOptions(AttentionOptions(w, config_.heads))
                                           .mlp_hidden(config_.mlp_hidden)
                                           .mlp_act("gelu")
                                           .norm_eps(kTimmLayerNormEps)
                                           .attention_name("attn")
                                           .norm1_name("norm1")
                                           .norm2_name("norm2")));
  }
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({w}).eps(kTimmLayerNormEps)));
  AttentionalPoolerOptions pooler;
  pooler.width = pooler.context_width = w;
  pooler.heads = config_.pooler_heads;
  attn_pool_contrastive = register_module("attn_pool_contrastive", AttentionalPooler(pooler));
  const auto slopes = alibi_slopes(config_.heads);
  slopes_ = register_buffer("alibi_slopes", torch::tensor(slopes, torch::kFloat32));
}

torch::Tensor TitanSlideEncoderImpl::forward(const torch::Tensor& features, const torch::Tensor& coords,
                                             int64_t patch_size_level0) {
  PATHVLM_CHECK(features.dim() == 2 && features.size(1) == config_.input_dim, "TITAN: expected tile features [N, ",
                config_.input_dim, "], got ", features.sizes());
  const auto device = cls_token.device();
  const auto grid = titan_grid(features.to(device), coords.to(device), patch_size_level0);
  const int64_t w = config_.width, heads = config_.heads, tokens = 1 + grid.cells.size(0);
  const int64_t chunk =
      attention_chunk_ > 0 ? attention_chunk_ : std::max<int64_t>(1, kScoresPerChunk / (heads * tokens));
  const auto dtype = cls_token.scalar_type();
  auto x = torch::cat({cls_token.view({1, w}), torch::gelu(patch_embed(grid.features.to(dtype)))}).unsqueeze(0);
  const auto split = [&](const torch::Tensor& t) { return t.view({tokens, heads, w / heads}).transpose(0, 1); };
  for (const auto& module : *blocks) {
    auto& block = *module->as<TransformerBlockImpl>();
    const auto [q, k, v] = block.self_attn->project_qkv(block.norm1.forward(x));
    const auto attended = alibi_attention(split(q), split(k), split(v), grid.cells, slopes_, chunk);
    const auto h = x + block.self_attn->out_proj(attended.transpose(0, 1).reshape({1, tokens, w}));
    x = h + block.mlp.forward(block.norm2.forward(h));
  }
  return attn_pool_contrastive(norm(x)).view({w});
}

}  // namespace pathvlm::models
