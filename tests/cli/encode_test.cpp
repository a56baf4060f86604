// `pathvlm encode`, `pathvlm export --format hf-clip` and `pathvlm tokenize` (CLIP and SentencePiece) end to
// end (the real program), checked against the same computation done in process.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "text/clip_tokenizer.h"
#include "data/image.h"
#include "models/clip/weights.h"
#include "io/safetensors.h"
#include "models/conch/conch_util.h"
#include "models/conch/weights.h"

using namespace pathvlm;
namespace fs = std::filesystem;

namespace {

const std::string kData = PATHVLM_SHARED_DATA;
const std::string kVocab = kData + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";

#define SKIP_WITHOUT_SHARED_DATA()                                                                   \
  if (!fs::exists(kVocab) || !fs::exists(kData + "/tiles/he_prov_normal_000_1.png"))                \
  GTEST_SKIP() << "shared test data missing under " << kData << " (see ../shared/data/README.md)"

struct Result {
  int status;
  std::string output;
};

// Runs the pathvlm program with `args` (a shell fragment); captures stdout and stderr together.
Result run(const std::string& args, const fs::path& scratch) {
  const auto log = scratch / "command.log";
  const std::string command = std::string(PATHVLM_BINARY) + " " + args + " > " + log.string() + " 2>&1";
  int raw = std::system(command.c_str());
  std::ifstream in(log);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, ss.str()};
}

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) : path(fs::temp_directory_path() / ("pathvlm_encode_" + name)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

models::ClipModel small_model() {
  models::ClipModelConfig c;
  c.embed_dim = 32;
  c.image_size = 64;
  c.patch_size = 16;
  c.vision_width = 64;
  c.vision_layers = 2;
  c.vision_heads = 1;
  c.text_width = 64;
  c.text_layers = 2;
  c.text_heads = 1;
  c.context_length = 20;
  c.hidden_act = "quick_gelu";
  torch::manual_seed(21);
  return models::ClipModel(c);
}

}  // namespace

TEST(ClipEncode, EncodeMatchesInProcessEmbeddings) {
  SKIP_WITHOUT_SHARED_DATA();
  TempDir dir("encode");
  auto model = small_model();
  const auto hf = dir.path / "hf";
  models::export_hf_clip(model, model->config(), hf.string());
  text::ClipTokenizer(kVocab, 20).save_hf(hf.string());  // encode finds the tokenizer in the model directory

  const std::vector<std::string> images = {kData + "/tiles/he_prov_normal_000_1.png", kData + "/tiles/he_01581x_25327y.png"};
  const std::vector<std::string> texts = {"An H&E image of colorectal adenocarcinoma epithelium.", "benign colonic tissue",
                                          "a photomicrograph of necrosis"};
  std::ofstream(dir.path / "texts.txt") << texts[0] << "\n" << texts[1] << "\n" << texts[2] << "\n";
  const auto out = dir.path / "embeds.safetensors";
  auto r = run("encode --model " + hf.string() + " --images " + images[0] + " " + images[1] + " --texts-file " +
                   (dir.path / "texts.txt").string() + " --out " + out.string() + " --device cpu --batch-size 2",
               dir.path);
  ASSERT_EQ(r.status, 0) << r.output;

  auto file = safetensors::File::open(out.string());
  auto image_embeds = file.get("image_embeds"), text_embeds = file.get("text_embeds");
  ASSERT_EQ(image_embeds.sizes(), (std::vector<int64_t>{2, 32}));
  ASSERT_EQ(text_embeds.sizes(), (std::vector<int64_t>{3, 32}));
  EXPECT_EQ(image_embeds.scalar_type(), torch::kFloat32);

  torch::NoGradGuard no_grad;
  model->eval();
  std::vector<torch::Tensor> pixels;
  for (const auto& path : images) {
    pixels.push_back(data::normalize_openai(data::resize_shortest_and_center_crop(data::read_image(path), 64)));
  }
  auto expected_images = model->encode_image(torch::stack(pixels));
  auto expected_texts = model->encode_text(text::ClipTokenizer(kVocab, 20).batch(texts));
  EXPECT_LT((image_embeds - expected_images).abs().max().item<double>(), 1e-5);
  EXPECT_LT((text_embeds - expected_texts).abs().max().item<double>(), 1e-5);

  // Texts without a tokenizer anywhere, and an unreadable image, are clear errors.
  const auto bare = dir.path / "bare";
  models::export_hf_clip(model, model->config(), bare.string());
  r = run("encode --model " + bare.string() + " --texts-file " + (dir.path / "texts.txt").string() + " --out " +
              out.string(), dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--vocab"), std::string::npos) << r.output;
  std::ofstream(dir.path / "broken.png") << "\x89PNG\r\n\x1a\n not really";
  r = run("encode --model " + hf.string() + " --images " + (dir.path / "broken.png").string() + " --out " + out.string(),
          dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("broken.png"), std::string::npos) << r.output;
}

TEST(ClipEncode, ExportWritesALoadableHfDirectory) {
  SKIP_WITHOUT_SHARED_DATA();
  TempDir dir("export");
  auto model = small_model();
  // An open_clip state dict in, an HF directory out (with tokenizer files).
  const auto source = dir.path / "open_clip.safetensors";
  safetensors::save(source.string(), models::hf_to_open_clip(model));
  const auto out = dir.path / "exported";
  auto r = run("export " + source.string() + " --format hf-clip " + out.string() + " --vocab " + kVocab +
                   " --hidden-act quick_gelu", dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* f : {"config.json", "model.safetensors", "preprocessor_config.json", "vocab.json", "merges.txt",
                        "tokenizer_config.json", "special_tokens_map.json"}) {
    EXPECT_TRUE(fs::exists(out / f)) << f;
  }
  auto vocab = nlohmann::json::parse(std::ifstream(out / "vocab.json"));
  EXPECT_EQ(vocab.size(), 49408u);
  EXPECT_EQ(vocab["<|endoftext|>"], 49407);
  EXPECT_EQ(vocab["a</w>"], 320);

  auto loaded = models::load_clip(out.string());
  torch::NoGradGuard no_grad;
  auto pixels = torch::randn({1, 3, 64, 64});
  EXPECT_EQ((loaded->encode_image(pixels) - model->encode_image(pixels)).abs().max().item<double>(), 0.0);

  // --dtype bf16: every tensor and the config say bfloat16, and the weights read back are the model's rounded.
  const auto half = dir.path / "exported_bf16";
  r = run("export " + source.string() + " --format hf-clip " + half.string() + " --hidden-act quick_gelu --dtype bf16",
          dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("bfloat16"), std::string::npos) << r.output;
  const auto file = safetensors::File::open((half / "model.safetensors").string());
  for (const auto& info : file.tensors()) EXPECT_EQ(info.dtype, torch::kBFloat16) << info.name;
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(half / "config.json")).at("torch_dtype"), "bfloat16");
  auto rounded = models::load_clip(half.string());
  const auto expected = model->named_parameters();
  for (const auto& item : rounded->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), expected[item.key()].to(torch::kBFloat16).to(torch::kFloat32)))
        << item.key();
  }
  r = run("export " + source.string() + " --format hf-clip " + (dir.path / "fp8").string() + " --dtype fp8", dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("--dtype 'fp8': expected fp32, bf16 or fp16"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.path / "fp8"));

  r = run("export " + source.string() + " --format onnx " + out.string(), dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("hf-clip"), std::string::npos) << r.output;
}

// A run's checkpoint names its tokenizer in its config (clip.vocab): `export` writes the tokenizer files from it and
// `encode --texts-file` reads texts with it, no --vocab needed.
TEST(ClipEncode, ARunsTokenizerGoesWithItsWeights) {
  SKIP_WITHOUT_SHARED_DATA();
  TempDir dir("run_vocab");
  auto model = small_model();
  const auto step = dir.path / "run" / "checkpoints" / "step_00000005";
  fs::create_directories(step);
  safetensors::NamedTensors tensors;
  for (const auto& item : model->named_parameters()) tensors.emplace_back(item.key(), item.value().detach());
  safetensors::save((step / "model.safetensors").string(), tensors);
  const std::string yaml = "run:\n  task: clip\nclip:\n  vocab: " + kVocab +
                           "\n  model:\n    embed_dim: 32\n    image_size: 64\n    patch_size: 16\n"
                           "    vision_width: 64\n    vision_layers: 2\n    vision_heads: 1\n    text_width: 64\n"
                           "    text_layers: 2\n    text_heads: 1\n    context_length: 20\n    hidden_act: quick_gelu\n";
  std::ofstream(step / "trainer_state.json") << nlohmann::json({{"step", 5}, {"config", yaml}}).dump();
  std::ofstream(dir.path / "run" / "checkpoints" / "latest") << "step_00000005\n";

  const auto out = dir.path / "exported";
  auto r = run("export " + (dir.path / "run").string() + " --format hf-clip " + out.string(), dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("CLIPTokenizer from " + kVocab), std::string::npos) << r.output;
  EXPECT_EQ(nlohmann::json::parse(std::ifstream(out / "vocab.json")).size(), 49408u);
  EXPECT_TRUE(fs::exists(out / "merges.txt"));

  const std::vector<std::string> texts = {"tumor", "an H&E image of adipose tissue"};
  std::ofstream(dir.path / "texts.txt") << texts[0] << "\n" << texts[1] << "\n";
  for (const auto& source : {dir.path / "run", out}) {
    const auto embeds = dir.path / "embeds.safetensors";
    r = run("encode --model " + source.string() + " --texts-file " + (dir.path / "texts.txt").string() + " --out " +
                embeds.string(), dir.path);
    ASSERT_EQ(r.status, 0) << source << "\n" << r.output;
    torch::NoGradGuard no_grad;
    model->eval();
    auto expected = model->encode_text(text::ClipTokenizer(kVocab, 20).batch(texts));
    EXPECT_LT((safetensors::File::open(embeds.string()).get("text_embeds") - expected).abs().max().item<double>(), 1e-5)
        << source;
  }
}

TEST(ClipEncode, TokenizeCommandPrintsOpenClipIds) {
  SKIP_WITHOUT_SHARED_DATA();
  TempDir dir("tokenize");
  std::ifstream vectors(kData + "/tokenizers/clip_tokenizer_vectors.jsonl");
  std::ofstream input(dir.path / "in.jsonl");
  std::vector<std::vector<int64_t>> expected;
  std::string line;
  while (std::getline(vectors, line) && expected.size() < 12) {
    auto record = nlohmann::json::parse(line);
    input << nlohmann::json(record["text"]).dump() << "\n";
    expected.push_back(record["ids"].get<std::vector<int64_t>>());
  }
  input.close();
  auto r = run("tokenize --vocab " + kVocab + " --jsonl < " + (dir.path / "in.jsonl").string(), dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  std::istringstream lines(r.output);
  for (const auto& ids : expected) {
    ASSERT_TRUE(std::getline(lines, line));
    EXPECT_EQ(nlohmann::json::parse(line).get<std::vector<int64_t>>(), ids);
  }

  std::ofstream(dir.path / "plain.txt") << "benign colonic tissue\n";
  r = run("tokenize --vocab " + kVocab + " --context 8 --unpadded < " + (dir.path / "plain.txt").string(), dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "[49406,1465,2326,754,3711,15368,49407]\n");

  r = run("tokenize --vocab " + (dir.path / "nope.txt.gz").string() + " < " + (dir.path / "plain.txt").string(), dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("nope.txt.gz"), std::string::npos) << r.output;
}

TEST(TokenizeCommand, PrintsLlamaIdsWithSentencePiece) {
  const std::string model = kData + "/tokenizers/llama2_tokenizer.model";
  if (!fs::exists(model)) GTEST_SKIP() << "shared test data missing: " << model << " (see ../shared/data/README.md)";
  TempDir dir("tokenize_sentencepiece");
  fs::create_directories(dir.path / "vicuna");
  fs::copy_file(model, dir.path / "vicuna" / "tokenizer.model");
  std::ofstream(dir.path / "in.txt") << "Hello world\nHello <s>.\n\n";
  auto r = run("tokenize --tokenizer " + (dir.path / "vicuna").string() + " < " + (dir.path / "in.txt").string(),
               dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "[1,15043,3186]\n[1,15043,29871,1,869]\n[1]\n");
  std::ofstream(dir.path / "in.jsonl") << "{\"text\": \"a\\nb</s>\"}\n";
  r = run("tokenize --tokenizer " + model + " --no-bos --jsonl < " + (dir.path / "in.jsonl").string(), dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(r.output, "[263,13,29890,2]\n");

  const auto input = " < " + (dir.path / "in.txt").string();
  r = run("tokenize --tokenizer " + model + " --vocab " + kVocab + input, dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("exactly one of --vocab"), std::string::npos) << r.output;
  r = run("tokenize --tokenizer " + (dir.path / "none").string() + input, dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find((dir.path / "none").string()), std::string::npos) << r.output;
}

// ---- slides ---------------------------------------------------------------------------------------------

#include "train/slide/task.h"
#include "train/trainer.h"
#include "train/slide/slide_test_util.h"
#include "train/train_test_util.h"

// `encode --slides` with a slide run: every slide with all its tiles, in the listed order, ids in the metadata; the
// reports through the run's text tower. Equal to the exported model on one slide at a time.
TEST(SlideEncode, SlideAndReportEmbeddingsMatchTheExport) {
  if (!fs::exists(kVocab)) GTEST_SKIP() << "shared test data missing under " << kData;
  const auto dir = fs::path(pathvlm::testing::fresh_dir("slide_encode"));
  const auto slides = pathvlm::testing::write_tiny_slides((dir / "data").string(), 16, 5);
  auto job = pathvlm::testing::tiny_slide_job(dir.string(), "run", slides, 3);
  train::train(job);
  std::ofstream(dir / "reports.txt") << "Sections show predominantly fibrous stroma.\nlobules of fat\n";

  auto r = run("encode --model " + (dir / "run").string() + " --slides " + slides.val_csv + " --texts-file " +
                   (dir / "reports.txt").string() + " --batch-size 2 --device cpu --out " + (dir / "e.safetensors").string(),
               dir);
  ASSERT_EQ(r.status, 0) << r.output;
  auto file = safetensors::File::open((dir / "e.safetensors").string());
  auto embeds = file.get("slide_embeds");
  ASSERT_EQ(embeds.sizes(), (std::vector<int64_t>{5, 128}));
  auto ids = nlohmann::json::parse(file.metadata().at("slide_ids"));
  ASSERT_EQ(ids.size(), 5u);

  auto model = train::open_slide_model((dir / "run" / "export").string());
  auto bags = data::SlideBagDataset::open({slides.val_csv}, {});
  auto builder = bags.builder(/*train=*/false);
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < 5; ++i) {
    EXPECT_EQ(ids[i].get<std::string>(), bags.slide(i).id);
    data::BatchRequest request;
    request.records = {i};
    auto b = builder(request);
    EXPECT_EQ(b.at("mask").sum().item<int64_t>(), bags.slide(i).tiles);
    auto alone = model.model->encode_slide(b.at("features"), b.at("coords"), b.at("mask"));
    EXPECT_TRUE(torch::allclose(embeds[i], alone[0], 1e-4, 1e-5)) << i;
  }
  auto texts = file.get("text_embeds");
  auto expected = model.model->encode_report(
      model.tokenizer->batch({"Sections show predominantly fibrous stroma.", "lobules of fat"}));
  EXPECT_TRUE(torch::allclose(texts, expected, 1e-4, 1e-5));

  r = run("encode --model " + (dir / "run").string() + " --images x.png --out " + (dir / "f.safetensors").string(), dir);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("--images needs a CLIP model"), std::string::npos) << r.output;
  fs::remove_all(dir);
}

// CONCH v1 (its converted checkpoint, with a tokenizer.json in the form of CONCH's beside it): image_embeds are its
// projected image embedding of tiles resized to 448 px (bicubic), text_embeds its text tower's of the ids CONCH's
// tokenize gives (worked out by hand here: normalised NFD, accents stripped, lower case, a prefix space, cut to fit
// between <start_of_text> and <end_of_text>, <pad> after); the temperature in the metadata.
TEST(ConchEncode, ImagesAndTextsLandInItsSharedSpace) {
  SKIP_WITHOUT_SHARED_DATA();
  using pathvlm::testing::kConchInput, pathvlm::testing::kConchLogitScale, pathvlm::testing::kConchProjection;
  using pathvlm::testing::write_conch, pathvlm::testing::write_conch_tokenizer;
  TempDir dir("conch");
  const std::string conch = write_conch({"encode", "v1", 0, "", true});
  write_conch_tokenizer(fs::path(conch) / "tokenizer.json");
  const std::vector<std::string> texts = {"Tumor", "Café", "abcdefghijklmnop"};
  std::ofstream(dir.path / "texts.txt") << texts[0] << "\n" << texts[1] << "\n" << texts[2] << "\n";
  const std::string image = kData + "/tiles/he_prov_normal_000_1.png";
  const auto out = dir.path / "embeds.safetensors";
  auto r = run("encode --model " + conch + " --images " + image + " --texts-file " + (dir.path / "texts.txt").string() +
                   " --out " + out.string() + " --device cpu --batch-size 2",
               dir.path);
  ASSERT_EQ(r.status, 0) << r.output;
  auto file = safetensors::File::open(out.string());
  const auto image_embeds = file.get("image_embeds"), text_embeds = file.get("text_embeds");
  ASSERT_EQ(image_embeds.sizes(), (std::vector<int64_t>{1, kConchProjection}));
  ASSERT_EQ(text_embeds.sizes(), (std::vector<int64_t>{3, kConchProjection}));
  EXPECT_NEAR(std::stod(file.metadata().at("logit_scale")), std::exp(kConchLogitScale), 1e-3);

  // " tumor": "Ġt" merged; " cafe"; " abcdefghijklmnop" cut to its first 9 tokens.
  const auto byte = [](char c) { return 3 + static_cast<int>(static_cast<unsigned char>(c)); };
  const auto ids = torch::tensor({{1, 259, byte('u'), byte('m'), byte('o'), byte('r'), 2, 0, 0, 0, 0},
                                  {1, byte(' '), byte('c'), byte('a'), byte('f'), byte('e'), 2, 0, 0, 0, 0},
                                  {1, byte(' '), byte('a'), byte('b'), byte('c'), byte('d'), byte('e'), byte('f'),
                                   byte('g'), byte('h'), 2}},
                                 torch::kLong);
  torch::NoGradGuard no_grad;
  auto text = models::load_conch_text(conch);
  const auto expected_texts = text.model->forward(ids);
  EXPECT_LT((text_embeds - expected_texts).abs().max().item<double>(), 1e-5);
  auto vision = models::load_conch(conch).model;
  vision->set_projected(true, "test");
  const auto& trunk = vision->trunk->config();
  const auto pixels = data::normalize_image(
      data::resize_bicubic(data::read_image(image), kConchInput, kConchInput), trunk.mean, trunk.std);
  const auto expected_image = vision->forward(pixels.unsqueeze(0));
  EXPECT_LT((image_embeds - expected_image).abs().max().item<double>(), 1e-4);

  // Without its tokenizer file the texts say where to find it; CONCH v1.5 has no text tower.
  fs::remove(fs::path(conch) / "tokenizer.json");
  r = run("encode --model " + conch + " --texts-file " + (dir.path / "texts.txt").string() + " --out " + out.string(),
          dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("conch_byte_level_bpe_uncased.json"), std::string::npos) << r.output;
  const std::string v15 = write_conch({"encode_v15", "v1.5"});
  r = run("encode --model " + v15 + " --texts-file " + (dir.path / "texts.txt").string() + " --out " + out.string(),
          dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("v1.5's holds the image tower alone"), std::string::npos) << r.output;
  r = run("encode --model " + v15 + " --images " + image + " --out " + out.string(), dir.path);
  EXPECT_EQ(r.status, 2);
  EXPECT_NE(r.output.find("has no contrastive projection"), std::string::npos) << r.output;
  fs::remove_all(v15);
  fs::remove_all(conch);
}
