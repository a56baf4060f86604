// CONCH v1's text tower (models/conch/text.h): random weights in the names of MahmoodLab/CONCH's state dict, compared
// with the numpy reference of its open_clip CoCa's encode_text (conch_text_reference.py), CoCa's class-token mask
// with its off-by-one included; the temperature; every misshapen tensor refused or run; what has no text tower.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "models/conch/conch_util.h"
#include "models/conch/weights.h"
#include "models/lying_shapes.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

// The reference's embeddings of `ids` [B, L].
torch::Tensor reference_text_embeddings(const std::string& dir, const torch::Tensor& ids) {
  const std::string file = dir + "/ids.i64";
  const auto contiguous = ids.to(torch::kLong).contiguous();
  std::ofstream(file, std::ios::binary)
      .write(static_cast<const char*>(contiguous.data_ptr()), static_cast<std::streamsize>(contiguous.nbytes()));
  std::string output;
  const int status = run_command(std::string("/usr/bin/python3 ") + PATHVLM_SOURCE_DIR +
                                     "/tests/models/conch/conch_text_reference.py " + dir + " " + file + " " +
                                     std::to_string(ids.size(0)),
                                 output);
  EXPECT_EQ(status, 0) << output;
  if (status != 0) return {};
  return json_matrix(nlohmann::json::parse(output));
}

}  // namespace

// Prompts as CONCH's tokenize pads them (<start_of_text>=1 ... <end_of_text>=2, then <pad>=0), one with no padding
// at all (the class token then reads itself), at the longest length and a shorter one.
TEST(ConchText, MatchesCocaEncodeTextWithItsClassTokenMask) {
  const std::string dir = write_conch({"text", "v1", 0, "", true});
  const auto ids = torch::tensor({{1, 7, 9, 30, 2, 0, 0, 0, 0, 0, 0},
                                  {1, 3, 4, 5, 6, 7, 8, 9, 10, 11, 2},
                                  {1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
                                 torch::kLong);
  ASSERT_EQ(ids.size(1), kConchPositions - 1);
  EXPECT_FALSE(moves_random_stream([&] { models::load_conch_text(dir); }));
  auto text = models::load_conch_text(dir);
  EXPECT_NEAR(text.logit_scale, std::exp(kConchLogitScale), 1e-3);
  const auto& c = text.model->config();
  EXPECT_EQ(c.width, kConchTextWidth);
  EXPECT_EQ(c.heads, kConchTextWidth / 64);
  EXPECT_EQ(c.layers, kConchTextDepth);
  EXPECT_EQ(c.embed_dim, kConchProjection);
  torch::NoGradGuard no_grad;
  for (const auto& batch : {ids, ids.narrow(1, 0, 6)}) {
    const auto expected = reference_text_embeddings(dir, batch);
    ASSERT_TRUE(expected.defined());
    const auto got = text.model->forward(batch);
    ASSERT_EQ(got.sizes(), expected.sizes());
    EXPECT_TRUE(torch::allclose(got, expected, 1e-4, 1e-4)) << (got - expected).abs().max().item<double>();
  }
  // What sits behind the padding still reaches the class token through the mask's off-by-one: the first pad.
  auto changed = ids.clone();
  changed[0][5] = 31;
  EXPECT_FALSE(torch::allclose(text.model->forward(changed)[0], text.model->forward(ids)[0]));
  const auto message = error_of([&] { text.model->forward(torch::ones({1, kConchPositions}, torch::kLong)); });
  EXPECT_NE(message.find("are not [batch, 1..11]"), std::string::npos) << message;
  fs::remove_all(dir);
}

TEST(ConchText, EveryTensorOfAnotherShapeIsRefusedOrRuns) {
  const std::string dir = write_conch({"text_lying", "v1", 0, "", true});
  const auto ids = torch::tensor({{1, 5, 2, 0}}, torch::kLong);
  expect_lying_shapes_refused(
      dir, [](const std::string& d) { return models::load_conch_text(d).model; },
      [&](models::ConchText text) {
        torch::NoGradGuard no_grad;
        EXPECT_EQ(text->forward(ids).size(1), text->config().embed_dim);
      });
  fs::remove_all(dir);
}

TEST(ConchText, WhatHasNoTextTowerIsRefusedNamingTheFile) {
  const std::string v15 = write_conch({"text_v15", "v1.5"});
  auto message = error_of([&] { models::load_conch_text(v15); });
  EXPECT_NE(message.find("CONCH v1 text tower '" + v15 + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("v1.5's holds the image tower alone"), std::string::npos) << message;
  fs::remove_all(v15);
  const std::string extra = write_conch({"text_extra", "v1", 0, "text.transformer.resblocks.0.ls_1.gamma", true});
  message = error_of([&] { models::load_conch_text(extra); });
  EXPECT_NE(message.find("text.transformer.resblocks.0.ls_1.gamma"), std::string::npos) << message;
  fs::remove_all(extra);
}
