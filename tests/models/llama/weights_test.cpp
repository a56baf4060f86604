// LLaMA weights in and out: export -> load round trips (fp32, bf16, sharded, tied), the files an export
// writes, and the errors of directories that are not loadable.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>
#include <sstream>

#include "io/safetensors.h"
#include "llama_test_util.h"
#include "models/llama/weights.h"
#include "test_util.h"
#include "text/sentencepiece_tokenizer.h"

using namespace pathvlm;
using models::LlamaConfig;
using models::LlamaForCausalLM;
using pathvlm::testing::error_of;
using pathvlm::testing::random_llama;
using pathvlm::testing::TempDir;
using pathvlm::testing::tiny_llama_config;
namespace fs = std::filesystem;

namespace {

const std::string kTokenizerModel = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

// Every parameter of `b` equals `a`'s converted to b's dtype, bit for bit.
void expect_bit_equal(LlamaForCausalLM& a, LlamaForCausalLM& b) {
  auto pa = a->named_parameters(), pb = b->named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (const auto& item : pa) {
    ASSERT_TRUE(pb.contains(item.key())) << item.key();
    const auto& loaded = pb[item.key()];
    EXPECT_TRUE(torch::equal(item.value().to(loaded.scalar_type()), loaded)) << item.key();
  }
}

torch::Tensor ids() {
  torch::manual_seed(21);
  return torch::randint(0, tiny_llama_config().vocab_size, {2, 7}, torch::kInt64);
}

}  // namespace

TEST(LlamaWeights, ExportLoadRoundTripIsBitEqualInFp32AndBf16) {
  TempDir tmp("llama_roundtrip");
  auto model = random_llama(tiny_llama_config(), 1);
  for (auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    const auto dir = tmp / c10::toString(dtype);
    models::export_hf_llama(model, dir, dtype, 1ull << 30, "");
    models::LlamaForCausalLM loaded{nullptr};
    EXPECT_FALSE(pathvlm::testing::moves_random_stream([&] { loaded = models::load_llama(dir, dtype, torch::kCPU); }));
    for (const auto& p : loaded->parameters()) {
      EXPECT_EQ(p.scalar_type(), dtype);
      EXPECT_TRUE(p.requires_grad());
    }
    expect_bit_equal(model, loaded);
    EXPECT_TRUE(fs::exists(dir + "/model.safetensors"));
    EXPECT_FALSE(fs::exists(dir + "/model.safetensors.index.json"));
  }
  // A bf16 file loaded as fp32 holds exactly the bf16 values.
  auto widened = models::load_llama(tmp / "BFloat16", torch::kFloat32, torch::kCPU);
  auto narrow = models::load_llama(tmp / "BFloat16", torch::kBFloat16, torch::kCPU);
  expect_bit_equal(narrow, widened);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(model->forward(ids()), models::load_llama(tmp / "Float", torch::kFloat32,
                                                                    torch::kCPU)->forward(ids())));
}

TEST(LlamaWeights, ParametersViewTheFileCopyOnWrite) {
  TempDir tmp("llama_cow");
  auto model = random_llama(tiny_llama_config(), 2);
  models::export_hf_llama(model, tmp.path.string(), torch::kFloat32, 1ull << 30, "");
  const auto before = read(tmp / "model.safetensors");
  {
    auto loaded = models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU);
    torch::NoGradGuard no_grad;
    for (auto& p : loaded->parameters()) p.add_(1.0);  // training writes into its private pages
    auto again = models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU);
    expect_bit_equal(model, again);
  }
  EXPECT_EQ(read(tmp / "model.safetensors"), before);
}

TEST(LlamaWeights, ConfigsOfTransformers4xAnd5xLoadTheSameModel) {
  TempDir tmp("llama_forms");
  auto model = random_llama(tiny_llama_config(), 12);  // rope_theta 500: a misread theta changes the logits
  models::export_hf_llama(model, tmp.path.string(), torch::kFloat32, 1ull << 30, "");
  const auto ours = nlohmann::json::parse(read(tmp / "config.json"));
  torch::NoGradGuard no_grad;
  const auto expected = model->forward(ids());
  auto only_4x = ours, only_5x = ours;
  only_4x.erase("rope_parameters");
  only_4x.erase("head_dim");
  only_5x.erase("rope_theta");
  only_5x.erase("rope_scaling");
  for (const auto& form : {only_4x, only_5x}) {
    write(tmp / "config.json", form.dump(2));
    auto loaded = models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU);
    EXPECT_EQ(loaded->config().rope_theta, 500.0) << form.dump();
    EXPECT_TRUE(torch::equal(loaded->forward(ids()), expected)) << form.dump();
  }
}

TEST(LlamaWeights, ShardedAndSingleFileLoadsAreEqual) {
  TempDir tmp("llama_sharded");
  auto config = tiny_llama_config();
  config.attention_bias = true;
  config.mlp_bias = true;
  auto model = random_llama(config, 3);
  models::export_hf_llama(model, tmp / "single", torch::kBFloat16, 1ull << 30, "");
  models::export_hf_llama(model, tmp / "sharded", torch::kBFloat16, 6000, "");

  const auto index_path = tmp / "sharded/model.safetensors.index.json";
  ASSERT_TRUE(fs::exists(index_path));
  EXPECT_FALSE(fs::exists(tmp / "sharded/model.safetensors"));
  auto index = nlohmann::json::parse(read(index_path));
  const auto& weight_map = index["weight_map"];
  EXPECT_EQ(weight_map.size(), model->named_parameters().size());
  std::set<std::string> shards;
  uint64_t total = 0;
  for (const auto& item : model->named_parameters()) {
    ASSERT_TRUE(weight_map.contains(item.key())) << item.key();
    const auto shard = weight_map[item.key()].get<std::string>();
    shards.insert(shard);
    EXPECT_TRUE(safetensors::File::open(tmp / ("sharded/" + shard)).contains(item.key()));
    total += item.value().numel() * 2;
  }
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), total);
  EXPECT_GT(shards.size(), 3u);
  for (const auto& shard : shards) {
    EXPECT_LE(fs::file_size(tmp / ("sharded/" + shard)), 6000u + 2048u) << shard;  // + the header
    EXPECT_NE(shard.find("-of-0000"), std::string::npos) << shard;
  }

  auto single = models::load_llama(tmp / "single", torch::kFloat32, torch::kCPU);
  auto sharded = models::load_llama(tmp / "sharded", torch::kFloat32, torch::kCPU);
  expect_bit_equal(single, sharded);
  // The index file and a single file inside the directory are accepted too.
  auto by_index = models::load_llama(index_path, torch::kFloat32, torch::kCPU);
  auto by_file = models::load_llama(tmp / "single/model.safetensors", torch::kFloat32, torch::kCPU);
  expect_bit_equal(single, by_index);
  expect_bit_equal(single, by_file);
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(single->forward(ids()), sharded->forward(ids())));
}

TEST(LlamaWeights, TiedModelsWriteNoHeadAndLoadWithOrWithoutOne) {
  TempDir tmp("llama_tied");
  auto config = tiny_llama_config();
  config.tie_word_embeddings = true;
  auto model = random_llama(config, 4);
  models::export_hf_llama(model, tmp.path.string(), torch::kFloat32, 1ull << 30, "");
  auto file = safetensors::File::open(tmp / "model.safetensors");
  EXPECT_FALSE(file.contains("lm_head.weight"));
  EXPECT_TRUE(nlohmann::json::parse(read(tmp / "config.json"))["tie_word_embeddings"].get<bool>());
  auto loaded = models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU);
  expect_bit_equal(model, loaded);

  // Some tied checkpoints also carry lm_head.weight; older ones carry rotary_emb.inv_freq buffers.
  safetensors::NamedTensors tensors;
  for (const auto& t : file.tensors()) tensors.emplace_back(t.name, file.get(t.name).clone());
  tensors.emplace_back("lm_head.weight", file.get("model.embed_tokens.weight").clone());
  tensors.emplace_back("model.layers.0.self_attn.rotary_emb.inv_freq", torch::ones({4}));
  safetensors::save(tmp / "model.safetensors", tensors);
  expect_bit_equal(model, loaded = models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU));
}

// LLaVA's original checkpoints keep their projector and a copy of the vision tower beside the language model, whose
// config.json they extend: load_llama reads the language model and passes over the rest.
TEST(LlamaWeights, LlavaOriginalCheckpointsLoadAsTheirLanguageModel) {
  TempDir tmp("llama_llava_original");
  auto model = random_llama(tiny_llama_config(), 6);
  models::export_hf_llama(model, tmp.path.string(), torch::kFloat32, 1ull << 30, "");
  auto config = nlohmann::json::parse(read(tmp / "config.json"));
  config["model_type"] = "llava_llama";
  config["mm_projector_type"] = "mlp2x_gelu";
  config["mm_hidden_size"] = 8;
  write(tmp / "config.json", config.dump());
  auto file = safetensors::File::open(tmp / "model.safetensors");
  safetensors::NamedTensors tensors;
  for (const auto& t : file.tensors()) tensors.emplace_back(t.name, file.get(t.name).clone());
  tensors.emplace_back("model.mm_projector.0.weight", torch::ones({config["hidden_size"].get<int64_t>(), 8}));
  tensors.emplace_back("model.vision_tower.vision_tower.vision_model.embeddings.class_embedding", torch::ones({8}));
  safetensors::save(tmp / "model.safetensors", tensors);
  auto loaded = models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU);
  expect_bit_equal(model, loaded);

  // Anything else the model lacks is still an error.
  tensors.emplace_back("model.mm_adapter.weight", torch::ones({2}));
  safetensors::save(tmp / "model.safetensors", tensors);
  const auto msg = error_of([&] { models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU); });
  EXPECT_NE(msg.find("model.mm_adapter.weight"), std::string::npos) << msg;
}

TEST(LlamaWeights, ExportWritesConfigGenerationConfigAndCopiesTokenizerFiles) {
  TempDir tmp("llama_files");
  auto config = tiny_llama_config();
  config.pad_token_id = 0;
  auto model = random_llama(config, 5);
  // A model directory's tokenizer files are copied as they are; files it lacks are not invented.
  const auto source = tmp / "source", out = tmp / "out";
  fs::create_directories(source);
  const std::vector<std::string> names = {"tokenizer.model", "tokenizer.json", "tokenizer_config.json",
                                          "special_tokens_map.json"};
  for (const auto& name : names) write(source + "/" + name, "contents of " + name);
  models::export_hf_llama(model, out, torch::kBFloat16, 1ull << 30, source);
  for (const auto& name : names) EXPECT_EQ(read(out + "/" + name), "contents of " + name) << name;
  EXPECT_FALSE(fs::exists(out + "/added_tokens.json"));

  auto written = models::parse_hf_llama_config(read(out + "/config.json"), "config.json");
  EXPECT_EQ(written.num_key_value_heads, 2);
  EXPECT_EQ(written.rope_theta, config.rope_theta);
  EXPECT_EQ(written.pad_token_id, 0);
  EXPECT_EQ(nlohmann::json::parse(read(out + "/config.json"))["torch_dtype"], "bfloat16");
  auto generation = nlohmann::json::parse(read(out + "/generation_config.json"));
  EXPECT_EQ(generation["bos_token_id"], 1);
  EXPECT_EQ(generation["eos_token_id"], 2);
  EXPECT_EQ(generation["pad_token_id"], 0);
  EXPECT_EQ(generation["do_sample"], false);
  EXPECT_TRUE(generation["transformers_version"].is_string());

  // Exporting into the source directory itself leaves its files alone.
  models::export_hf_llama(model, source, torch::kBFloat16, 1ull << 30, source);
  EXPECT_EQ(read(source + "/tokenizer.model"), "contents of tokenizer.model");
  auto msg = error_of([&] { models::export_hf_llama(model, tmp / "x", torch::kFloat32, 1ull << 30, tmp / "none"); });
  EXPECT_NE(msg.find("tokenizer source"), std::string::npos) << msg;
  fs::create_directories(tmp / "empty");
  msg = error_of([&] { models::export_hf_llama(model, tmp / "x", torch::kFloat32, 1ull << 30, tmp / "empty"); });
  EXPECT_NE(msg.find("neither tokenizer.model nor tokenizer.json"), std::string::npos) << msg;
}

TEST(LlamaWeights, ExportWritesLlamaTokenizerFilesFromASentencePieceModel) {
  TempDir tmp("llama_spm");
  auto model = random_llama(tiny_llama_config(), 5);
  models::export_hf_llama(model, tmp.path.string(), torch::kFloat32, 1ull << 30, kTokenizerModel);
  EXPECT_EQ(read(tmp / "tokenizer.model"), read(kTokenizerModel));
  EXPECT_EQ(nlohmann::json::parse(read(tmp / "tokenizer_config.json"))["tokenizer_class"], "LlamaTokenizer");
  EXPECT_EQ(nlohmann::json::parse(read(tmp / "special_tokens_map.json"))["bos_token"], "<s>");
}

TEST(LlamaWeights, PickleDirectoriesAreRefusedWithTheConversionScript) {
  TempDir tmp("llama_pickle");
  write(tmp / "config.json", models::hf_llama_config_json(tiny_llama_config(), torch::kFloat16));
  write(tmp / "pytorch_model-00001-of-00002.bin", "PK");
  write(tmp / "pytorch_model.bin.index.json", "{}");
  auto msg = error_of([&] { models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU); });
  EXPECT_NE(msg.find("scripts/convert_to_safetensors.py"), std::string::npos) << msg;
  EXPECT_NE(msg.find(tmp.path.string()), std::string::npos) << msg;
  msg = error_of([&] { models::load_llama(tmp / "pytorch_model-00001-of-00002.bin", torch::kFloat32, torch::kCPU); });
  EXPECT_NE(msg.find("scripts/convert_to_safetensors.py"), std::string::npos) << msg;
}

TEST(LlamaWeights, MissingExtraAndMisshapenTensorsAreNamed) {
  TempDir tmp("llama_errors");
  auto model = random_llama(tiny_llama_config(), 6);
  models::export_hf_llama(model, tmp.path.string(), torch::kFloat32, 1ull << 30, "");
  const auto file_path = tmp / "model.safetensors";
  safetensors::NamedTensors original;
  {
    auto file = safetensors::File::open(file_path);
    for (const auto& t : file.tensors()) original.emplace_back(t.name, file.get(t.name).clone());
  }
  auto rewrite = [&](const std::string& drop, const std::string& reshape, const std::string& add) {
    safetensors::NamedTensors tensors;
    for (const auto& [name, t] : original) {
      if (name == drop) continue;
      tensors.emplace_back(name, name == reshape ? t.narrow(0, 0, t.size(0) - 1) : t);
    }
    if (!add.empty()) tensors.emplace_back(add, torch::zeros({3}));
    safetensors::save(file_path, tensors);
  };
  auto load = [&] { models::load_llama(tmp.path.string(), torch::kFloat32, torch::kCPU); };

  rewrite("model.layers.1.mlp.up_proj.weight", "", "");
  auto msg = error_of(load);
  EXPECT_NE(msg.find("'model.layers.1.mlp.up_proj.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(tmp.path.string()), std::string::npos) << msg;

  rewrite("", "model.layers.0.self_attn.k_proj.weight", "");
  msg = error_of(load);
  EXPECT_NE(msg.find("'model.layers.0.self_attn.k_proj.weight'"), std::string::npos) << msg;
  EXPECT_NE(msg.find(file_path), std::string::npos) << msg;
  EXPECT_NE(msg.find("[15, 32]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[16, 32]"), std::string::npos) << msg;

  rewrite("", "", "model.layers.0.self_attn.q_proj.lora_A.weight");
  msg = error_of(load);
  EXPECT_NE(msg.find("'model.layers.0.self_attn.q_proj.lora_A.weight'"), std::string::npos) << msg;

  fs::remove(tmp / "config.json");
  msg = error_of(load);
  EXPECT_NE(msg.find("config.json"), std::string::npos) << msg;
  fs::remove(file_path);
  msg = error_of(load);
  EXPECT_NE(msg.find("neither model.safetensors nor model.safetensors.index.json"), std::string::npos) << msg;
}

// What scripts/gpu/check_llama_export.py compares with transformers: $PATHVLM_LLAMA_EXPORT_CHECK_DIR (a temporary
// directory when unset) gets fp32/ (one file) and bf16_sharded/ exports of a tiny model with the LLaMA-2
// tokenizer, and reference.safetensors: the text's token ids and our fp32 logits of each export.
TEST(LlamaWeights, ExportForTransformersCheck) {
  const char* requested = std::getenv("PATHVLM_LLAMA_EXPORT_CHECK_DIR");
  TempDir tmp("llama_transformers");
  const std::string dir = requested ? std::string(requested) : tmp.path.string();
  auto config = tiny_llama_config();
  config.vocab_size = 32000;
  auto model = random_llama(config, 8);
  models::export_hf_llama(model, dir + "/fp32", torch::kFloat32, 1ull << 30, kTokenizerModel);
  models::export_hf_llama(model, dir + "/bf16_sharded", torch::kBFloat16, 1ull << 20, kTokenizerModel);
  EXPECT_TRUE(fs::exists(dir + "/bf16_sharded/model.safetensors.index.json"));
  // The same weights with linear rope scaling (Vicuna v1.5-16k's factor): transformers must scale as we do.
  auto scaled_config = config;
  scaled_config.rope_scaling = {"linear", 4.0};
  auto scaled = random_llama(scaled_config, 8);
  models::export_hf_llama(scaled, dir + "/fp32_linear_rope", torch::kFloat32, 1ull << 30, kTokenizerModel);
  // And LLaMA-3.1's scaling (an original context short enough that the tiny head's frequencies fall in all three
  // of its bands).
  auto llama3_config = config;
  llama3_config.rope_scaling = {"llama3", 8.0, 1.0, 4.0, 64};
  auto llama3 = random_llama(llama3_config, 8);
  models::export_hf_llama(llama3, dir + "/fp32_llama3_rope", torch::kFloat32, 1ull << 30, kTokenizerModel);
  // And as a Mistral (v0.1's 4096-token window): transformers must load it as MistralForCausalLM, same logits.
  auto mistral_config = config;
  mistral_config.model_type = "mistral";
  mistral_config.sliding_window = 4096;
  auto mistral = random_llama(mistral_config, 8);
  models::export_hf_llama(mistral, dir + "/fp32_mistral", torch::kFloat32, 1ull << 30, kTokenizerModel);
  // And as a Qwen2 (biases on q/k/v): transformers must load it as Qwen2ForCausalLM with the biases applied.
  auto qwen2_config = config;
  qwen2_config.model_type = "qwen2";
  qwen2_config.qkv_bias = true;
  auto qwen2 = random_llama(qwen2_config, 8);
  models::export_hf_llama(qwen2, dir + "/fp32_qwen2", torch::kFloat32, 1ull << 30, kTokenizerModel);
  // And as a Qwen3 (q and k normalised per head): transformers must load it as Qwen3ForCausalLM with the norms.
  auto qwen3_config = config;
  qwen3_config.model_type = "qwen3";
  qwen3_config.qk_norm = true;
  auto qwen3 = random_llama(qwen3_config, 8);
  models::export_hf_llama(qwen3, dir + "/fp32_qwen3", torch::kFloat32, 1ull << 30, kTokenizerModel);

  const std::string text = "The slide shows <s> invasive ductal carcinoma.";
  auto token_ids = text::SentencePieceTokenizer(kTokenizerModel).encode(text);
  auto input_ids = torch::tensor(token_ids, torch::kInt64).unsqueeze(0);
  torch::NoGradGuard no_grad;
  auto fp32 = models::load_llama(dir + "/fp32", torch::kFloat32, torch::kCPU)->forward(input_ids);
  auto bf16 = models::load_llama(dir + "/bf16_sharded", torch::kFloat32, torch::kCPU)->forward(input_ids);
  EXPECT_TRUE(torch::equal(fp32, model->forward(input_ids)));
  EXPECT_GT((fp32 - bf16).abs().max().item<double>(), 0.0);  // the bf16 weights are rounded
  auto linear_rope = models::load_llama(dir + "/fp32_linear_rope", torch::kFloat32, torch::kCPU)->forward(input_ids);
  EXPECT_TRUE(torch::equal(linear_rope, scaled->forward(input_ids)));
  EXPECT_GT((linear_rope - fp32).abs().max().item<double>(), 1e-3);  // the scaling moves the logits
  auto llama3_rope = models::load_llama(dir + "/fp32_llama3_rope", torch::kFloat32, torch::kCPU)->forward(input_ids);
  EXPECT_TRUE(torch::equal(llama3_rope, llama3->forward(input_ids)));
  EXPECT_GT((llama3_rope - fp32).abs().max().item<double>(), 1e-3);
  auto mistral_loaded = models::load_llama(dir + "/fp32_mistral", torch::kFloat32, torch::kCPU);
  EXPECT_EQ(mistral_loaded->config().model_type, "mistral");
  EXPECT_EQ(mistral_loaded->config().sliding_window, 4096);
  EXPECT_TRUE(torch::equal(mistral_loaded->forward(input_ids), fp32));  // the same layers as LLaMA
  auto qwen2_loaded = models::load_llama(dir + "/fp32_qwen2", torch::kFloat32, torch::kCPU);
  EXPECT_EQ(qwen2_loaded->config().model_type, "qwen2");
  EXPECT_TRUE(qwen2_loaded->config().qkv_bias);
  const auto qwen2_logits = qwen2_loaded->forward(input_ids);
  EXPECT_TRUE(torch::equal(qwen2_logits, qwen2->forward(input_ids)));
  EXPECT_GT((qwen2_logits - fp32).abs().max().item<double>(), 1e-3);  // the biases move the logits
  auto qwen3_loaded = models::load_llama(dir + "/fp32_qwen3", torch::kFloat32, torch::kCPU);
  EXPECT_TRUE(qwen3_loaded->config().qk_norm);
  const auto qwen3_logits = qwen3_loaded->forward(input_ids);
  EXPECT_TRUE(torch::equal(qwen3_logits, qwen3->forward(input_ids)));
  EXPECT_GT((qwen3_logits - fp32).abs().max().item<double>(), 1e-3);  // the norms move the logits
  safetensors::save(dir + "/reference.safetensors",
                    {{"input_ids", input_ids},
                     {"logits_fp32", fp32},
                     {"logits_bf16_sharded", bf16},
                     {"logits_fp32_linear_rope", linear_rope},
                     {"logits_fp32_llama3_rope", llama3_rope},
                     {"logits_fp32_mistral", fp32},
                     {"logits_fp32_qwen2", qwen2_logits},
                     {"logits_fp32_qwen3", qwen3_logits}},
                    {{"text", text}});
}
