// `pathvlm eval --model CONCH/`: CONCH v1 scored by the clip task's evaluation (zero-shot classification with CONCH's
// own prompt-file format, image<->text retrieval) on real tile shards, on 1 and 2 ranks, against the metrics worked
// out here from `pathvlm encode`'s embeddings of the same images and texts.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "data/csv.h"
#include "eval/retrieval.h"
#include "eval/zeroshot.h"
#include "io/safetensors.h"
#include "models/conch/conch_util.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

struct Split {
  std::vector<std::string> images, captions;
  std::vector<int64_t> labels;
};

// The rows of a `synth tiles` CSV (filepath,caption,label,class), paths made absolute.
Split read_split(const std::string& dir, const std::string& name) {
  const std::string csv = dir + "/" + name + ".csv";
  const auto rows = data::parse_csv(data::read_text_file(csv, "test CSV"), ',', csv, "test CSV");
  Split s;
  for (size_t i = 1; i < rows.size(); ++i) {
    s.images.push_back(dir + "/" + rows[i].fields[0]);
    s.captions.push_back(rows[i].fields[1]);
    s.labels.push_back(std::stoll(rows[i].fields[2]));
  }
  return s;
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(ConchEval, ZeroShotAndRetrievalEqualThoseOfItsEncodedEmbeddings) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  const std::string dir = fresh_dir("conch_eval"), bin = PATHVLM_BINARY, log = dir + "/out.log";
  auto run = [&](const std::string& command) {
    const int raw = std::system((command + " > " + log + " 2>&1").c_str());
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  };
  ASSERT_EQ(run(bin + " synth tiles --quiet --out " + dir + "/tiles --size 64 --train-per-class 1 " +
                "--val-per-class 2 --zeroshot-per-class 4 --seed 5"),
            0)
      << read_text(log);
  for (const std::string split : {"val", "zeroshot"})
    ASSERT_EQ(run(bin + " shards build " + dir + "/tiles/" + split + ".csv --out " + dir + "/" + split), 0)
        << read_text(log);
  const std::string conch = write_conch({"eval", "v1", 0, "", true});
  write_conch_tokenizer(fs::path(conch) / "tokenizer.json");
  {
    // The image tower's biases zeroed: random ones give every tile nearly the same embedding, and so the same class,
    // which would leave the labels' path through the evaluation untested.
    const auto file = fs::path(conch) / "model.safetensors";
    const auto stored = safetensors::File::open(file.string());
    safetensors::NamedTensors tensors;
    for (const auto& info : stored.tensors()) {
      auto t = stored.get(info.name).clone();
      const bool bias = info.name.size() >= 4 && info.name.compare(info.name.size() - 4, 4, "bias") == 0;
      if (info.name.rfind("visual.", 0) == 0 && bias) t.zero_();
      tensors.emplace_back(info.name, t);
    }
    safetensors::save(file.string(), tensors, stored.metadata());
  }

  // CONCH's prompt-file format (prompts/crc100k_prompts_all_per_class.json), the synthetic classes in label order.
  // Short prompts: the test tokenizer spells most bytes alone and the text tower reads 11 tokens.
  const std::vector<std::pair<std::string, std::vector<std::string>>> classes = {
      {"TUM", {"tumor", "carcinoma"}}, {"LYM", {"lymphocytes"}},      {"STR", {"stroma", "fibrosis"}},
      {"ADI", {"adipose", "fat"}},     {"MUC", {"mucus", "mucin"}},   {"NEC", {"necrosis"}},
      {"NORM", {"mucosa"}},            {"BACK", {"background", "glass"}}};
  nlohmann::ordered_json classnames = nlohmann::ordered_json::object();
  for (const auto& [name, synonyms] : classes) classnames[name] = synonyms;
  const nlohmann::ordered_json prompts = {
      {"0", {{"classnames", classnames}, {"templates", {"CLASSNAME.", "a CLASSNAME", "CLASSNAME tile"}}}}};
  std::ofstream(dir + "/prompts.json") << prompts.dump(2);

  const std::string eval = bin + " eval --model " + conch + " --zeroshot " + dir + "/zeroshot --classes " + dir +
                           "/prompts.json --val " + dir + "/val --batch-size 5 --json ";
  ASSERT_EQ(run(eval + dir + "/one.json"), 0) << read_text(log);
  EXPECT_HAS(read_text(log), "CONCH v1 (ViT 448/32");
  EXPECT_HAS(read_text(log), "448 px input, bicubic resize");
  ASSERT_EQ(run(std::string(PATHVLM_MPIRUN) + " -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 " +
                eval + dir + "/two.json"),
            0)
      << read_text(log);
  const auto one = read_json(dir + "/one.json"), two = read_json(dir + "/two.json");
  for (const auto& [key, value] : one.items()) EXPECT_NEAR(value.get<double>(), two.at(key).get<double>(), 1e-9) << key;

  // The same images and texts through `pathvlm encode`: every prompt, then the validation captions.
  const Split zeroshot = read_split(dir + "/tiles", "zeroshot"), val = read_split(dir + "/tiles", "val");
  const auto spec = eval::load_zeroshot_spec(dir + "/prompts.json");
  ASSERT_EQ(spec.classes.size(), classes.size());
  std::vector<std::string> texts;
  std::vector<int64_t> prompts_of;
  for (size_t c = 0; c < spec.classes.size(); ++c) {
    for (const auto& p : spec.prompts(c)) texts.push_back(p);
    prompts_of.push_back(static_cast<int64_t>(spec.prompts(c).size()));
  }
  texts.insert(texts.end(), val.captions.begin(), val.captions.end());
  {
    std::ofstream out(dir + "/texts.txt");
    for (const auto& t : texts) out << t << "\n";
  }
  std::string images;
  for (const auto* split : {&zeroshot, &val})
    for (const auto& image : split->images) images += " " + image;
  ASSERT_EQ(run(bin + " encode --model " + conch + " --images" + images + " --texts-file " + dir + "/texts.txt --out " +
                dir + "/embeds.safetensors --device cpu"),
            0)
      << read_text(log);
  const auto file = safetensors::File::open(dir + "/embeds.safetensors");
  const auto image_embeds = file.get("image_embeds"), text_embeds = file.get("text_embeds");
  const int64_t n_zeroshot = static_cast<int64_t>(zeroshot.images.size());
  const int64_t n_prompts = static_cast<int64_t>(texts.size() - val.captions.size());

  // Zero-shot as CONCH's zero_shot_classifier: per class the mean of its normalised prompt embeddings, normalised.
  const auto prompt_embeds = F::normalize(text_embeds.narrow(0, 0, n_prompts), F::NormalizeFuncOptions().dim(1));
  std::vector<torch::Tensor> weights;
  int64_t at = 0;
  for (const int64_t count : prompts_of) {
    weights.push_back(F::normalize(prompt_embeds.narrow(0, at, count).mean(0), F::NormalizeFuncOptions().dim(0)));
    at += count;
  }
  // Its logits: the cosine times CONCH's temperature (run_zeroshot's), whose softmax gives the ROC AUC.
  const double scale = std::stod(file.metadata().at("logit_scale"));
  const auto logits = scale * F::normalize(image_embeds.narrow(0, 0, n_zeroshot), F::NormalizeFuncOptions().dim(1))
                                  .matmul(torch::stack(weights).t());
  const auto predictions = logits.argmax(1);
  const auto labels = torch::tensor(zeroshot.labels, torch::kLong);
  std::set<int64_t> predicted(predictions.data_ptr<int64_t>(), predictions.data_ptr<int64_t>() + n_zeroshot);
  ASSERT_GE(predicted.size(), 3u) << "the random CONCH predicts too few classes to tell the plumbing apart";
  const auto zs = eval::metrics_from_logits(logits, labels);
  ASSERT_TRUE(zs.roc_auc.has_value());
  // Retrieval of the validation tiles and their captions.
  const auto rt = eval::retrieval_metrics(image_embeds.narrow(0, n_zeroshot, static_cast<int64_t>(val.images.size())),
                                          text_embeds.narrow(0, n_prompts, static_cast<int64_t>(val.captions.size())));
  auto expected = eval::metric_values(zs, "zeroshot/");
  for (const auto& kv : eval::metric_values(rt, "retrieval/")) expected.push_back(kv);
  ASSERT_EQ(expected.size(), one.size()) << one.dump();
  for (const auto& [key, value] : expected) {
    ASSERT_TRUE(one.contains(key)) << key << " missing from " << one.dump();
    EXPECT_NEAR(one[key].get<double>(), value, 1e-9) << key;
  }

  // Without its tokenizer the error says where CONCH keeps it; v1.5 has no text tower.
  fs::remove(fs::path(conch) / "tokenizer.json");
  EXPECT_EQ(run(eval + dir + "/x.json"), kExitError);
  EXPECT_HAS(read_text(log), "conch_byte_level_bpe_uncased.json");
  const std::string v15 = write_conch({"eval_v15", "v1.5"});
  EXPECT_EQ(run(bin + " eval --model " + v15 + " --zeroshot " + dir + "/zeroshot --classes " + dir + "/prompts.json"),
            kExitError);
  EXPECT_HAS(read_text(log), "v1.5's holds the image tower alone");
  fs::remove_all(v15);
  fs::remove_all(conch);
  fs::remove_all(dir);
}
