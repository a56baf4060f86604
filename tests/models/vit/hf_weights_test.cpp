// transformers ViT tile encoders (models/vit/hf_weights.h): random weights in the names and files of ViTModel
// (Phikon), Dinov2Model (Phikon-v2; Midnight's SwiGLU with position embeddings resampled to the input, as a task
// model's prefixed tensors) and Dinov2WithRegistersModel (its resampling antialiased), compared with transformers'
// forward written in numpy (hf_vit_reference.py, torch's two bicubic resamplings included); the pooling choices;
// what is taken for a transformers ViT; the refusals. tests/wsi/slide_cli_test.cpp runs one through `pathvlm embed`.
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "models/vit/hf_vit_util.h"
#include "models/vit/hf_weights.h"
#include "models/vit/timm_weights.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

void expect_matches_transformers(const HfLayout& layout, const std::string& pool = "token") {
  SCOPED_TRACE(layout.name + " " + pool);
  const std::string dir = write_hf_vit(layout);
  ASSERT_TRUE(models::is_hf_vit(dir));
  ASSERT_FALSE(models::is_timm_vit(dir));
  const auto pixels = random_pixels(3);
  const auto expected = reference_features(dir, pixels, "hf_vit_reference.py", pool);
  ASSERT_TRUE(expected.defined());

  EXPECT_FALSE(moves_random_stream([&] { models::load_hf_vit(dir); }));
  auto vit = models::load_hf_vit(dir);
  EXPECT_EQ(vit->config().image_size, kImage);
  EXPECT_EQ(vit->config().reg_tokens, layout.reg_tokens);
  EXPECT_EQ(vit->config().mean, kMean);
  EXPECT_EQ(vit->config().std, kStd);
  // Without `resample`, its processor's default filter: BitImageProcessor's bicubic, ViTImageProcessor's bilinear.
  EXPECT_EQ(vit->config().interpolation, layout.crop ? "bicubic" : "bilinear");
  if (pool != "token") vit->set_global_pool(pool);
  EXPECT_EQ(vit->config().features(), expected.size(1));
  torch::NoGradGuard no_grad;
  const auto got = vit->forward(normalised(pixels));
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-4)) << (got - expected).abs().max().item<double>();
  fs::remove_all(dir);
}

// The error of loading `layout`, "" when it loads.
std::string load_error(const HfLayout& layout) {
  const std::string dir = write_hf_vit(layout);
  std::string error;
  try {
    models::load_hf_vit(dir);
  } catch (const Error& e) {
    error = e.what();
  }
  fs::remove_all(dir);
  return error;
}

}  // namespace

TEST(HfVit, PhikonLayoutMatchesTransformersViTModel) {
  HfLayout layout("phikon", "vit");
  layout.layer_norm_eps = 0.1;  // far from ViT's 1e-12 default, so a default read in its place shows
  layout.crop = false;
  expect_matches_transformers(layout);
}

// The filter its preprocessor_config names (PIL's numbering) is the one tiles are resized with; one pathvlm lacks is
// kept by name, for embed to refuse unless its `interpolation` replaces it.
TEST(HfVit, ResizesWithThePreprocessorsFilter) {
  for (const auto& [resample, name] : std::vector<std::pair<int, std::string>>{{2, "bilinear"}, {3, "bicubic"},
                                                                                {1, "lanczos"}}) {
    HfLayout layout("resample_" + name);
    layout.resample = resample;
    const std::string dir = write_hf_vit(layout);
    EXPECT_EQ(models::load_hf_vit(dir)->config().interpolation, name);
    fs::remove_all(dir);
  }
}

TEST(HfVit, PhikonV2LayoutMatchesTransformersDinov2Model) {
  expect_matches_transformers(HfLayout("phikon2"));
}

TEST(HfVit, MidnightLayoutResamplesItsPositionEmbeddingsAsTransformersDoes) {
  HfLayout layout("midnight");
  layout.swiglu = true;
  layout.position_grid = 7;  // DINOv2-giant's 37x37 grid taken at 16x16, in small
  layout.prefix = "dinov2.";
  expect_matches_transformers(layout);
  expect_matches_transformers(layout, "token+avg");  // Midnight's card: class token and patch mean
  layout.position_grid = 3;                          // resampled up as well
  expect_matches_transformers(layout, "avg");
}

TEST(HfVit, RegisterTokensMatchTransformersDinov2WithRegisters) {
  HfLayout layout("registers", "dinov2_with_registers");
  layout.reg_tokens = 4;
  expect_matches_transformers(layout);
  expect_matches_transformers(layout, "token+avg");  // the mean leaves the registers out
  layout.position_grid = 7;  // resampled with antialiasing (Dinov2WithRegistersEmbeddings), down and up
  expect_matches_transformers(layout);
  layout.position_grid = 3;
  expect_matches_transformers(layout);
}

TEST(HfVit, RefusesWhatItCannotRunAsTransformersWould) {
  HfLayout no_preprocessor("no_preprocessor");
  no_preprocessor.preprocessor = false;
  EXPECT_NE(load_error(no_preprocessor).find("preprocessor_config.json' is missing"), std::string::npos)
      << load_error(no_preprocessor);
  HfLayout vit_resized("vit_resized", "vit");
  vit_resized.position_grid = 6;
  EXPECT_NE(load_error(vit_resized).find("is not the 48 px ViTModel's position embeddings are for"), std::string::npos)
      << load_error(vit_resized);
  HfLayout extra("extra");
  extra.extra_tensor = true;
  EXPECT_NE(load_error(extra).find("'encoder.layer.0.attention.attention.q_norm.weight' is not part of"),
            std::string::npos)
      << load_error(extra);
  HfLayout tanh_gelu("tanh_gelu", "vit");
  tanh_gelu.hidden_act = "gelu_new";
  EXPECT_NE(load_error(tanh_gelu).find("hidden_act 'gelu_new' is not supported"), std::string::npos)
      << load_error(tanh_gelu);
  EXPECT_EQ(load_error(HfLayout("loads")), "");
}

TEST(HfVit, EveryTensorOfAnotherShapeIsRefusedOrRuns) {
  HfLayout layout("lying", "dinov2_with_registers");
  layout.swiglu = true;
  layout.reg_tokens = 2;
  layout.position_grid = 7;  // resampled at load
  const std::string dir = write_hf_vit(layout);
  const auto pixels = normalised(random_pixels(1));
  expect_lying_shapes_refused(dir, models::load_hf_vit, [&](models::Vit vit) {
    torch::NoGradGuard no_grad;
    EXPECT_EQ(vit->forward(pixels).size(1), vit->config().features());
  });
  fs::remove_all(dir);
}

TEST(HfVit, TellsTransformersViTsFromTimmAndClipDirectories) {
  const std::string timm = write_timm_vit({"not_hf"});
  EXPECT_FALSE(models::is_hf_vit(timm));
  const auto clip = fs::temp_directory_path() / ("pathvlm_hf_vit_clip_" + std::to_string(::getpid()));
  fs::create_directories(clip);
  std::ofstream((clip / "config.json").string()) << R"({"model_type": "clip", "architectures": ["CLIPModel"]})";
  EXPECT_FALSE(models::is_hf_vit(clip.string()));
  EXPECT_FALSE(models::is_hf_vit((clip / "config.json").string()));  // a file, not a model directory
  fs::remove_all(timm);
  fs::remove_all(clip);
}

TEST(HfVit, PoolingThatTheFinalNormDoesNotAllowIsRefused) {
  Layout avg{"avg_pool"};
  avg.global_pool = "avg";  // timm's fc_norm: the norm follows the patch mean
  const std::string dir = write_timm_vit(avg);
  auto vit = models::load_timm_vit(dir);
  try {
    vit->set_global_pool("token");
    ADD_FAILURE() << "token pooling accepted with fc_norm";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("only avg does"), std::string::npos) << e.what();
  }
  EXPECT_EQ(vit->config().global_pool, "avg");
  fs::remove_all(dir);
}
