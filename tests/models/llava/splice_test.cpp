// splice_images on value-coded embeddings (text row (b, j) holds 100 b + j, image k's row t holds -(1000 (k + 1) + t)),
// so every output row names where it came from: right and left padding, several images in a row, text-only rows and
// batches, padding on either side or in between in the input, truncation, gradients and the errors.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <vector>

#include "models/llava/config.h"
#include "models/llava/splice.h"
#include "test_util.h"

using namespace pathvlm;
using models::kIgnoreIndex;
using models::kImageSentinel;
using models::SplicePadding;
using pathvlm::testing::error_of;

namespace {

constexpr int64_t H = 3;
constexpr int64_t S = kImageSentinel;
constexpr int64_t I = kIgnoreIndex;

torch::Tensor coded_text(int64_t B, int64_t L) {
  auto code = torch::arange(B).unsqueeze(1) * 100 + torch::arange(L).unsqueeze(0);
  return code.unsqueeze(2).expand({B, L, H}).to(torch::kFloat).contiguous();
}

std::vector<torch::Tensor> coded_images(const std::vector<int64_t>& rows) {
  std::vector<torch::Tensor> images;
  for (size_t k = 0; k < rows.size(); ++k) {
    auto code = -(1000.0 * static_cast<double>(k + 1) + torch::arange(rows[k]).to(torch::kFloat));
    images.push_back(code.unsqueeze(1).expand({rows[k], H}).contiguous());
  }
  return images;
}

torch::Tensor ids_of(const std::vector<std::vector<int64_t>>& rows) {
  std::vector<torch::Tensor> t;
  for (const auto& r : rows) t.push_back(torch::tensor(r, torch::kLong));
  return torch::stack(t);
}

// The code of each output row (first column of the embeddings), row by row.
std::vector<std::vector<int64_t>> codes(const torch::Tensor& embeds) {
  std::vector<std::vector<int64_t>> out;
  auto first = embeds.select(2, 0).to(torch::kLong);
  for (int64_t b = 0; b < first.size(0); ++b) {
    auto row = first[b].contiguous();
    out.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return out;
}

std::vector<std::vector<int64_t>> rows_of(const torch::Tensor& t) {
  std::vector<std::vector<int64_t>> out;
  auto l = t.to(torch::kLong);
  for (int64_t b = 0; b < l.size(0); ++b) {
    auto row = l[b].contiguous();
    out.emplace_back(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  }
  return out;
}

// Row 0: one image then text, right-padded; row 1: two images; row 2: text only.
struct Batch {
  torch::Tensor ids = ids_of({{1, S, 5, 6, 0, 0}, {1, 7, S, 8, S, 9}, {1, 2, 3, 0, 0, 0}});
  torch::Tensor labels = ids_of({{I, I, 15, 16, I, I}, {I, 17, I, 18, I, 19}, {I, 12, 13, I, I, I}});
  torch::Tensor keep = ids_of({{1, 1, 1, 1, 0, 0}, {1, 1, 1, 1, 1, 1}, {1, 1, 1, 0, 0, 0}}).to(torch::kBool);
  torch::Tensor text = coded_text(3, 6);
  std::vector<torch::Tensor> images = coded_images({2, 2, 3});
};

}  // namespace

TEST(LlavaSplice, RightPaddingExpandsEachSentinelInOrder) {
  Batch b;
  auto out = models::splice_images(b.text, b.ids, b.labels, b.keep, b.images, SplicePadding::right);
  ASSERT_EQ(out.embeds.sizes(), torch::IntArrayRef({3, 9, H}));
  // Row 1's images are the batch's second and third (rows 2 and 3 rows long); padding rows are zeros.
  const std::vector<std::vector<int64_t>> expected_codes = {
      {0, -1000, -1001, 2, 3, 0, 0, 0, 0},
      {100, 101, -2000, -2001, 103, -3000, -3001, -3002, 105},
      {200, 201, 202, 0, 0, 0, 0, 0, 0}};
  EXPECT_EQ(codes(out.embeds), expected_codes);
  EXPECT_EQ(rows_of(out.labels), (std::vector<std::vector<int64_t>>{{I, I, I, 15, 16, I, I, I, I},
                                                                    {I, 17, I, I, 18, I, I, I, 19},
                                                                    {I, 12, 13, I, I, I, I, I, I}}));
  EXPECT_EQ(rows_of(out.attention_mask), (std::vector<std::vector<int64_t>>{{1, 1, 1, 1, 1, 0, 0, 0, 0},
                                                                            {1, 1, 1, 1, 1, 1, 1, 1, 1},
                                                                            {1, 1, 1, 0, 0, 0, 0, 0, 0}}));
  EXPECT_EQ(rows_of(out.position_ids), (std::vector<std::vector<int64_t>>{{0, 1, 2, 3, 4, 0, 0, 0, 0},
                                                                          {0, 1, 2, 3, 4, 5, 6, 7, 8},
                                                                          {0, 1, 2, 0, 0, 0, 0, 0, 0}}));
  EXPECT_EQ(out.attention_mask.scalar_type(), torch::kBool);
  // Every image row is exactly the image's row (all columns).
  EXPECT_TRUE(torch::equal(out.embeds[1].narrow(0, 5, 3), b.images[2]));
}

TEST(LlavaSplice, LeftPaddingForGeneration) {
  Batch b;
  auto out = models::splice_images(b.text, b.ids, {}, b.keep, b.images, SplicePadding::left);
  EXPECT_FALSE(out.labels.defined());
  EXPECT_EQ(codes(out.embeds), (std::vector<std::vector<int64_t>>{{0, 0, 0, 0, 0, -1000, -1001, 2, 3},
                                                                  {100, 101, -2000, -2001, 103, -3000, -3001, -3002, 105},
                                                                  {0, 0, 0, 0, 0, 0, 200, 201, 202}}));
  EXPECT_EQ(rows_of(out.attention_mask), (std::vector<std::vector<int64_t>>{{0, 0, 0, 0, 1, 1, 1, 1, 1},
                                                                            {1, 1, 1, 1, 1, 1, 1, 1, 1},
                                                                            {0, 0, 0, 0, 0, 0, 1, 1, 1}}));
  EXPECT_EQ(rows_of(out.position_ids), (std::vector<std::vector<int64_t>>{{0, 0, 0, 0, 0, 1, 2, 3, 4},
                                                                          {0, 1, 2, 3, 4, 5, 6, 7, 8},
                                                                          {0, 0, 0, 0, 0, 0, 0, 1, 2}}));
}

TEST(LlavaSplice, InputPaddingOnTheLeftOrInBetweenIsDropped) {
  // Row 0 left-padded, row 1 with a hole; sentinels under padding are not images.
  auto ids = ids_of({{0, S, 1, S, 4}, {1, 2, S, 3, S}});
  auto keep = ids_of({{0, 0, 1, 1, 1}, {1, 0, 1, 1, 1}}).to(torch::kBool);
  auto out = models::splice_images(coded_text(2, 5), ids, {}, keep, coded_images({1, 1, 2}), SplicePadding::right);
  EXPECT_EQ(codes(out.embeds),
            (std::vector<std::vector<int64_t>>{{2, -1000, 4, 0, 0}, {100, -2000, 103, -3000, -3001}}));
  EXPECT_EQ(rows_of(out.position_ids), (std::vector<std::vector<int64_t>>{{0, 1, 2, 0, 0}, {0, 1, 2, 3, 4}}));
}

TEST(LlavaSplice, TextOnlyBatchIsRepaddedUnchanged) {
  auto ids = ids_of({{1, 2, 3}, {1, 4, 0}});
  auto keep = ids_of({{1, 1, 1}, {1, 1, 0}}).to(torch::kBool);
  auto text = coded_text(2, 3);
  auto right = models::splice_images(text, ids, ids, keep, {}, SplicePadding::right);
  EXPECT_EQ(codes(right.embeds), (std::vector<std::vector<int64_t>>{{0, 1, 2}, {100, 101, 0}}));
  EXPECT_EQ(rows_of(right.labels), (std::vector<std::vector<int64_t>>{{1, 2, 3}, {1, 4, I}}));
  // Without a mask every token is valid.
  auto all = models::splice_images(text, ids, {}, {}, {}, SplicePadding::left);
  EXPECT_TRUE(torch::equal(all.embeds, text));
  EXPECT_TRUE(all.attention_mask.all().item<bool>());
}

TEST(LlavaSplice, MaxLengthCutsAfterExpansion) {
  Batch b;
  auto out = models::splice_images(b.text, b.ids, b.labels, b.keep, b.images, SplicePadding::right, 4);
  EXPECT_EQ(codes(out.embeds), (std::vector<std::vector<int64_t>>{{0, -1000, -1001, 2},
                                                                  {100, 101, -2000, -2001},
                                                                  {200, 201, 202, 0}}));
  EXPECT_EQ(rows_of(out.labels), (std::vector<std::vector<int64_t>>{{I, I, I, 15}, {I, 17, I, I}, {I, 12, 13, I}}));
}

TEST(LlavaSplice, GradientsReachTextAndImageRows) {
  Batch b;
  auto text = b.text.clone().requires_grad_(true);
  std::vector<torch::Tensor> images;
  for (const auto& img : b.images) images.push_back(img.clone().requires_grad_(true));
  auto out = models::splice_images(text, b.ids, b.labels, b.keep, images, SplicePadding::right);
  torch::manual_seed(3);
  auto weights = torch::randn(out.embeds.sizes());
  (out.embeds * weights).sum().backward();
  // Image 2 sits at row 1, positions 5..7; text token (0, 3) at row 0, position 4; padding rows get nothing.
  EXPECT_TRUE(torch::equal(images[2].grad(), weights[1].narrow(0, 5, 3)));
  EXPECT_TRUE(torch::equal(text.grad()[0][3], weights[0][4]));
  EXPECT_EQ(text.grad()[0][4].abs().sum().item<float>(), 0.0f);  // input padding
  EXPECT_EQ(text.grad()[0][1].abs().sum().item<float>(), 0.0f);  // the sentinel's own row
}

TEST(LlavaSplice, CountsAndShapesMustMatch) {
  Batch b;
  auto fewer = b.images;
  fewer.pop_back();
  EXPECT_NE(error_of([&] { models::splice_images(b.text, b.ids, {}, b.keep, fewer, SplicePadding::right); })
                .find("row 1 holds image sentinel number 3 of the batch but only 2 images"),
            std::string::npos);
  auto more = b.images;
  more.push_back(b.images[0]);
  EXPECT_NE(error_of([&] { models::splice_images(b.text, b.ids, {}, b.keep, more, SplicePadding::right); })
                .find("hold 3 image sentinels (-200) but 4 images were given"),
            std::string::npos);
  auto wide = b.images;
  wide[1] = torch::zeros({2, H + 1});
  EXPECT_NE(error_of([&] { models::splice_images(b.text, b.ids, {}, b.keep, wide, SplicePadding::right); })
                .find("image 1 must be [T, 3] rows"),
            std::string::npos);
  EXPECT_NE(error_of([&] { models::splice_images(b.text, b.ids, b.labels.narrow(1, 0, 5), b.keep, b.images,
                                                 SplicePadding::right); })
                .find("labels"),
            std::string::npos);
}
