// LlavaModel on tiny models: projector types and names, the frozen tower's feature selection, the training loss
// against a reference computed through the masked full-logits path, padding invariance, text-only and mixed
// batches, and cached tower features giving the same loss and gradients as pixels through the tower.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "llava_test_util.h"
#include "models/llava/model.h"
#include "test_util.h"

using namespace pathvlm;
using models::kIgnoreIndex;
using models::kImageSentinel;
using pathvlm::testing::error_of;
using pathvlm::testing::right_pad;
using pathvlm::testing::tiny_llava;
using pathvlm::testing::tiny_pixels;

namespace {

constexpr int64_t S = kImageSentinel;
constexpr int64_t I = kIgnoreIndex;

std::map<std::string, std::vector<int64_t>> shapes(torch::nn::Module& module) {
  std::map<std::string, std::vector<int64_t>> out;
  for (const auto& item : module.named_parameters()) out[item.key()] = item.value().sizes().vec();
  return out;
}

// Row 0: image, then text; row 1: text only (shorter: right padding); row 2: two images.
pathvlm::testing::PaddedRows mixed_rows() {
  return right_pad({{1, S, 5, 6, 7, 8}, {1, 9, 10, 11}, {1, S, 12, S, 13, 14}},
                   {{I, I, 5, 6, 7, 8}, {I, 9, 10, 11}, {I, I, 12, I, 13, 14}});
}

// The reference loss: full logits of the spliced batch through the masked path (attention mask + position ids),
// then the mean-free summed cross-entropy over shifted labels.
double reference_loss_sum(models::LlavaModel& llava, const pathvlm::testing::PaddedRows& rows,
                          const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  auto image_rows = llava->project(llava->image_features(pixels));
  auto in = llava->splice(rows.ids, rows.labels, rows.keep, image_rows, models::SplicePadding::right);
  models::LlamaInputs inputs;
  inputs.attention_mask = in.attention_mask;
  inputs.position_ids = in.position_ids;
  auto logits = llava->language_model->forward_embeds(in.embeds, inputs);
  const auto L = logits.size(1);
  auto flat_logits = logits.narrow(1, 0, L - 1).reshape({-1, logits.size(2)});
  auto flat_labels = in.labels.narrow(1, 1, L - 1).reshape({-1});
  return torch::nn::functional::cross_entropy(
             flat_logits, flat_labels,
             torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kSum))
      .item<double>();
}

}  // namespace

TEST(LlavaProjector, TypesShapesNamesAndValues) {
  torch::manual_seed(0);
  models::LlavaProjector linear("linear", 128, 32);
  EXPECT_EQ(shapes(*linear), (std::map<std::string, std::vector<int64_t>>{{"linear_1.weight", {32, 128}},
                                                                         {"linear_1.bias", {32}}}));
  models::LlavaProjector mlp("mlp2x_gelu", 128, 32);
  EXPECT_EQ(shapes(*mlp), (std::map<std::string, std::vector<int64_t>>{{"linear_1.weight", {32, 128}},
                                                                      {"linear_1.bias", {32}},
                                                                      {"linear_2.weight", {32, 32}},
                                                                      {"linear_2.bias", {32}}}));
  auto x = torch::randn({2, 5, 128});
  auto h = torch::matmul(x, mlp->linear_1->weight.t()) + mlp->linear_1->bias;
  // Exact (erf) GELU: 0.5 h (1 + erf(h / sqrt 2)).
  auto gelu = 0.5 * h * (1 + torch::erf(h / std::sqrt(2.0)));
  auto expected = torch::matmul(gelu, mlp->linear_2->weight.t()) + mlp->linear_2->bias;
  EXPECT_TRUE(torch::allclose(mlp(x), expected, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(linear(x), torch::matmul(x, linear->linear_1->weight.t()) + linear->linear_1->bias,
                              1e-5, 1e-6));
  EXPECT_EQ(mlp(x).sizes(), torch::IntArrayRef({2, 5, 32}));
  EXPECT_NE(error_of([] { models::LlavaProjector("mlp3x_gelu", 4, 4); }).find("'mlp3x_gelu' is not one of"),
            std::string::npos);
}

TEST(LlavaModel, ParameterNamesAreHfLegacyLayoutAndTheTowerIsFrozen) {
  auto llava = tiny_llava("mlp2x_gelu", "patch", 1);
  std::set<std::string> prefixes;
  int64_t tower = 0;
  for (const auto& item : llava->named_parameters()) {
    const auto& name = item.key();
    const auto prefix = name.substr(0, name.find('.', name.find('.') + 1));
    prefixes.insert(prefix);
    if (prefix == "vision_tower.vision_model") {
      EXPECT_FALSE(item.value().requires_grad()) << name;
      tower += item.value().numel();
    } else {
      EXPECT_TRUE(item.value().requires_grad()) << name;
    }
  }
  EXPECT_EQ(prefixes, (std::set<std::string>{"vision_tower.vision_model", "multi_modal_projector.linear_1",
                                             "multi_modal_projector.linear_2", "language_model.model",
                                             "language_model.lm_head"}));
  EXPECT_EQ(tower, models::count_parameters(*llava->vision_tower->vision_model));
  llava->train();
  EXPECT_FALSE(llava->vision_tower->is_training());
  EXPECT_FALSE(llava->vision_tower->vision_model->is_training());
  EXPECT_TRUE(llava->language_model->is_training());
  EXPECT_EQ(llava->image_tokens(), 16);
  EXPECT_EQ(llava->vision_hidden(), 128);
  EXPECT_EQ(llava->text_hidden(), 32);
}

TEST(LlavaModel, ImageFeaturesSelectTheLayerAndTheClsRule) {
  torch::manual_seed(2);
  models::ClipModel clip(pathvlm::testing::tiny_clip_config());
  auto lm = pathvlm::testing::random_llama(pathvlm::testing::tiny_llama_config(), 2);
  auto pixels = tiny_pixels(2, 3);
  torch::Tensor penultimate;
  {
    torch::NoGradGuard no_grad;
    penultimate = clip->image_tokens(pixels, -2);  // [2, 17, 128]
  }
  models::LlavaConfig config;
  models::LlavaModel patch(config, clip, lm);
  auto features = patch->image_features(pixels);
  EXPECT_FALSE(features.requires_grad());
  EXPECT_TRUE(torch::equal(features, penultimate.narrow(1, 1, 16)));
  config.vision_feature_select = "full";
  config.vision_feature_layer = 0;
  models::LlavaModel full(config, clip, lm);
  EXPECT_EQ(full->image_tokens(), 17);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(full->image_features(pixels), clip->image_tokens(pixels, 0)));
  config.vision_feature_layer = -6;
  EXPECT_NE(error_of([&] { models::LlavaModel(config, clip, lm); }).find("vision_feature_layer -6 is outside the 5"),
            std::string::npos);
}

TEST(LlavaModel, LossEqualsTheMaskedFullLogitsReference) {
  for (const char* projector : {"linear", "mlp2x_gelu"}) {
    auto llava = tiny_llava(projector, "patch", 3);
    auto rows = mixed_rows();
    auto pixels = tiny_pixels(3, 4);
    auto loss = llava->forward({rows.ids, rows.labels, rows.keep, pixels, {}});
    // Supervised: row 0: 5..8 (5 predicted from the last image row); row 1: 9..11; row 2: 12..14.
    EXPECT_EQ(loss.tokens, 10) << projector;
    EXPECT_NEAR(loss.sum.item<double>(), reference_loss_sum(llava, rows, pixels), 1e-4) << projector;
  }
}

TEST(LlavaModel, PaddingDoesNotChangeARowsLoss) {
  auto llava = tiny_llava("mlp2x_gelu", "patch", 5);
  auto rows = mixed_rows();
  auto pixels = tiny_pixels(3, 6);
  const double batched = llava->forward({rows.ids, rows.labels, rows.keep, pixels, {}}).sum.item<double>();
  double one_by_one = 0;
  const int64_t images_of_row[] = {1, 0, 2};
  int64_t first_image = 0;
  for (int64_t b = 0; b < 3; ++b) {
    const auto n = rows.keep[b].sum().item<int64_t>();
    models::LlavaBatch single{rows.ids[b].narrow(0, 0, n).unsqueeze(0), rows.labels[b].narrow(0, 0, n).unsqueeze(0),
                              {}, pixels.narrow(0, first_image, images_of_row[b]), {}};
    first_image += images_of_row[b];
    one_by_one += llava->forward(single).sum.item<double>();
  }
  EXPECT_NEAR(batched, one_by_one, 1e-4);
}

TEST(LlavaModel, CachedFeaturesEqualFeaturesFromTheTower) {
  auto llava = tiny_llava("mlp2x_gelu", "patch", 7);
  auto rows = mixed_rows();
  auto pixels = tiny_pixels(3, 8);
  auto gradients = [&](const models::LlavaBatch& batch) {
    llava->zero_grad();
    auto loss = llava->forward(batch);
    (loss.sum / loss.tokens).backward();
    std::map<std::string, torch::Tensor> grads;
    for (const auto& item : llava->named_parameters()) {
      if (item.value().requires_grad()) grads[item.key()] = item.value().grad().clone();
    }
    return std::make_pair(loss.sum.item<double>(), grads);
  };
  const auto [tower_loss, tower_grads] = gradients({rows.ids, rows.labels, rows.keep, pixels, {}});
  // A cache holds a copy of the tower's output (the tile_features path): same loss, same gradients, bit for bit.
  const auto cached = llava->image_features(pixels).clone();
  const auto [cached_loss, cached_grads] = gradients({rows.ids, rows.labels, rows.keep, {}, cached});
  EXPECT_EQ(tower_loss, cached_loss);
  ASSERT_EQ(tower_grads.size(), cached_grads.size());
  for (const auto& [name, grad] : tower_grads) {
    EXPECT_TRUE(torch::equal(grad, cached_grads.at(name))) << name;
  }
  EXPECT_GT(tower_grads.at("multi_modal_projector.linear_1.weight").abs().sum().item<double>(), 0.0);
  for (const auto& item : llava->vision_tower->named_parameters()) {
    EXPECT_FALSE(item.value().grad().defined()) << item.key();
  }
}

TEST(LlavaModel, TextOnlyBatchKeepsTheProjectorInTheGraphWithZeroGradients) {
  auto llava = tiny_llava("linear", "patch", 9);
  auto rows = right_pad({{1, 4, 5, 6}, {1, 7, 8}}, {{I, 4, 5, 6}, {I, 7, 8}});
  auto loss = llava->forward({rows.ids, rows.labels, rows.keep, {}, {}});
  EXPECT_EQ(loss.tokens, 5);
  loss.sum.backward();
  for (const auto& item : llava->multi_modal_projector->named_parameters()) {
    ASSERT_TRUE(item.value().grad().defined()) << item.key();
    EXPECT_EQ(item.value().grad().abs().sum().item<double>(), 0.0) << item.key();
  }
  EXPECT_GT(llava->language_model->model->embed_tokens->weight.grad().abs().sum().item<double>(), 0.0);
  // The same loss as the language model alone on the tokens.
  torch::NoGradGuard no_grad;
  auto logits = llava->language_model->forward(rows.ids);
  auto reference = torch::nn::functional::cross_entropy(
      logits.narrow(1, 0, 3).reshape({-1, logits.size(2)}), rows.labels.narrow(1, 1, 3).reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex).reduction(torch::kSum));
  EXPECT_NEAR(loss.sum.item<double>(), reference.item<double>(), 1e-4);
}

TEST(LlavaModel, RefusesPixelsAndFeaturesTogetherAndMissingLabels) {
  auto llava = tiny_llava("linear", "patch", 10);
  auto rows = right_pad({{1, S, 4}}, {{I, I, 4}});
  auto pixels = tiny_pixels(1, 1);
  EXPECT_NE(error_of([&] {
              llava->forward({rows.ids, rows.labels, rows.keep, pixels, llava->image_features(pixels)});
            }).find("either pixels or precomputed features"),
            std::string::npos);
  EXPECT_NE(error_of([&] { llava->forward({rows.ids, {}, rows.keep, pixels, {}}); }).find("needs labels"),
            std::string::npos);
  EXPECT_NE(error_of([&] { llava->forward({rows.ids, rows.labels, rows.keep, {}, {}}); })
                .find("row 0 holds image sentinel number 1 of the batch but only 0 images"),
            std::string::npos);
}

TEST(LlavaModel, PromptEmbedsAreLeftPadded) {
  auto llava = tiny_llava("mlp2x_gelu", "patch", 11);
  torch::NoGradGuard no_grad;
  auto rows = llava->project(llava->image_features(tiny_pixels(1, 2)));
  auto in = llava->prompt_embeds({{1, S, 4}, {1, 5}}, rows);
  ASSERT_EQ(in.embeds.sizes(), torch::IntArrayRef({2, 18, 32}));
  EXPECT_EQ(in.attention_mask[1].sum().item<int64_t>(), 2);
  EXPECT_TRUE(in.attention_mask[1].narrow(0, 16, 2).all().item<bool>());
  EXPECT_TRUE(torch::equal(in.embeds[0].narrow(0, 1, 16), rows[0]));
  EXPECT_TRUE(torch::equal(in.embeds[1][17], llava->language_model->embed(torch::tensor({5}, torch::kLong))[0]));
}
