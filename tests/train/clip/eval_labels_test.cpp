// `pathvlm eval` on real zero-shot shards whose labels index classes the class list does not have: exit 2 with the
// shards, the class list and the bad labels named (nothing computed on wrong indices).
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

TEST(ClipEvalLabels, LabelsBeyondTheClassListAreNamed) {
  const std::string vocab = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";
  ASSERT_TRUE(fs::exists(vocab)) << "shared test data missing: " << vocab;
  const std::string dir = fresh_dir("eval_labels"), bin = PATHVLM_BINARY;
  auto run = [&](const std::string& command) {
    const int raw = std::system((command + " >> " + dir + "/out.log 2>&1").c_str());
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  };
  ASSERT_EQ(run(bin + " synth tiles --quiet --out " + dir +
                "/tiles --size 64 --train-per-class 1 --val-per-class 1 "
                "--zeroshot-per-class 2 --seed 1"),
            0)
      << read_text(dir + "/out.log");
  for (const std::string split : {"train", "zeroshot"})
    ASSERT_EQ(run(bin + " shards build " + dir + "/tiles/" + split + ".csv --out " + dir + "/" + split), 0)
        << read_text(dir + "/out.log");
  std::ofstream(dir + "/three.yaml") << "templates: [\"an H&E image of {}.\"]\nclasses: [tumor, stroma, fat]\n";
  // A model to evaluate: one training step, no evaluation of its own.
  ASSERT_EQ(run(bin + " train " + PATHVLM_SOURCE_DIR + "/configs/clip/demo_tiny.yaml run.runs_dir=" + dir +
                "/runs run.name=m train.steps=1 optim.warmup_steps=0 train.micro_batch_size=4 eval.every=0 clip.data.train=" + dir +
                "/train clip.data.val= clip.data.zeroshot= clip.eval.classes= clip.vocab=" + vocab),
            0)
      << read_text(dir + "/out.log");

  const int status = run(bin + " eval " + PATHVLM_SOURCE_DIR + "/configs/clip/demo_tiny.yaml --model " + dir +
                         "/runs/m run.runs_dir=" + dir + "/runs clip.data.train= clip.data.val= clip.vocab=" + vocab +
                         " --zeroshot " + dir + "/zeroshot --classes " + dir + "/three.yaml");
  const std::string log = read_text(dir + "/out.log");
  EXPECT_EQ(status, kExitError) << log;
  EXPECT_HAS(log, "zero-shot tiles '" + dir +
                      "/zeroshot': 10 of 16 records have labels that are not class indices of '" + dir +
                      "/three.yaml' (3 classes: labels 0..2 index its list): 3 x2, 4 x2, 5 x2, 6 x2, 7 x2");
  fs::remove_all(dir);
}
