// `pathvlm encode --model TITAN/ --slides`: TRIDENT's per-slide .h5 files (float16 or float32 features, the tile size
// in the coords attribute patch_size_level0) to TITAN's slide embeddings, equal to the numpy reference of its
// encode_slide_from_patch_features; a slide whose file does not record its tile size is refused before anything is
// written, unless --patch-size-level0 gives it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli_test_util.h"
#include "io/hdf5.h"
#include "io/safetensors.h"
#include "models/titan/titan_util.h"

using namespace pathvlm;
using namespace pathvlm::testing;
namespace fs = std::filesystem;

namespace {

TEST(EncodeTitan, SlideEmbeddingsOfTridentFilesAreTitans) {
  const fs::path dir = fs::temp_directory_path() / ("pathvlm_encode_titan_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "features");
  const std::string model = write_titan(TitanFiles{"cli"});
  const auto slides = titan_test_slides();
  const auto expected = titan_reference_embeddings(model, slides);
  ASSERT_TRUE(expected.defined());

  std::ofstream csv(dir / "slides.csv");
  csv << "slide_id,features\n";
  for (size_t i = 0; i < slides.size(); ++i) {
    const std::string id = "slide_" + std::to_string(i);
    auto file = h5::File::create((dir / "features" / (id + ".h5")).string());
    file.write("features", i == 0 ? slides[i].features.to(torch::kHalf) : slides[i].features);
    auto coords = file.write("coords", slides[i].coords);
    // The last slide's file, as CLAM's, does not say its tile size.
    if (i + 1 < slides.size()) coords.set_attr("patch_size_level0", slides[i].patch_size_level0);
    csv << id << ",features/" << id << ".h5\n";
  }
  csv.close();
  const std::string out = (dir / "titan.safetensors").string();
  const std::string command =
      "encode --model " + model + " --slides " + (dir / "slides.csv").string() + " --out " + out;

  auto result = run_cli(command, dir);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("slide 'slide_2'"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("give --patch-size-level0"), std::string::npos) << result.err;
  EXPECT_FALSE(fs::exists(out));

  // The flag serves the slide that lacks it; the others keep their own (1024 for the second).
  result = run_cli(command + " --patch-size-level0 " + std::to_string(slides[2].patch_size_level0), dir);
  ASSERT_EQ(result.status, 0) << result.err;
  const auto file = safetensors::File::open(out);
  const auto embeddings = file.get("slide_embeds");
  ASSERT_EQ(embeddings.sizes(), expected.sizes());
  EXPECT_LT((embeddings - expected).abs().max().item<double>(), 1e-4);
  EXPECT_EQ(nlohmann::json::parse(file.metadata().at("slide_ids")),
            nlohmann::json::array({"slide_0", "slide_1", "slide_2"}));
  EXPECT_NE(result.err.find("titan: 3 slides in"), std::string::npos) << result.err;

  result = run_cli(command + " --texts-file " + (dir / "slides.csv").string(), dir);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("its text tower is not supported"), std::string::npos) << result.err;
  fs::remove_all(dir);
  fs::remove_all(model);
}

}  // namespace
