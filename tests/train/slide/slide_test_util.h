// Shared by the slide task tests: a small set of slides as per-slide feature files in TRIDENT's layout listed by CSV
// manifests, and the tiny slide job trained on it.
//
// Each slide shows one main tissue kind (60-100% of its tiles) and sometimes a second one; a tile's 16-d feature is
// its kind's mean plus noise, and the report names the kinds in words a pathologist would use (two phrases per kind,
// never the class name itself). The zero-shot YAML prompts with those phrases.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/hdf5.h"
#include "train/job_config.h"
#include "train/slide/config.h"

namespace pathvlm::testing {

struct TinySlides {
  std::string train_csv, val_csv, zeroshot_yaml;
  int64_t feature_dim = 16;
};

inline const std::vector<std::string>& tiny_slide_kinds() {
  static const std::vector<std::string> kinds = {"tumor", "stroma", "lymphocytes", "adipose"};
  return kinds;
}

inline const std::vector<std::vector<std::string>>& tiny_slide_phrases() {
  static const std::vector<std::vector<std::string>> phrases = {
      {"invasive adenocarcinoma", "malignant glandular epithelium"},
      {"fibrous stroma", "desmoplastic stroma"},
      {"dense lymphocytic infiltrate", "lymphoid aggregates"},
      {"mature adipose tissue", "lobules of fat"}};
  return phrases;
}

// Writes `count` slides (features/<prefix>_NNN.h5) and <prefix>.csv into `dir`; `seed` fixes everything.
inline std::string write_tiny_slide_split(const std::string& dir, const std::string& prefix, int count, uint64_t seed) {
  torch::manual_seed(1234);  // the kinds' means: the same in every split
  const auto means = torch::randn({4, 16}) * 1.5;
  auto gen = at::detail::createCPUGenerator(seed);
  auto draw = [&](int64_t n) { return torch::randint(n, {1}, gen).item<int64_t>(); };
  std::filesystem::create_directories(dir + "/features");
  std::ofstream csv(dir + "/" + prefix + ".csv");
  csv << "slide_id,features,report,label\n";
  const char* amounts_main[] = {"predominantly", "mostly"};
  for (int s = 0; s < count; ++s) {
    const std::string id = prefix + "_" + std::to_string(1000 + s).substr(1);
    const int64_t main = draw(4), tiles = 8 + draw(33);
    int64_t second = draw(5) - 1;  // -1: one kind only
    if (second == main) second = -1;
    const int64_t main_tiles = second < 0 ? tiles : tiles * (6 + draw(4)) / 10;
    auto kinds = torch::full({tiles}, main, torch::kLong);
    if (second >= 0) kinds.slice(0, main_tiles).fill_(second);
    kinds = kinds.index_select(0, torch::randperm(tiles, gen));
    auto features = means.index_select(0, kinds) + 0.5 * torch::randn({tiles, 16}, gen);
    auto coords = torch::empty({tiles, 2}, torch::kLong);
    for (int64_t t = 0; t < tiles; ++t) {
      coords[t][0] = (t % 8) * 256;
      coords[t][1] = (t / 8) * 256;
    }
    auto f = h5::File::create(dir + "/features/" + id + ".h5");
    h5::DatasetOptions one_row;
    one_row.chunk = {1, 16};
    f.write("features", features.to(torch::kHalf), one_row).set_attr("encoder", "tiny_test");
    auto c = f.write("coords", coords);
    c.set_attr("patch_size", int64_t{256});
    c.set_attr("patch_size_level0", int64_t{256});
    const auto& phrases = tiny_slide_phrases();
    std::string report = std::string("Sections show ") + amounts_main[draw(2)] + " " + phrases[main][draw(2)];
    if (second >= 0) report += " and focal " + phrases[second][draw(2)];
    report += ".";
    csv << id << ",features/" << id << ".h5," << report << "," << tiny_slide_kinds()[main] << "\n";
  }
  return dir + "/" + prefix + ".csv";
}

inline TinySlides write_tiny_slides(const std::string& dir, int train = 48, int val = 16) {
  TinySlides out;
  out.train_csv = write_tiny_slide_split(dir, "train", train, 1);
  out.val_csv = write_tiny_slide_split(dir, "val", val, 2);
  out.zeroshot_yaml = dir + "/zeroshot.yaml";
  std::ofstream yaml(out.zeroshot_yaml);
  yaml << "templates: [\"Sections show predominantly {}.\"]\nclasses:\n";
  for (size_t k = 0; k < tiny_slide_kinds().size(); ++k) {
    yaml << "  - name: " << tiny_slide_kinds()[k] << "\n    synonyms: [";
    for (size_t p = 0; p < tiny_slide_phrases()[k].size(); ++p) yaml << (p ? ", " : "") << tiny_slide_phrases()[k][p];
    yaml << "]\n";
  }
  return out;
}

// The tiny slide job: ABMIL (width 32) over 16-d tiles, the tiny CLIP text tower (context 32) from scratch, on CPU,
// 8 slides per micro-batch, up to 16 tiles sampled per slide, logged every step, no evaluation, no periodic
// checkpoints, a fresh start.
inline JobConfig tiny_slide_job(const std::string& runs_dir, const std::string& name, const TinySlides& slides,
                                int64_t steps) {
  JobConfig job;
  job.run.task = "slide";
  job.run.name = name;
  job.run.runs_dir = runs_dir;
  job.run.seed = 3;
  job.log.tensorboard = false;
  job.log.every = 1;
  job.train.steps = steps;
  job.train.micro_batch_size = 8;
  job.train.device = "cpu";
  job.optim.lr = 2e-3;
  job.optim.warmup_steps = 2;
  job.optim.clip_grad_norm = 1.0;
  job.checkpoint.every_steps = 0;
  job.checkpoint.resume = "none";
  auto& sc = job.task_config<train::SlideTaskConfig>();
  sc.encoder.kind = "abmil";
  sc.encoder.input_dim = slides.feature_dim;
  sc.encoder.width = 32;
  sc.encoder.heads = 2;
  sc.text.preset = "tiny";
  sc.text.context_length = 32;
  sc.text.vocab = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";
  sc.data.train = {slides.train_csv};
  sc.data.max_tiles = 16;
  sc.data.workers = 1;
  return job;
}

}  // namespace pathvlm::testing
