#include "models/swin/model.h"

#include "core/error.h"

namespace pathvlm::models {

void SwinConfig::validate(const std::string& where) const {
  const size_t n = depths.size();
  PATHVLM_CHECK(n >= 1 && n <= 8 && heads.size() == n, where, ": ", n, " stages of depths but ", heads.size(),
                " of heads (1..8 stages)");
  PATHVLM_CHECK(embed_dim >= 8 && embed_dim % 8 == 0 && embed_dim <= (1 << 16), where, ": width ", embed_dim,
                " is not a multiple of 8 up to 65536 (the convolutional stem's first layer is an eighth of it)");
  PATHVLM_CHECK(window >= 1 && window <= 64 && mlp_ratio >= 1 && mlp_ratio <= 16, where, ": window ", window,
                " or MLP ratio ", mlp_ratio, " is out of range");
  PATHVLM_CHECK(image_size >= 4 && image_size % (4 << (n - 1)) == 0, where, ": image size ", image_size,
                " does not halve ", n - 1, " times after the stem's 4x reduction");
  for (size_t i = 0; i < n; ++i) {
    const int w = std::min(side(i), window);
    PATHVLM_CHECK(depths[i] >= 1 && depths[i] <= 64 && heads[i] >= 1 && width(i) % heads[i] == 0, where, ": stage ",
                  i, " has ", depths[i], " blocks and ", heads[i], " heads for width ", width(i));
    PATHVLM_CHECK(side(i) % w == 0, where, ": stage ", i, "'s ", side(i), "x", side(i), " tokens do not tile into ",
                  w, "x", w, " windows");
  }
}

namespace {

// [N, N] rows of the (2w-1)² bias table each query (row) and key (column) of a w x w window take.
torch::Tensor relative_positions(int window) {
  const auto grid = torch::arange(window, torch::kLong);
  const auto coords = torch::stack(torch::meshgrid({grid, grid}, "ij")).flatten(1);  // [2, N]
  const auto relative = coords.unsqueeze(2) - coords.unsqueeze(1) + (window - 1);     // [2, N, N]
  return relative[0] * (2 * window - 1) + relative[1];
}

// Window tokens [B*nW, w², C] of a [B, side, side, C] grid, and back.
torch::Tensor to_windows(const torch::Tensor& x, int window) {
  const int64_t b = x.size(0), n = x.size(1) / window, c = x.size(3);
  return x.view({b, n, window, n, window, c}).permute({0, 1, 3, 2, 4, 5}).reshape({-1, window * window, c});
}
torch::Tensor from_windows(const torch::Tensor& windows, int window, int side) {
  const int64_t n = side / window, c = windows.size(2);
  return windows.view({-1, n, n, window, window, c}).permute({0, 1, 3, 2, 4, 5}).reshape({-1, side, side, c});
}

// For a shifted block: -100 between tokens of one window that the cyclic shift brought from different regions.
torch::Tensor shifted_window_mask(int side, int window, int shift) {
  auto regions = torch::zeros({side, side}, torch::kLong);
  const std::array<std::pair<int, int>, 3> bands{
      {{0, side - window}, {side - window, side - shift}, {side - shift, side}}};
  int64_t label = 0;
  for (const auto& rows : bands) {
    for (const auto& cols : bands)
      regions.slice(0, rows.first, rows.second).slice(1, cols.first, cols.second).fill_(label++);
  }
  const auto in_windows = to_windows(regions.view({1, side, side, 1}), window).squeeze(2);  // [nW, N]
  const auto differ = in_windows.unsqueeze(1) != in_windows.unsqueeze(2);
  return torch::zeros(differ.sizes()).masked_fill(differ, -100.0);
}

torch::nn::LayerNorm layer_norm(int64_t width) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(1e-5));  // torch's default, as timm's Swin
}

}  // namespace

SwinBlockImpl::SwinBlockImpl(int width, int heads, int window, int shift, int side, int mlp_hidden)
    : heads_(heads), window_(window), shift_(shift), side_(side) {
  norm1 = register_module("norm1", layer_norm(width));
  qkv = register_module("qkv", Linear(width, 3 * width, true));
  proj = register_module("proj", Linear(width, width, true));
  relative_position_bias_table = register_parameter(
      "relative_position_bias_table", torch::zeros({(2 * window - 1) * (2 * window - 1), heads}));
  relative_position_index = register_buffer("relative_position_index", relative_positions(window));
  if (shift > 0) attn_mask = register_buffer("attn_mask", shifted_window_mask(side, window, shift));
  norm2 = register_module("norm2", layer_norm(width));
  fc1 = register_module("fc1", Linear(width, mlp_hidden, true));
  fc2 = register_module("fc2", Linear(mlp_hidden, width, true));
}

torch::Tensor SwinBlockImpl::forward(const torch::Tensor& x) {
  const int64_t batch = x.size(0), width = x.size(2), tokens = int64_t{window_} * window_;
  auto h = norm1(x).view({batch, side_, side_, width});
  if (shift_ > 0) h = torch::roll(h, {-shift_, -shift_}, {1, 2});
  const auto windows = to_windows(h, window_);
  const int64_t count = windows.size(0), head_width = width / heads_;
  const auto qkv_heads = qkv(windows).view({count, tokens, 3, heads_, head_width}).permute({2, 0, 3, 1, 4});
  const auto q = qkv_heads[0] / std::sqrt(static_cast<double>(head_width));
  auto scores = torch::matmul(q, qkv_heads[1].transpose(-2, -1));  // [count, heads, N, N]
  const auto bias = relative_position_bias_table.index_select(0, relative_position_index.flatten())
                        .view({tokens, tokens, heads_})
                        .permute({2, 0, 1});
  scores = scores + bias.unsqueeze(0);
  if (attn_mask.defined()) {
    const int64_t per_image = attn_mask.size(0);
    scores = (scores.view({count / per_image, per_image, heads_, tokens, tokens}) + attn_mask.unsqueeze(1).unsqueeze(0))
                 .view({count, heads_, tokens, tokens});
  }
  const auto attended = torch::matmul(torch::softmax(scores, -1), qkv_heads[2]).transpose(1, 2).reshape(
      {count, tokens, width});
  h = from_windows(proj(attended), window_, side_);
  if (shift_ > 0) h = torch::roll(h, {shift_, shift_}, {1, 2});
  auto out = x + h.reshape({batch, int64_t{side_} * side_, width});
  return out + fc2(torch::gelu(fc1(norm2(out))));
}

SwinImpl::SwinImpl(const SwinConfig& config) : config_(config) {
  config_.validate("Swin");
  namespace nn = torch::nn;
  const int e = config_.embed_dim;
  auto conv = [](int in, int out, int kernel, int stride, bool bias) {
    return nn::Conv2d(nn::Conv2dOptions(in, out, kernel).stride(stride).padding(kernel / 2).bias(bias));
  };
  stem_conv1 = register_module("stem_conv1", conv(3, e / 8, 3, 2, false));
  stem_bn1 = register_module("stem_bn1", nn::BatchNorm2d(e / 8));
  stem_conv2 = register_module("stem_conv2", conv(e / 8, e / 4, 3, 2, false));
  stem_bn2 = register_module("stem_bn2", nn::BatchNorm2d(e / 4));
  stem_proj = register_module("stem_proj", conv(e / 4, e, 1, 1, true));
  patch_norm = register_module("patch_norm", layer_norm(e));
  const size_t n = config_.depths.size();
  for (size_t i = 0; i < n; ++i) {
    const int side = config_.side(i), width = config_.width(i);
    // timm: a stage no larger than a window is one unshifted window.
    const int window = std::min(side, config_.window);
    std::vector<SwinBlock> blocks;
    for (int j = 0; j < config_.depths[i]; ++j) {
      const int shift = j % 2 == 1 && side > config_.window ? config_.window / 2 : 0;
      blocks.push_back(register_module(str("stage", i, "_block", j),
                                       SwinBlock(width, config_.heads[i], window, shift, side,
                                                 config_.mlp_ratio * width)));
    }
    stages.push_back(std::move(blocks));
    if (i + 1 < n) {
      merge_norms.push_back(register_module(str("stage", i, "_merge_norm"), layer_norm(4 * width)));
      merge_reductions.push_back(register_module(str("stage", i, "_merge"), Linear(4 * width, 2 * width, false)));
    }
  }
  norm = register_module("norm", layer_norm(config_.features()));
}

torch::Tensor SwinImpl::forward(const torch::Tensor& pixels) {
  const int s = config_.image_size;
  PATHVLM_CHECK(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == s && pixels.size(3) == s,
                "Swin: expected pixels [B,3,", s, ",", s, "], got ", pixels.sizes());
  auto x = torch::relu(stem_bn1(stem_conv1(pixels.to(stem_conv1->weight.scalar_type()))));
  x = stem_proj(torch::relu(stem_bn2(stem_conv2(x))));
  x = patch_norm(x.flatten(2).transpose(1, 2));  // [B, side², embed_dim]
  for (size_t i = 0; i < stages.size(); ++i) {
    for (auto& block : stages[i]) x = block(x);
    if (i < merge_norms.size()) {
      const int64_t batch = x.size(0), side = config_.side(i), width = x.size(2);
      const auto grid = x.view({batch, side, side, width});
      const auto at = [&](int row, int col) { return grid.slice(1, row, side, 2).slice(2, col, side, 2); };
      x = torch::cat({at(0, 0), at(1, 0), at(0, 1), at(1, 1)}, -1).view({batch, -1, 4 * width});
      x = merge_reductions[i](merge_norms[i](x));
    }
  }
  return norm(x).mean(1);
}

}  // namespace pathvlm::models
