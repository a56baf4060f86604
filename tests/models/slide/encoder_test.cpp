// The slide encoders (abmil, transformer, qformer): padding never changes a slide's outputs or gradients,
// gradients flow and skip the padding, tile order does not matter (the transformer follows the coordinates),
// the chunk size does not change the result, and construction and dropout follow the torch seed.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/slide/encoder.h"

using namespace pathvlm;
using models::slide::SlideEncoder;
using models::slide::SlideEncoderConfig;
using models::slide::SlideOutput;

namespace {

SlideEncoderConfig small_config(const std::string& kind) {
  SlideEncoderConfig c;
  c.kind = kind;
  c.input_dim = 12;
  c.width = 16;
  c.heads = 2;
  c.layers = 2;
  c.queries = 3;
  c.attention_chunk = 3;  // several chunks per bag, none dividing every length
  c.grid_stride = 256;
  return c;
}

struct Slide {
  torch::Tensor features, coords;  // [n, D], [n, 2]
};

// Tiles on distinct grid cells with offsets inside the cell (the cell, not the pixel, is the position).
Slide make_slide(int64_t tiles, int64_t dim) {
  auto cells = torch::randperm(64, torch::kLong).narrow(0, 0, tiles);
  auto coords = torch::stack({cells.remainder(8), cells.div(8, "floor")}, 1) * 256 + torch::randint(0, 256, {tiles, 2});
  return {torch::randn({tiles, dim}), coords};
}

struct Batch {
  torch::Tensor features, coords, mask;
};

// Right-padded batch; padding rows hold large finite garbage.
Batch pad(const std::vector<Slide>& slides) {
  int64_t longest = 0;
  for (const auto& s : slides) longest = std::max(longest, s.features.size(0));
  const auto B = static_cast<int64_t>(slides.size()), D = slides[0].features.size(1);
  Batch b{torch::randn({B, longest, D}) * 1e3, torch::randint(0, 1 << 20, {B, longest, 2}),
          torch::zeros({B, longest}, torch::kBool)};
  for (int64_t i = 0; i < B; ++i) {
    const auto n = slides[i].features.size(0);
    b.features[i].narrow(0, 0, n).copy_(slides[i].features);
    b.coords[i].narrow(0, 0, n).copy_(slides[i].coords);
    b.mask[i].narrow(0, 0, n).fill_(true);
  }
  return b;
}

SlideOutput encode_alone(SlideEncoder& encoder, const Slide& s) {
  return encoder->forward(s.features.unsqueeze(0), s.coords.unsqueeze(0),
                          torch::ones({1, s.features.size(0)}, torch::kBool));
}

bool close(const torch::Tensor& a, const torch::Tensor& b) { return torch::allclose(a, b, 1e-5, 1e-5); }

class SlideEncoderKinds : public ::testing::TestWithParam<std::string> {};

}  // namespace

TEST_P(SlideEncoderKinds, ShapesFollowTheKind) {
  torch::manual_seed(1);
  SlideEncoder encoder(small_config(GetParam()));
  auto batch = pad({make_slide(5, 12), make_slide(9, 12)});
  auto out = encoder->forward(batch.features, batch.coords, batch.mask);
  const int64_t Q = GetParam() == "qformer" ? 3 : 1;
  EXPECT_EQ(encoder->num_tokens(), Q);
  EXPECT_EQ(encoder->width(), 16);
  EXPECT_EQ(out.tokens.sizes(), (std::vector<int64_t>{2, Q, 16}));
  EXPECT_EQ(out.pooled.sizes(), (std::vector<int64_t>{2, 16}));
  if (Q == 1) {
    EXPECT_TRUE(torch::equal(out.tokens.squeeze(1), out.pooled));
  } else {
    EXPECT_TRUE(close(out.tokens.mean(1), out.pooled));
  }
  // bf16 features are cast to the parameters' dtype.
  auto from_bf16 = encoder->forward(batch.features.to(torch::kBFloat16), batch.coords, batch.mask);
  EXPECT_EQ(from_bf16.pooled.scalar_type(), torch::kFloat);
}

TEST_P(SlideEncoderKinds, PaddingNeverChangesASlideInEvalAndTrainMode) {
  torch::manual_seed(2);
  SlideEncoder encoder(small_config(GetParam()));
  std::vector<Slide> slides = {make_slide(4, 12), make_slide(11, 12), make_slide(1, 12), make_slide(7, 12)};
  auto batch = pad(slides);
  for (bool train : {false, true}) {
    SCOPED_TRACE(train ? "train" : "eval");
    encoder->train(train);
    auto together = encoder->forward(batch.features, batch.coords, batch.mask);
    for (size_t i = 0; i < slides.size(); ++i) {
      auto alone = encode_alone(encoder, slides[i]);
      EXPECT_TRUE(close(alone.tokens[0], together.tokens[i])) << "slide " << i;
      EXPECT_TRUE(close(alone.pooled[0], together.pooled[i])) << "slide " << i;
    }
  }
}

TEST_P(SlideEncoderKinds, GradientsFlowSkipPaddingAndMatchTheSlideAlone) {
  torch::manual_seed(3);
  SlideEncoder encoder(small_config(GetParam()));
  std::vector<Slide> slides = {make_slide(6, 12), make_slide(2, 12), make_slide(10, 12)};
  auto batch = pad(slides);
  auto features = batch.features.clone().requires_grad_();
  auto out = encoder->forward(features, batch.coords, batch.mask);
  (out.tokens.pow(2).sum() + out.pooled.sum()).backward();
  for (const auto& p : encoder->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<float>(), 0.0f) << p.key();
  }
  auto grad = features.grad();
  EXPECT_EQ(grad.masked_select(batch.mask.logical_not().unsqueeze(-1)).abs().max().item<float>(), 0.0f);
  for (size_t i = 0; i < slides.size(); ++i) {
    auto alone = slides[i].features.clone().unsqueeze(0).requires_grad_();
    auto single = encoder->forward(alone, slides[i].coords.unsqueeze(0),
                                   torch::ones({1, slides[i].features.size(0)}, torch::kBool));
    (single.tokens.pow(2).sum() + single.pooled.sum()).backward();
    EXPECT_GT(alone.grad().abs().sum().item<float>(), 0.0f);
    EXPECT_TRUE(torch::allclose(alone.grad()[0], grad[i].narrow(0, 0, slides[i].features.size(0)), 1e-4, 1e-5))
        << "slide " << i;
  }
}

TEST_P(SlideEncoderKinds, TileOrderDoesNotMatterAndCoordinatesOnlyForTheTransformer) {
  torch::manual_seed(4);
  SlideEncoder encoder(small_config(GetParam()));
  encoder->eval();
  auto slide = make_slide(9, 12);
  auto order = torch::randperm(9, torch::kLong);
  auto base = encode_alone(encoder, slide).tokens;
  auto permuted = encode_alone(encoder, {slide.features.index_select(0, order), slide.coords.index_select(0, order)});
  EXPECT_TRUE(close(permuted.tokens, base));

  // The same features at other grid cells (a shift inside each cell changes nothing).
  auto moved = encode_alone(encoder, {slide.features, slide.coords.index_select(0, order)}).tokens;
  auto nudged = encode_alone(encoder, {slide.features, slide.coords.div(256, "floor") * 256 + 255}).tokens;
  EXPECT_TRUE(close(nudged, base));
  if (GetParam() == "transformer") {
    EXPECT_FALSE(close(moved, base));
  } else {
    EXPECT_TRUE(torch::equal(moved, base));
  }
}

TEST_P(SlideEncoderKinds, ChunkSizeDoesNotChangeTheResult) {
  auto config = small_config(GetParam());
  auto batch = pad({make_slide(13, 12), make_slide(5, 12)});
  torch::manual_seed(5);
  SlideEncoder chunked(config);
  config.attention_chunk = 1024;
  torch::manual_seed(5);
  SlideEncoder whole(config);
  EXPECT_TRUE(close(chunked->forward(batch.features, batch.coords, batch.mask).tokens,
                    whole->forward(batch.features, batch.coords, batch.mask).tokens));
}

TEST_P(SlideEncoderKinds, DeterministicFromTheTorchSeed) {
  auto config = small_config(GetParam());
  config.dropout = 0.3;
  auto batch = pad({make_slide(8, 12), make_slide(3, 12)});
  auto run = [&](uint64_t init_seed, uint64_t dropout_seed) {
    torch::manual_seed(init_seed);
    SlideEncoder encoder(config);
    encoder->train();
    torch::manual_seed(dropout_seed);
    return encoder->forward(batch.features, batch.coords, batch.mask).tokens;
  };
  auto first = run(6, 60);
  EXPECT_TRUE(torch::equal(first, run(6, 60)));
  EXPECT_FALSE(torch::equal(first, run(6, 61)));  // other dropout masks
  EXPECT_FALSE(torch::equal(first, run(7, 60)));  // other initial weights
}

TEST_P(SlideEncoderKinds, RejectsBadInputs) {
  SlideEncoder encoder(small_config(GetParam()));
  auto batch = pad({make_slide(3, 12), make_slide(5, 12)});
  EXPECT_THROW(encoder->forward(batch.features.narrow(2, 0, 11), batch.coords, batch.mask), std::exception);
  EXPECT_THROW(encoder->forward(batch.features, batch.coords, batch.mask.to(torch::kLong)), std::exception);
  EXPECT_THROW(encoder->forward(batch.features, batch.coords.narrow(2, 0, 1), batch.mask), std::exception);
  auto empty_slide = batch.mask.clone();
  empty_slide[1].fill_(false);
  EXPECT_THROW(encoder->forward(batch.features, batch.coords, empty_slide), std::exception);
}

INSTANTIATE_TEST_SUITE_P(Kinds, SlideEncoderKinds, ::testing::Values("abmil", "transformer", "qformer"));

TEST(SlideEncoder, RejectsUnknownKindsAndShapes) {
  auto config = small_config("perceiver");
  EXPECT_THROW(SlideEncoder{config}, std::exception);
  config = small_config("transformer");
  config.heads = 3;
  EXPECT_THROW(SlideEncoder{config}, std::exception);
  config.heads = 2;
  config.width = 18;  // not a multiple of 4
  EXPECT_THROW(SlideEncoder{config}, std::exception);
}

TEST(SlideEncoder, ParameterNamesFollowTheKind) {
  auto names = [](const std::string& kind) {
    std::vector<std::string> out;
    for (const auto& p : SlideEncoder(small_config(kind))->named_parameters()) out.push_back(p.key());
    return out;
  };
  auto has = [](const std::vector<std::string>& list, const std::string& name) {
    return std::find(list.begin(), list.end(), name) != list.end();
  };
  EXPECT_TRUE(has(names("abmil"), "abmil.attention_c.weight"));
  EXPECT_TRUE(has(names("transformer"), "transformer.cls_token"));
  EXPECT_TRUE(has(names("transformer"), "transformer.blocks.1.self_attn.q_proj.weight"));
  EXPECT_TRUE(has(names("qformer"), "qformer.queries"));
  EXPECT_TRUE(has(names("qformer"), "qformer.blocks.0.cross_attn.k_proj.weight"));
}
