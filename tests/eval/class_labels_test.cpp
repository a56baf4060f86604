// Labels that index no class are refused before any metric, naming the data, the class list and the bad labels.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "core/error.h"
#include "eval/zeroshot.h"
#include "test_util.h"

using namespace pathvlm;

TEST(ClassLabels, OutOfRangeAndMissingLabelsAreNamed) {
  EXPECT_NO_THROW(eval::check_class_labels(torch::tensor({0, 2, 1, 2}), 3, "tiles 'a'", "c.yaml"));
  const std::string message = pathvlm::testing::error_of([] {
    eval::check_class_labels(torch::tensor({0, 7, 1, 7, -1, 2, -4}), 3, "zero-shot tiles 'z'", "c.yaml");
  });
  for (const char* part : {"zero-shot tiles 'z': 4 of 7 records have labels that are not class indices of 'c.yaml'",
                           "(3 classes: labels 0..2 index its list)", "-4 x1, -1 (none) x1, 7 x2",
                           "-1 is a record without a label: build the shards with a `label` column"})
    EXPECT_NE(message.find(part), std::string::npos) << part << " | " << message;
}

TEST(ZeroShotSpec, ADirectoryOrDeepYamlIsNamed) {
  pathvlm::testing::TempDir dir("zeroshot_spec");
  std::string deep;
  for (int i = 0; i < 10000; ++i) deep += std::string(i, ' ') + "k:\n";
  const auto file = dir.write("deep.yaml", deep);
  for (const auto& [path, part] : {std::pair{dir / "", "' is a directory, not a YAML file"},
                                   {file, "deep.yaml': YAML nested 500 or more levels deep (line 499)"}}) {
    const std::string message = pathvlm::testing::error_of([&] { eval::load_zeroshot_spec(path); });
    EXPECT_NE(message.find(part), std::string::npos) << message;
  }
}
