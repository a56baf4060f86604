// HF CLIP tokenizer directories that lie or lack a file are refused, naming the file and the problem: no
// merges.txt, no vocab.json, garbage in either, or a vocab.json whose ids do not match its merges.txt.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "test_util.h"
#include "text/clip_tokenizer.h"

using namespace pathvlm;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;
using text::ClipTokenizer;
namespace fs = std::filesystem;

namespace {

const std::string kVocab = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";

void expect_parts(const std::string& message, std::initializer_list<std::string> parts) {
  for (const auto& part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "lacks \"" << part << "\": " << message;
}

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

TEST(ClipTokenizerFiles, HfDirectoryMustHoldBothFilesAndTheyMustAgree) {
  ASSERT_TRUE(fs::exists(kVocab)) << "shared test data missing: " << kVocab;
  TempDir dir("clip_tok_files");
  const ClipTokenizer reference(kVocab);
  fs::create_directories(dir / "good");
  reference.save_hf(dir / "good");
  const std::string vocab_json = read(dir / "good/vocab.json"), merges = read(dir / "good/merges.txt");
  // The saved directory reads back to the same tokenizer.
  EXPECT_EQ(ClipTokenizer(dir / "good").encode("an H&E tile"), reference.encode("an H&E tile"));

  auto variant = [&](const std::string& name, const std::string* vocab, const std::string* merge_text) {
    fs::create_directories(dir / name);
    if (vocab) std::ofstream(dir / (name + "/vocab.json")) << *vocab;
    if (merge_text) std::ofstream(dir / (name + "/merges.txt")) << *merge_text;
    return error_of([&] { ClipTokenizer tok(dir / name); });
  };
  expect_parts(variant("no_merges", &vocab_json, nullptr),
               {"CLIP tokenizer directory '", "no_merges' has no merges.txt"});
  expect_parts(variant("no_vocab", nullptr, &merges), {"no_vocab' has no vocab.json"});
  const std::string garbage = "\x1f\x8b garbage {";
  expect_parts(variant("garbage_vocab", &garbage, &merges), {"garbage_vocab/vocab.json': not valid JSON"});
  const std::string array = "[1, 2]";
  expect_parts(variant("array_vocab", &array, &merges), {"vocab.json': expected a JSON object", "array"});
  expect_parts(variant("garbage_merges", &vocab_json, &garbage), {"garbage_merges/merges.txt'"});
  const std::string short_merges = merges.substr(0, merges.size() / 2);
  expect_parts(variant("short_merges", &vocab_json, &short_merges),
               {"short_merges/merges.txt'", "merges, expected 48894"});

  auto json = nlohmann::json::parse(vocab_json);
  auto edited = json;
  std::swap(edited["a</w>"], edited["b</w>"]);
  const std::string swapped = edited.dump();
  expect_parts(variant("swapped_ids", &swapped, &merges), {"swapped_ids/vocab.json': token '", "' has id ",
                                                           "merges.txt beside it gives it", "do not belong together"});
  edited = json;
  edited.erase("a</w>");
  const std::string missing = edited.dump();
  expect_parts(variant("missing_token", &missing, &merges), {"has 49407 tokens, merges.txt beside it makes 49408"});
  edited = json;
  edited.erase("a</w>");
  edited["not-a-clip-token"] = 300;
  const std::string foreign = edited.dump();
  expect_parts(variant("foreign_token", &foreign, &merges), {"token 'not-a-clip-token' is not made by merges.txt"});
  edited = json;
  edited["a</w>"] = "300";
  const std::string string_id = edited.dump();
  expect_parts(variant("string_id", &string_id, &merges), {"token 'a</w>' has id \"300\", not an integer"});

  // A model directory without the pair says which file is missing.
  fs::create_directories(dir / "model");
  std::ofstream(dir / "model/vocab.json") << vocab_json;
  expect_parts(error_of([&] { text::clip_vocab_source("", dir / "model", "set clip.vocab"); }),
               {"set clip.vocab", "model' has no merges.txt)"});
}
