#include "models/llava/splice.h"

#include <algorithm>

#include "core/error.h"
#include "models/llava/config.h"

namespace pathvlm::models {

namespace {

// One sequence after expansion: its pieces (text runs and image rows, in order) and a label per row.
struct ExpandedRow {
  std::vector<torch::Tensor> pieces;
  std::vector<int64_t> labels;

  int64_t length() const { return static_cast<int64_t>(labels.size()); }

  void truncate(int64_t max_length) {
    if (max_length <= 0 || length() <= max_length) return;
    std::vector<torch::Tensor> kept;
    int64_t left = max_length;
    for (const auto& piece : pieces) {
      if (left == 0) break;
      const auto take = std::min<int64_t>(left, piece.size(0));
      kept.push_back(piece.narrow(0, 0, take));
      left -= take;
    }
    pieces = std::move(kept);
    labels.resize(static_cast<size_t>(max_length));
  }
};

}  // namespace

SplicedInputs splice_images(const torch::Tensor& text_embeds, const torch::Tensor& input_ids, const torch::Tensor& labels,
                            const torch::Tensor& attention_mask, const std::vector<torch::Tensor>& images,
                            SplicePadding padding, int64_t max_length) {
  PATHVLM_CHECK(input_ids.dim() == 2, "llava splice: expected input_ids [B, L], got ", input_ids.sizes());
  const auto B = input_ids.size(0), L = input_ids.size(1);
  PATHVLM_CHECK(B > 0, "llava splice: empty batch");
  PATHVLM_CHECK(text_embeds.dim() == 3 && text_embeds.size(0) == B && text_embeds.size(1) == L,
                "llava splice: text embeddings ", text_embeds.sizes(), " do not match input_ids ", input_ids.sizes());
  const auto H = text_embeds.size(2);
  PATHVLM_CHECK(!labels.defined() || labels.sizes() == input_ids.sizes(), "llava splice: labels ", labels.sizes(),
                " do not match input_ids ", input_ids.sizes());
  PATHVLM_CHECK(!attention_mask.defined() || attention_mask.sizes() == input_ids.sizes(), "llava splice: attention mask ",
                attention_mask.sizes(), " does not match input_ids ", input_ids.sizes());
  PATHVLM_CHECK(max_length >= 0, "llava splice: max_length ", max_length, " must be >= 0 (0 = no limit)");

  const auto ids = input_ids.to(torch::kCPU, torch::kLong).contiguous();
  const auto keep = attention_mask.defined() ? attention_mask.to(torch::kCPU, torch::kBool).contiguous()
                                             : torch::ones({B, L}, torch::kBool);
  const auto targets = labels.defined() ? labels.to(torch::kCPU, torch::kLong).contiguous()
                                        : torch::full({B, L}, kIgnoreIndex, torch::kLong);
  const auto id_at = ids.accessor<int64_t, 2>();
  const auto keep_at = keep.accessor<bool, 2>();
  const auto label_at = targets.accessor<int64_t, 2>();

  std::vector<ExpandedRow> rows(static_cast<size_t>(B));
  size_t next_image = 0;
  for (int64_t b = 0; b < B; ++b) {
    auto& row = rows[static_cast<size_t>(b)];
    int64_t run_start = -1;
    auto flush = [&](int64_t end) {
      if (run_start < 0) return;
      row.pieces.push_back(text_embeds[b].narrow(0, run_start, end - run_start));
      for (int64_t j = run_start; j < end; ++j) row.labels.push_back(label_at[b][j]);
      run_start = -1;
    };
    for (int64_t j = 0; j < L; ++j) {
      if (!keep_at[b][j]) {
        flush(j);
      } else if (id_at[b][j] == kImageSentinel) {
        flush(j);
        PATHVLM_CHECK(next_image < images.size(), "llava splice: row ", b, " holds image sentinel number ",
                      next_image + 1, " of the batch but only ", images.size(), " images were given");
        const auto& image = images[next_image++];
        PATHVLM_CHECK(image.dim() == 2 && image.size(1) == H, "llava splice: image ", next_image - 1,
                      " must be [T, ", H, "] rows, got ", image.sizes());
        row.pieces.push_back(image.to(text_embeds.device(), text_embeds.scalar_type()));
        row.labels.insert(row.labels.end(), static_cast<size_t>(image.size(0)), kIgnoreIndex);
      } else if (run_start < 0) {
        run_start = j;
      }
    }
    flush(L);
    row.truncate(max_length);
  }
  PATHVLM_CHECK(next_image == images.size(), "llava splice: the batch's valid tokens hold ", next_image,
                " image sentinels (", kImageSentinel, ") but ", images.size(), " images were given");

  int64_t longest = 0;
  for (const auto& row : rows) longest = std::max(longest, row.length());
  auto out_labels = torch::full({B, longest}, kIgnoreIndex, torch::kLong);
  auto out_mask = torch::zeros({B, longest}, torch::kBool);
  auto out_positions = torch::zeros({B, longest}, torch::kLong);
  std::vector<torch::Tensor> embeds;
  const auto zeros_like_rows = [&](int64_t n) { return torch::zeros({n, H}, text_embeds.options()); };
  for (int64_t b = 0; b < B; ++b) {
    const auto& row = rows[static_cast<size_t>(b)];
    const auto n = row.length(), pad = longest - n, start = padding == SplicePadding::left ? pad : 0;
    auto sequence = row.pieces.empty() ? zeros_like_rows(0) : torch::cat(row.pieces, 0);
    embeds.push_back(padding == SplicePadding::left ? torch::cat({zeros_like_rows(pad), sequence}, 0)
                                                    : torch::cat({sequence, zeros_like_rows(pad)}, 0));
    if (n == 0) continue;
    out_labels[b].narrow(0, start, n).copy_(torch::tensor(row.labels, torch::kLong));
    out_mask[b].narrow(0, start, n).fill_(true);
    out_positions[b].narrow(0, start, n).copy_(torch::arange(n, torch::kLong));
  }
  SplicedInputs out;
  const auto device = text_embeds.device();
  out.embeds = torch::stack(embeds, 0);
  if (labels.defined()) out.labels = out_labels.to(device);
  out.attention_mask = out_mask.to(device);
  out.position_ids = out_positions.to(device);
  return out;
}

}  // namespace pathvlm::models
