// `pathvlm probe`: embeddings of two safetensors files (as `pathvlm encode --slides` writes them) and TITAN-style
// split CSVs (the label in an OncoTreeCode column) give the test probabilities and the C the numpy reference of
// sklearn's logistic regression chooses from TITAN's 45; what it refuses.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/cli_test_util.h"
#include "data/csv.h"
#include "eval/linear_probe.h"
#include "eval/linear_probe_util.h"
#include "io/safetensors.h"

using namespace pathvlm;
using namespace pathvlm::testing;
namespace fs = std::filesystem;

namespace {

const char* const kClasses[] = {"LUAD", "LUSC", "MESO"};

// The rows of `x` under ids "<split>_<i>", labelled kClasses[y], in a CSV whose columns are TITAN's split files'.
void write_split(const fs::path& csv, const std::string& split, const torch::Tensor& y) {
  std::ofstream out(csv);
  out << "slide_id,case_id,OncoTreeCode\n";
  for (int64_t i = 0; i < y.size(0); ++i)
    out << split << "_" << i << ",case_" << i << "," << kClasses[y[i].item<int64_t>()] << "\n";
}

void write_embeddings(const fs::path& file, const std::vector<std::pair<std::string, torch::Tensor>>& splits) {
  std::vector<torch::Tensor> rows;
  nlohmann::json ids = nlohmann::json::array();
  for (const auto& [split, x] : splits) {
    rows.push_back(x.to(torch::kFloat32));
    for (int64_t i = 0; i < x.size(0); ++i) ids.push_back(split + "_" + std::to_string(i));
  }
  safetensors::save(file.string(), {{"slide_embeds", torch::cat(rows)}}, {{"slide_ids", ids.dump()}});
}

TEST(Probe, ChoosesCOnValidationAndScoresTheTestSplitAsTheReference) {
  const fs::path dir = fs::temp_directory_path() / ("pathvlm_probe_cli_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto d = probe_data(3, 5);
  // float32 as encode writes them; the reference sees the same values.
  for (auto* x : {&d.train_x, &d.val_x, &d.test_x}) *x = x->to(torch::kFloat32).to(torch::kFloat64);
  const auto expected = logistic_reference(dir.string(), d, eval::titan_costs());
  write_embeddings(dir / "a.safetensors", {{"train", d.train_x}, {"val", d.val_x}});
  write_embeddings(dir / "b.safetensors", {{"test", d.test_x}});
  write_split(dir / "train.csv", "train", d.train_y);
  write_split(dir / "val.csv", "val", d.val_y);
  write_split(dir / "test.csv", "test", d.test_y);
  const std::string splits = " --train " + (dir / "train.csv").string() + " --val " + (dir / "val.csv").string() +
                             " --out " + (dir / "probe").string();
  const std::string files = "probe --embeddings " + (dir / "a.safetensors").string() + " " +
                            (dir / "b.safetensors").string() + splits;
  const std::string command = files + " --label-column OncoTreeCode";

  auto result = run_cli(command + " --test " + (dir / "test.csv").string(), dir);
  ASSERT_EQ(result.status, 0) << result.err;
  const auto report = nlohmann::json::parse(read_text(dir / "probe" / "probe.json"));
  EXPECT_EQ(report["classes"], nlohmann::json::array({"LUAD", "LUSC", "MESO"}));
  ASSERT_EQ(report["sweep"].size(), 45u);
  EXPECT_DOUBLE_EQ(report["C"].get<double>(), eval::titan_costs()[expected.best]);
  for (size_t i = 0; i < 45; ++i)
    EXPECT_NEAR(report["sweep"][i]["val_log_loss"].get<double>(), expected.val_log_loss[i], 1e-5) << i;
  const auto rows = data::parse_csv(read_text(dir / "probe" / "predictions.csv"), ',', "predictions.csv", "test");
  ASSERT_EQ(rows.size(), 1u + d.test_y.size(0));
  EXPECT_EQ(rows[0].fields, (std::vector<std::string>{"slide_id", "label", "predicted", "prob_LUAD", "prob_LUSC",
                                                      "prob_MESO"}));
  int64_t correct = 0;
  for (int64_t i = 0; i < d.test_y.size(0); ++i) {
    const auto& f = rows[i + 1].fields;
    EXPECT_EQ(f[0], "test_" + std::to_string(i));
    EXPECT_EQ(f[1], kClasses[d.test_y[i].item<int64_t>()]);
    for (int64_t c = 0; c < 3; ++c)
      EXPECT_NEAR(std::stod(f[3 + c]), expected.test_probabilities[i][c].item<double>(), 1e-5) << i << " " << c;
    correct += f[2] == kClasses[expected.test_probabilities[i].argmax().item<int64_t>()];
  }
  EXPECT_EQ(correct, d.test_y.size(0));  // every prediction is the reference's most probable class
  const double top1 = (expected.test_probabilities.argmax(1) == d.test_y).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(report["test"]["metrics"]["top1"].get<double>(), top1, 1e-12);
  EXPECT_NE(result.out.find("probe: test top1"), std::string::npos) << result.out;
  const auto& ci = report["test"]["metrics_95ci"]["top1"];  // --bootstrap 1000 by default
  EXPECT_LE(ci[0].get<double>(), top1);
  EXPECT_GE(ci[1].get<double>(), top1);
  EXPECT_LT(ci[0].get<double>(), ci[1].get<double>());
  EXPECT_EQ(report["test"]["bootstrap_draws"], 1000);

  // A test slide without an embedding, and a label the train split lacks, are refused by name.
  std::ofstream(dir / "extra.csv") << "slide_id,OncoTreeCode\ntest_0,LUAD\nnowhere_1,LUAD\n";
  result = run_cli(command + " --test " + (dir / "extra.csv").string(), dir);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("1 of its 2 slides have no embedding in --embeddings ('nowhere_1')"), std::string::npos)
      << result.err;
  std::ofstream(dir / "unknown.csv") << "slide_id,OncoTreeCode\ntest_0,GBM\n";
  result = run_cli(command + " --test " + (dir / "unknown.csv").string(), dir);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("slide 'test_0' is labelled 'GBM', a class the train split does not have"),
            std::string::npos)
      << result.err;
  result = run_cli(files + " --test " + (dir / "test.csv").string(), dir);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("lacks the column 'label' (its columns: slide_id, case_id, OncoTreeCode"),
            std::string::npos)
      << result.err;

  // A test slide the model was fitted on, and an embedding that is not finite.
  result = run_cli(command + " --test " + (dir / "train.csv").string(), dir);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("slide 'train_0' is in both --train"), std::string::npos) << result.err;
  auto bad = d.test_x.clone();
  bad[3][1] = std::numeric_limits<double>::quiet_NaN();
  write_embeddings(dir / "b.safetensors", {{"test", bad}});
  result = run_cli(command + " --test " + (dir / "test.csv").string(), dir);
  EXPECT_NE(result.status, 0);
  EXPECT_NE(result.err.find("b.safetensors': the embedding of 'test_3' (row 3) is not finite (1 such rows)"),
            std::string::npos)
      << result.err;
  fs::remove_all(dir);
}

}  // namespace
