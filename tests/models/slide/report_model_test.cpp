// SlideReportModel: a CLIP's text tower taken over with its positions stretched, and the export read back.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/clip/weights.h"
#include "models/slide/report_model.h"
#include "test_util.h"

using namespace pathvlm;
using namespace pathvlm::models;

namespace {

slide::SlideEncoderConfig small_encoder() {
  slide::SlideEncoderConfig c;
  c.kind = "qformer";
  c.input_dim = 12;
  c.width = 32;
  c.heads = 2;
  c.layers = 1;
  c.queries = 3;
  return c;
}

ClipModelConfig tiny_text(int context) {
  ClipModelConfig c;
  c.preset = "tiny";
  c.hidden_act = "gelu";
  c.context_length = context;
  return c;
}

}  // namespace

TEST(TextPositions, ShorterKeepsTheFirstRowsLongerStretchesKeepingBothEnds) {
  auto table = torch::randn({77, 8});
  EXPECT_TRUE(torch::equal(resize_text_positions(table, 40), table.slice(0, 0, 40)));
  EXPECT_TRUE(torch::equal(resize_text_positions(table, 77), table));
  auto longer = resize_text_positions(table, 229);  // 3 x 76 + 1: every third row is an original one
  ASSERT_EQ(longer.sizes(), (std::vector<int64_t>{229, 8}));
  for (int64_t i = 0; i < 77; ++i) EXPECT_TRUE(torch::allclose(longer[3 * i], table[i], 1e-4, 1e-4)) << i << (longer[3 * i] - table[i]).abs().max();
  EXPECT_TRUE(torch::allclose(longer[1], table[0] * 2 / 3 + table[1] / 3, 1e-4, 1e-4));
}

TEST(SlideReportModel, TakesOverACLIPTextTowerWithLongerContext) {
  torch::manual_seed(0);
  ClipModel clip(tiny_text(77));
  slide::SlideReportModel model(small_encoder(), tiny_text(154));
  model->load_text(*clip, "clip");
  auto theirs = clip->text_model->named_parameters();
  for (const auto& item : model->text_model->named_parameters()) {
    if (item.key() == "embeddings.position_embedding.weight") {
      EXPECT_EQ(item.value().size(0), 154);
      EXPECT_TRUE(torch::allclose(item.value()[153], theirs[item.key()][76]));
    } else {
      EXPECT_TRUE(torch::equal(item.value(), theirs[item.key()])) << item.key();
    }
  }
  EXPECT_TRUE(torch::equal(model->text_projection->weight, clip->text_projection->weight));
  EXPECT_TRUE(torch::equal(model->logit_scale, clip->logit_scale));

  slide::SlideReportModel wider(small_encoder(), [] {
    auto c = tiny_text(154);
    c.text_width = 64;
    return c;
  }());
  EXPECT_THROW(wider->load_text(*clip, "clip"), Error);
}

TEST(SlideReportModel, ExportReadsBackToTheSameEmbeddings) {
  pathvlm::testing::TempDir dir("slide_report_export");
  torch::manual_seed(1);
  slide::SlideReportModel model(small_encoder(), tiny_text(64));
  model->eval();
  slide::save_slide_report_model(model, dir / "export");
  auto back = slide::load_slide_report_model(dir / "export");
  back->eval();
  torch::NoGradGuard no_grad;
  auto features = torch::randn({2, 5, 12});
  auto coords = torch::randint(0, 4000, {2, 5, 2}, torch::kLong);
  auto mask = torch::ones({2, 5}, torch::kBool);
  mask[1].slice(0, 3).fill_(false);
  EXPECT_TRUE(torch::equal(model->encode_slide(features, coords, mask), back->encode_slide(features, coords, mask)));
  auto ids = torch::tensor({{49406, 320, 1125, 49407}}, torch::kLong);
  EXPECT_TRUE(torch::equal(model->encode_report(ids), back->encode_report(ids)));
  EXPECT_EQ(back->encoder_config().kind, "qformer");
  EXPECT_EQ(back->text_config().context_length, 64);
  std::filesystem::remove(dir / "export/model.safetensors");
  EXPECT_THROW(slide::load_slide_report_model(dir / "export"), Error);
}
