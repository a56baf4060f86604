// SentencePiece tokenizer: ids and decoded text identical to python `sentencepiece` on LLaMA-2's tokenizer.model
// for a few hundred generated texts (plus LlamaTokenizer's BOS), LlamaTokenizer's legacy rule for special-token
// strings, decoding with and without special tokens, locate/load errors, save_hf, and the small trainer.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "test_util.h"
#include "text/bpe_tokenizer.h"
#include "text/peers_util.h"
#include "text/sentencepiece_json.h"
#include "text/sentencepiece_tokenizer.h"

using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;
using pathvlm::text::locate_tokenizer;
using pathvlm::text::SentencePieceTokenizer;
using pathvlm::text::train_sentencepiece;
namespace fs = std::filesystem;

namespace {

const std::string kLlamaModel = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";
const std::string kPython = "/usr/bin/python3";

#define SKIP_WITHOUT_LLAMA_MODEL()                                                              \
  if (!fs::exists(kLlamaModel))                                                                 \
  GTEST_SKIP() << "shared test data missing: " << kLlamaModel << " (see ../shared/data/README.md)"


std::string read_bytes(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const SentencePieceTokenizer& llama() {
  static SentencePieceTokenizer tok(kLlamaModel);
  return tok;
}

// SentencePiece writes spaces as "▁" inside pieces, so a "▁" in the text decodes as a space.
std::string with_spaces_for_meta_symbol(std::string text) {
  const std::string meta = "\u2581";
  for (auto at = text.find(meta); at != std::string::npos; at = text.find(meta, at + 1)) {
    text.replace(at, meta.size(), " ");
  }
  return text;
}

std::vector<int64_t> with_bos(std::vector<int64_t> ids) {
  ids.insert(ids.begin(), 1);
  return ids;
}

// Varied texts from a fixed seed: pathology wording, numbers, punctuation, accents, CJK, emoji, other scripts,
// runs of spaces, tabs and newlines at the start, middle and end; plus fixed edge cases and long texts.
std::vector<std::string> generated_texts() {
  const std::vector<std::string> words = {
      "tumor", "carcinoma", "H&E", "mitotic", "nuclei", "adenocarcinoma", "lymphocytes", "stroma", "necrosis",
      "Gleason", "pleomorphism", "eosinophilic", "The", "biopsy", "shows", "well-differentiated", "glands", "of",
      "IHC", "Ki-67", "HER2+", "CD3/CD20", "margin", "invasive", "ductal", "x40", "WSI", "slide", "patch",
      "3.5", "1,024", "2023", "42%", "0.001", "12mm", "7", "1e-3", "-15", "#5", "(pT2N0)", "\"quoted\"",
      "it's", "don't", "e.g.", "...", "!!", "?", ";", ":", "--", "[x]", "{y}", "a/b", "\\", "@home", "~", "`",
      "café", "naïve", "Größe", "señal", "résumé", "e\u0301", "µm", "α-SMA", "β-catenin", "Ωμ", "×", "±", "°C",
      "病理", "腫瘍", "你好", "細胞", "한국어", "русский", "עברית", "العربية", "ไทย", "😀", "🔬", "👩‍⚕️", "🇯🇵",
      "▁", "\u00a0", "\u200b"};
  const std::vector<std::string> separators = {" ", " ", " ", " ", "  ", "   ", "\t", "\n", " \n", "\r\n", ", ", ""};
  std::mt19937 rng(20261204);
  auto pick = [&](const std::vector<std::string>& from) { return from[rng() % from.size()]; };
  std::vector<std::string> texts = {"", " ", "  ", "\n", "\t", "\n\n", " \t\n ", "a", "Hello world", " Hello",
                                    "Hello ", "  Hello  world  ", "tumor\n", "\ttumor", "1234567890", "3.14159",
                                    "🔬🔬🔬", "病理医", "ÀÉÎÕÜ àéîõü", "<", ">", "<>", "<s", "s>", "</", "< s>",
                                    "<S>", "<unk", "unk>", "</S>"};
  for (int i = 0; i < 300; ++i) {
    std::string text;
    const int leading = static_cast<int>(rng() % 6);
    if (leading == 0) text += pick(separators);
    const int count = 1 + static_cast<int>(rng() % 24);
    for (int w = 0; w < count; ++w) text += (w > 0 ? pick(separators) : "") + pick(words);
    if (rng() % 5 == 0) text += pick(separators);
    if (rng() % 3 == 0) text += ".";
    texts.push_back(text);
  }
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += pick(words) + pick(separators);
  texts.push_back(long_text);
  std::string report;
  for (int i = 0; i < 40; ++i) {
    report += "Sections show invasive ductal carcinoma, grade " + std::to_string(i % 3 + 1) + ".\n";
  }
  texts.push_back(report);
  texts.push_back(std::string(3000, ' ') + "end");
  return texts;
}

// Runs python `sentencepiece` on `texts` (one JSON string a line in, {"ids", "text"} a line out). Fails the
// test when python3 or its sentencepiece module is missing: scripts/setup.sh installs python3-sentencepiece.
std::vector<nlohmann::json> python_sentencepiece(const std::string& model, const std::vector<std::string>& texts,
                                                 const fs::path& scratch) {
  if (!fs::exists(kPython)) {
    ADD_FAILURE() << kPython << " not found: the reference check needs python3 with python3-sentencepiece "
                  << "(scripts/setup.sh installs it)";
    return {};
  }
  {
    std::ofstream script(scratch / "reference.py");
    script << "import json, sys\n"
              "import sentencepiece\n"
              "sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])\n"
              "with open(sys.argv[2], encoding='utf-8') as texts:\n"
              "    for line in texts:\n"
              "        ids = sp.encode(json.loads(line))\n"
              "        print(json.dumps({'ids': ids, 'text': sp.decode(ids)}))\n";
    std::ofstream input(scratch / "texts.jsonl");
    for (const auto& text : texts) input << nlohmann::json(text).dump() << "\n";
  }
  const auto output = scratch / "reference.jsonl", errors = scratch / "reference.err";
  const std::string command = kPython + " " + (scratch / "reference.py").string() + " " + model + " " +
                              (scratch / "texts.jsonl").string() + " > " + output.string() + " 2> " +
                              errors.string();
  const int status = std::system(command.c_str());
  if (status != 0) {
    ADD_FAILURE() << "python sentencepiece reference failed (exit " << WEXITSTATUS(status)
                  << "); python3-sentencepiece must be installed (scripts/setup.sh):\n" << read_bytes(errors);
    return {};
  }
  std::vector<nlohmann::json> records;
  std::ifstream in(output);
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

std::vector<std::string> training_texts() {
  std::vector<std::string> texts;
  const std::vector<std::string> findings = {"benign colonic mucosa", "invasive ductal carcinoma", "tubular adenoma",
                                             "lymph node with metastatic carcinoma", "chronic gastritis",
                                             "squamous cell carcinoma in situ"};
  for (int i = 0; i < 120; ++i) {
    texts.push_back("Slide " + std::to_string(i) + ": " + findings[i % findings.size()] + ", grade " +
                    std::to_string(i % 3 + 1) + ". Margins " + (i % 2 ? "clear" : "involved") + ".");
  }
  texts.push_back("Größe 12 µm; Zellkerne vergrößert. 病理 診断");
  return texts;
}

// tokenizer_config.json's entry for an added token.
nlohmann::json added_token(const std::string& content, bool special) {
  return {{"content", content}, {"lstrip", false},        {"normalized", false},
          {"rstrip", false},    {"single_word", false}, {"special", special}};
}

// A 400-piece model in `dir` with control pieces as Mistral v0.3's ([INST] = 3, [/INST] = 4); `config` (when not
// null) its tokenizer_config.json.
std::string control_model(const fs::path& dir, const nlohmann::json& config = nullptr) {
  fs::create_directories(dir);
  const auto model = (dir / "tokenizer.model").string();
  train_sentencepiece(training_texts(), 400, model, {"[INST]", "[/INST]"});
  if (!config.is_null()) std::ofstream(dir / "tokenizer_config.json") << config.dump(2);
  return model;
}

// What llava-hf's tokenizer_config.json adds to its model of `pieces` pieces: <image> and <pad> after them (<pad>
// special or not), and the control pieces listed as Mistral v0.3's are.
nlohmann::json llava_added_tokens(int64_t pieces, bool pad_special, bool legacy = true) {
  nlohmann::json decoder = {{"0", added_token("<unk>", true)},
                            {"1", added_token("<s>", true)},
                            {"2", added_token("</s>", true)},
                            {"3", added_token("[INST]", true)},
                            {"4", added_token("[/INST]", true)}};
  decoder[std::to_string(pieces)] = added_token("<image>", true);
  decoder[std::to_string(pieces + 1)] = added_token("<pad>", pad_special);
  return {{"legacy", legacy}, {"added_tokens_decoder", decoder}};
}

// Texts around the added tokens of llava_added_tokens (plain text for other models).
const std::vector<std::string> kAddedTokenTexts = {
    "[INST] What is shown? [/INST] A tumor.</s>[INST] Grade? [/INST]", "[INST][/INST]", "[[INST]]", "[INST",
    "<image>\nDescribe the slide.", "x<pad><pad>y", " <image> ", "<image><s>[INST]<pad>", "[/INST] </s> [INST]"};

// A tokenizer's special tokens, id -> string.
std::map<int32_t, std::string> specials_of(const pathvlm::text::Tokenizer& tok) {
  std::map<int32_t, std::string> out;
  for (const auto& t : tok.special_tokens().tokens()) out[t.id] = t.content;
  return out;
}

std::vector<int64_t> concat(std::initializer_list<std::vector<int64_t>> parts) {
  std::vector<int64_t> out;
  for (const auto& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

}  // namespace

TEST(SentencePieceTokenizer, MatchesPythonSentencePieceOnGeneratedTexts) {
  SKIP_WITHOUT_LLAMA_MODEL();
  TempDir dir("sptok_reference");
  const auto texts = generated_texts();
  ASSERT_GE(texts.size(), 300u);
  for (const auto& text : texts) {
    for (const char* special : {"<s>", "</s>", "<unk>"}) {
      ASSERT_EQ(text.find(special), std::string::npos) << "generated text holds a special string: " << text;
    }
  }
  const auto reference = python_sentencepiece(kLlamaModel, texts, dir.path);
  ASSERT_EQ(reference.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto expected = reference[i]["ids"].get<std::vector<int64_t>>();
    EXPECT_EQ(llama().encode(texts[i]), with_bos(expected)) << "text " << i << ": " << nlohmann::json(texts[i]);
    EXPECT_EQ(llama().encode(texts[i], /*add_bos=*/false), expected) << "text " << i;
    EXPECT_EQ(llama().decode(expected), reference[i]["text"].get<std::string>()) << "text " << i;
    EXPECT_EQ(llama().decode(with_bos(expected)), with_spaces_for_meta_symbol(texts[i])) << "text " << i;
  }
}

TEST(SentencePieceTokenizer, LlamaLayout) {
  SKIP_WITHOUT_LLAMA_MODEL();
  EXPECT_EQ(llama().vocab_size(), 32000);
  EXPECT_EQ(llama().unk_id(), 0);
  EXPECT_EQ(llama().bos_id(), 1);
  EXPECT_EQ(llama().eos_id(), 2);
  EXPECT_EQ(llama().id_to_piece(0), "<unk>");
  EXPECT_EQ(llama().id_to_piece(1), "<s>");
  EXPECT_EQ(llama().id_to_piece(2), "</s>");
  EXPECT_EQ(llama().id_to_piece(13), "<0x0A>");
  EXPECT_EQ(llama().id_to_piece(15043), "\u2581Hello");
  EXPECT_EQ(llama().encode("Hello world"), (std::vector<int64_t>{1, 15043, 3186}));
  EXPECT_EQ(llama().encode(""), (std::vector<int64_t>{1}));
  EXPECT_TRUE(llama().encode("", /*add_bos=*/false).empty());
  EXPECT_NE(error_of([] { llama().id_to_piece(32000); }).find("32000"), std::string::npos);
}

// LlamaTokenizer (legacy): special strings become their ids, nothing around them is stripped, and each run of
// text between them is encoded as a text of its own (so it starts with the dummy-prefix space).
TEST(SentencePieceTokenizer, SpecialTokenStringsFollowTheLegacyRule) {
  SKIP_WITHOUT_LLAMA_MODEL();
  using Ids = std::vector<int64_t>;
  // transformers' own example for legacy = true: 869 is "▁." (legacy = false would give 29889, ".").
  EXPECT_EQ(llama().encode("Hello <s>."), (Ids{1, 15043, 29871, 1, 869}));
  EXPECT_EQ(llama().encode("</s>"), (Ids{1, 2}));
  EXPECT_EQ(llama().encode("<s>"), (Ids{1, 1}));
  EXPECT_EQ(llama().encode("<unk>"), (Ids{1, 0}));
  EXPECT_EQ(llama().encode("<s>Hello"), (Ids{1, 1, 15043}));
  EXPECT_EQ(llama().encode("Hello</s>"), (Ids{1, 15043, 2}));
  EXPECT_EQ(llama().encode("a</s></s>b"), (Ids{1, 263, 2, 2, 289}));
  EXPECT_EQ(llama().encode("<s></s><unk>"), (Ids{1, 1, 2, 0}));
  EXPECT_EQ(llama().encode("x </s> y"), (Ids{1, 921, 29871, 2, 29871, 343}));
  EXPECT_EQ(llama().encode("</s> </s>"), (Ids{1, 2, 259, 2}));
  EXPECT_EQ(llama().encode("<</s>>"), (Ids{1, 529, 2, 1405}));
  EXPECT_EQ(llama().encode("USER: hi ASSISTANT: ok</s>USER: more", /*add_bos=*/false),
            (Ids{3148, 1001, 29901, 7251, 319, 1799, 9047, 13566, 29901, 3431, 2, 3148, 1001, 29901, 901}));
  // Near misses are ordinary text.
  EXPECT_EQ(llama().encode("<s/> < s> <S>", /*add_bos=*/false),
            (Ids{529, 29879, 3779, 529, 269, 29958, 529, 29903, 29958}));
}

TEST(SentencePieceTokenizer, DecodeSkipsOrWritesSpecialTokensLikeLlamaTokenizer) {
  SKIP_WITHOUT_LLAMA_MODEL();
  EXPECT_EQ(llama().decode({1, 15043, 3186, 2}), "Hello world");
  EXPECT_EQ(llama().decode({15043, 3186}), "Hello world");  // generated ids: no BOS, no leading space
  EXPECT_EQ(llama().decode({3186}), "world");
  EXPECT_EQ(llama().decode({29871, 13, 15043}), "\n Hello");
  EXPECT_EQ(llama().decode({}), "");
  EXPECT_EQ(llama().decode({0, 15043, 0}), "Hello");
  EXPECT_EQ(llama().decode({1, 15043, 3186, 2}, /*skip_special=*/false), "<s> Hello world</s>");
  EXPECT_EQ(llama().decode({1, 15043, 2, 3186}, /*skip_special=*/false), "<s> Hello</s>world");
  EXPECT_EQ(llama().decode({0, 15043}, /*skip_special=*/false), "<unk>Hello");
  EXPECT_EQ(llama().decode({1, 2, 1}, /*skip_special=*/false), "<s></s><s>");
  // A chat turn: the text after </s> was encoded with its own dummy-prefix space (the legacy rule), which
  // decodes as a space; kept special tokens get LlamaTokenizer's space before them.
  const std::string chat = "USER: what is shown? ASSISTANT: tumor</s>USER: grade? ASSISTANT: 2</s>";
  EXPECT_EQ(llama().decode(llama().encode(chat)), "USER: what is shown? ASSISTANT: tumor USER: grade? ASSISTANT: 2");
  EXPECT_EQ(llama().decode(llama().encode(chat, false), false),
            " USER: what is shown? ASSISTANT: tumor</s> USER: grade? ASSISTANT: 2</s>");
  const auto message = error_of([] { llama().decode({15043, -1}); });
  EXPECT_NE(message.find(kLlamaModel), std::string::npos) << message;
  EXPECT_NE(message.find("-1"), std::string::npos) << message;
  EXPECT_NE(error_of([] { llama().decode({32000}); }).find("outside the vocabulary"), std::string::npos);
}

TEST(SentencePieceTokenizer, LocateAndLoadErrorsNameThePath) {
  TempDir dir("sptok_locate");
  const auto model = dir.path / "tokenizer.model";
  std::ofstream(model) << "x";
  EXPECT_EQ(locate_tokenizer(dir.path.string()), model.string());
  EXPECT_EQ(locate_tokenizer(model.string()), model.string());
  // Beside a tokenizer.json the tokenizer.model is read (LLaVA pins the slow LlamaTokenizer).
  std::ofstream(dir.path / "tokenizer.json") << "{}";
  EXPECT_EQ(locate_tokenizer(dir.path.string()), model.string());

  const auto empty = dir.path / "empty";
  fs::create_directories(empty);
  auto message = error_of([&] { locate_tokenizer(empty.string()); });
  EXPECT_NE(message.find(empty.string()), std::string::npos) << message;
  EXPECT_NE(message.find("tokenizer.model"), std::string::npos) << message;
  const auto missing = (dir.path / "missing.model").string();
  message = error_of([&] { locate_tokenizer(missing); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;
  message = error_of([&] { SentencePieceTokenizer tok(missing); });
  EXPECT_NE(message.find(missing), std::string::npos) << message;

  const auto garbage = dir.path / "garbage.model";
  std::ofstream(garbage, std::ios::binary) << std::string("\x0a\xff\xff\xffnot a model at all\x01\x02", 24);
  message = error_of([&] { SentencePieceTokenizer tok(garbage.string()); });
  EXPECT_NE(message.find(garbage.string()), std::string::npos) << message;
  EXPECT_NE(message.find("not a SentencePiece model"), std::string::npos) << message;
  message = error_of([&] { SentencePieceTokenizer tok(model.string()); });
  EXPECT_NE(message.find(model.string()), std::string::npos) << message;
}

TEST(SentencePieceTokenizer, SaveHfWritesLlamaTokenizerFiles) {
  SKIP_WITHOUT_LLAMA_MODEL();
  TempDir dir("sptok_save_hf");
  const auto out = dir.path / "hf";
  llama().save_hf(out.string());
  EXPECT_EQ(read_bytes(out / "tokenizer.model"), read_bytes(kLlamaModel));
  const auto config = nlohmann::json::parse(read_bytes(out / "tokenizer_config.json"));
  EXPECT_EQ(config.at("tokenizer_class"), "LlamaTokenizer");
  EXPECT_EQ(config.at("add_bos_token"), true);
  EXPECT_EQ(config.at("add_eos_token"), false);
  EXPECT_EQ(config.at("legacy"), true);
  EXPECT_EQ(config.at("bos_token"), "<s>");
  EXPECT_EQ(config.at("eos_token"), "</s>");
  EXPECT_EQ(config.at("unk_token"), "<unk>");
  EXPECT_TRUE(config.at("pad_token").is_null());
  EXPECT_EQ(config.at("clean_up_tokenization_spaces"), false);
  const auto special = nlohmann::json::parse(read_bytes(out / "special_tokens_map.json"));
  EXPECT_EQ(special, (nlohmann::json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"unk_token", "<unk>"}}));
  // tokenizer.json in the form of LLaMA-2's own: a byte-fallback BPE, its merges ordered by the pieces' scores.
  const auto json = nlohmann::json::parse(read_bytes(out / "tokenizer.json"));
  const auto& model = json.at("model");
  EXPECT_EQ(model.at("type"), "BPE");
  EXPECT_EQ(model.at("byte_fallback"), true);
  EXPECT_EQ(model.at("unk_token"), "<unk>");
  EXPECT_EQ(model.at("vocab").size(), 32000u);
  EXPECT_EQ(model.at("vocab").at("\u2581Hello"), 15043);
  EXPECT_EQ(model.at("merges").at(0), "\u2581 t");
  EXPECT_EQ(json.at("normalizer").at("normalizers").at(0).at("type"), "Prepend");
  EXPECT_EQ(json.at("post_processor").at("single").at(0).at("SpecialToken").at("id"), "<s>");
  EXPECT_EQ(json.at("added_tokens").size(), 3u);  // <unk>, <s>, </s>
  std::ofstream(dir.path / "damaged.model") << std::string(16, '\xff');
  EXPECT_NE(error_of([&] { pathvlm::text::sentencepiece_tokenizer_json((dir.path / "damaged.model").string(), 1); })
                .find("damaged.model"),
            std::string::npos);

  // The saved directory loads back, and saving onto itself keeps the file.
  SentencePieceTokenizer again(locate_tokenizer(out.string()));
  EXPECT_EQ(again.encode("Hello <s>."), llama().encode("Hello <s>."));
  again.save_hf(out.string());
  EXPECT_EQ(read_bytes(out / "tokenizer.model"), read_bytes(kLlamaModel));
}

// The tokenizer.json save_hf writes beside the model (what transformers 5 reads first), run by the real tokenizers
// library, gives the model's own ids and decodes, LlamaTokenizer's legacy rule around special tokens included: for
// LLaMA-2's model, for one train_sentencepiece makes (the demo's kind), and for one with control pieces and added
// tokens after its pieces (Mistral v0.3's and llava-hf's kinds), legacy or not.
TEST(SentencePieceTokenizerPeers, ItsTokenizerJsonTokenizesAsTheModelInTheTokenizersLibrary) {
  SKIP_WITHOUT_LLAMA_MODEL();
  SKIP_WITHOUT_PEERS();
  TempDir dir("sptok_json");
  auto texts = generated_texts();
  for (const char* special : {"Hello <s>.", "</s> </s>", "x </s> y", "<</s>>", "a</s></s>b", "<s></s><unk>",
                              "USER: hi ASSISTANT: ok</s>USER: more", " leading", "trailing  ", "\n\nnew\tlines\n"})
    texts.push_back(special);
  texts.insert(texts.end(), kAddedTokenTexts.begin(), kAddedTokenTexts.end());
  const auto trained = (dir.path / "trained.model").string();
  train_sentencepiece(training_texts(), 400, trained);
  const auto added = control_model(dir.path / "added", llava_added_tokens(400, /*pad_special=*/true));
  const auto added_non_legacy =
      control_model(dir.path / "added_non_legacy", llava_added_tokens(400, /*pad_special=*/true, /*legacy=*/false));
  for (const auto& model : {kLlamaModel, trained, added, added_non_legacy}) {
    SCOPED_TRACE(model);
    const SentencePieceTokenizer tok(model);
    const auto out = dir.path / (fs::path(model).parent_path().filename().string() + "_out");
    tok.save_hf(out.string());
    const auto file = (out / "tokenizer.json").string();
    ASSERT_TRUE(fs::exists(file));
    std::vector<nlohmann::json> records;
    for (const auto& text : texts) records.push_back({{"text", text}});
    // Random ids, byte pieces left out: the library's ByteFallback decoder writes a U+FFFD for every byte of a run
    // that is not UTF-8, valid ASCII bytes in it included, where SentencePiece keeps those (so does transformers'
    // fast LLaMA tokenizer: a difference of the library, not of the conversion).
    std::mt19937 rng(static_cast<uint32_t>(pathvlm::testing::test_seed(11)));
    for (int i = 0; i < 50; ++i) {
      std::vector<int64_t> ids;
      while (ids.size() < 12) {
        const auto id = std::uniform_int_distribution<int64_t>(0, tok.vocab_size() - 1)(rng);
        if (tok.id_to_piece(id).rfind("<0x", 0) != 0) ids.push_back(id);
      }
      records.push_back({{"ids", ids}});
    }
    const auto library = pathvlm::testing::run_node_reference("hf_tokenizers_reference.js", file, records);
    ASSERT_EQ(library.size(), records.size());
    for (size_t i = 0; i < records.size(); ++i) {
      const bool text = records[i].contains("text");
      const auto ids = text ? tok.encode(texts[i], /*add_bos=*/false) : records[i]["ids"].get<std::vector<int64_t>>();
      // transformers' slow and fast tokenizers differ themselves before a non-legacy text that starts with a space
      // or a "▁" (SentencePieceTokenizer.NonLegacyMatchesLlamaTokenizerWithoutTheDummyPrefix).
      const bool differ_in_transformers =
          !tok.legacy() && text && (texts[i].rfind(' ', 0) == 0 || texts[i].rfind("\u2581", 0) == 0);
      if (differ_in_transformers) continue;
      if (text) {
        EXPECT_EQ(library[i]["ids"].get<std::vector<int64_t>>(), ids) << nlohmann::json(texts[i]);
      }
      EXPECT_EQ(library[i]["decode_skip"].get<std::string>(), tok.decode(ids)) << records[i].dump();
    }
  }
}

// The tokenizer.json save_hf writes, read alone (as from a directory transformers 5 saved, which holds no
// tokenizer.model), is the same tokenizer as the model: ids with BOS, continuations, decodes, the special tokens;
// for LLaMA-2's model, a trained one, and one with control pieces and added tokens (llava-hf's kind).
TEST(SentencePieceTokenizer, ItsTokenizerJsonReadAloneIsTheSameTokenizer) {
  SKIP_WITHOUT_LLAMA_MODEL();
  TempDir dir("sptok_json_alone");
  const auto trained = (dir.path / "trained.model").string();
  train_sentencepiece(training_texts(), 400, trained);
  auto texts = generated_texts();
  for (const char* special : {"Hello <s>.", "</s> </s>", "x </s> y", "<</s>>", "a</s></s>b", "<s></s><unk>",
                              "USER: hi ASSISTANT: ok</s>USER: more"})
    texts.push_back(special);
  texts.insert(texts.end(), kAddedTokenTexts.begin(), kAddedTokenTexts.end());
  const auto added = control_model(dir.path / "added", llava_added_tokens(400, /*pad_special=*/true));
  for (const auto& model : {kLlamaModel, trained, added}) {
    SCOPED_TRACE(model);
    const SentencePieceTokenizer sp(model);
    const auto out = dir.path / (fs::path(model).parent_path().filename().string() + "_out");
    sp.save_hf(out.string());
    fs::remove(out / "tokenizer.model");
    const auto tok = pathvlm::text::open_tokenizer(out.string());
    ASSERT_EQ(tok->path(), (out / "tokenizer.json").string());
    EXPECT_EQ(tok->vocab_size(), sp.vocab_size());
    EXPECT_EQ(tok->bos_id(), sp.bos_id());
    EXPECT_EQ(tok->eos_id(), sp.eos_id());
    for (int64_t id = 0; id < sp.vocab_size(); ++id) {
      ASSERT_EQ(tok->is_special(id), sp.is_special(id)) << id;
      ASSERT_EQ(tok->id_to_piece(id), sp.id_to_piece(id)) << id;
    }
    for (const auto& text : texts) {
      const auto ids = sp.encode(text);
      ASSERT_EQ(tok->encode(text), ids) << nlohmann::json(text);
      ASSERT_EQ(tok->decode(ids), sp.decode(ids)) << nlohmann::json(text);
    }
    // A continuation starts at a space after a non-space (the join rule of text/supervised_sequence.h).
    for (const auto& [before, after] : std::vector<std::pair<std::string, std::string>>{
             {"USER: hi", " ASSISTANT:"}, {"tumor", " cells\n"}, {"病理", " 診断"}, {"x", " 🔬 3.5"}}) {
      EXPECT_EQ(tok->encode_continuation(before, after), sp.encode_continuation(before, after)) << before << after;
    }
  }
}

// tokenizer_config.json's legacy false (vicuna-7b-v1.5, LLaVA-1.5): the ids of LlamaTokenizer without the dummy
// prefix (tests/text/llava_preprocess_reference.py, python sentencepiece on the model with add_dummy_prefix off),
// special strings in the text included; the text after a special token written in it, and a continuation, encode as
// their place in the whole text; decoding skips the "▁" put before the text.
TEST(SentencePieceTokenizer, NonLegacyMatchesLlamaTokenizerWithoutTheDummyPrefix) {
  SKIP_WITHOUT_LLAMA_MODEL();
  TempDir dir("sptok_non_legacy");
  fs::copy_file(kLlamaModel, dir.path / "tokenizer.model");
  std::ofstream(dir.path / "tokenizer_config.json") << R"({"legacy": false})";
  const SentencePieceTokenizer tok((dir.path / "tokenizer.model").string());
  ASSERT_FALSE(tok.legacy());
  auto texts = generated_texts();
  for (const char* special : {"Hello <s>.", "</s> </s>", "x </s> y", "<</s>>", "a</s></s>b", "<s></s><unk>",
                              "<s>hi", "</s>USER: hi", "USER: hi ASSISTANT: ok</s>USER: more", "\u2581x \u2581 y"})
    texts.push_back(special);
  {
    std::ofstream samples(dir.path / "texts.jsonl");
    for (const auto& text : texts) samples << nlohmann::json{{"text", text}}.dump() << "\n";
  }
  std::string output;
  const int rc = pathvlm::testing::run_command(
      kPython + " " + std::string(PATHVLM_SOURCE_DIR) + "/tests/text/llava_preprocess_reference.py " + kLlamaModel +
          " " + (dir.path / "texts.jsonl").string() + " " + (dir.path / "ids.jsonl").string() + " non-legacy",
      output);
  ASSERT_EQ(rc, 0) << "the python reference needs /usr/bin/python3 with python3-sentencepiece:\n" << output;
  std::ifstream in(dir.path / "ids.jsonl");
  size_t i = 0, differing = 0;
  for (std::string line; std::getline(in, line); ++i) {
    ASSERT_LT(i, texts.size());
    const auto ids = tok.encode(texts[i]);
    EXPECT_EQ(ids, nlohmann::json::parse(line).at("input_ids").get<std::vector<int64_t>>()) << nlohmann::json(texts[i]);
    differing += ids != llama().encode(texts[i]);
    if (texts[i].find('<') == std::string::npos) {
      EXPECT_EQ(tok.decode(ids), llama().decode(ids)) << texts[i];
    }
  }
  EXPECT_EQ(i, texts.size());
  EXPECT_GT(differing, 5u) << "legacy and non-legacy should differ after special tokens";
  EXPECT_EQ(tok.encode("</s>USER"), (std::vector<int64_t>{1, 2, 11889}));  // USER whole, no "▁"
  const auto whole = tok.encode("A</s>USER: hi ASSISTANT: ok", false);
  auto parts = tok.encode("A</s>", false);
  for (const auto& more : {tok.encode_after_special("USER: hi"), tok.encode_continuation("USER: hi", " ASSISTANT: ok")})
    parts.insert(parts.end(), more.begin(), more.end());
  EXPECT_EQ(parts, whole);
  // Saved, it stays non-legacy: its tokenizer.json (transformers 5) puts "▁" at the text's start only (Metaspace,
  // prepend_scheme first) and tokenizes as the model, except where transformers' slow and fast tokenizers differ
  // themselves: before a text that starts with a space or a "▁" the slow one puts a "▁" all the same.
  tok.save_hf((dir.path / "hf").string());
  EXPECT_EQ(nlohmann::json::parse(read_bytes(dir.path / "hf/tokenizer_config.json")).at("legacy"), false);
  const auto fast_json = nlohmann::json::parse(read_bytes(dir.path / "hf/tokenizer.json"));
  EXPECT_EQ(fast_json.at("pre_tokenizer").at("prepend_scheme"), "first");
  const pathvlm::text::BpeTokenizer fast((dir.path / "hf/tokenizer.json").string());
  size_t compared = 0;
  for (const auto& text : texts) {
    if (text.empty() || text[0] == ' ' || text.rfind("\u2581", 0) == 0) continue;
    EXPECT_EQ(fast.encode(text), tok.encode(text)) << nlohmann::json(text);
    ++compared;
  }
  EXPECT_GT(compared, 200u);
  // add_bos_token false (Yi's tokenizer_config.json): encode adds no BOS, and the saved files say so.
  std::ofstream(dir.path / "tokenizer_config.json") << R"({"legacy": false, "add_bos_token": false})";
  const SentencePieceTokenizer no_bos((dir.path / "tokenizer.model").string());
  EXPECT_EQ(no_bos.encode("Hello"), tok.encode("Hello", /*add_bos=*/false));
  no_bos.save_hf((dir.path / "no_bos").string());
  EXPECT_EQ(nlohmann::json::parse(read_bytes(dir.path / "no_bos/tokenizer_config.json")).at("add_bos_token"), false);
  EXPECT_TRUE(nlohmann::json::parse(read_bytes(dir.path / "no_bos/tokenizer.json")).at("post_processor").is_null());
  // No space put before a special token; the "▁" of a piece after one is the model's own space.
  EXPECT_EQ(tok.decode({1, 15043, 2, 11889}, false), "<s> Hello</s>USER");
  EXPECT_EQ(tok.decode({15043, 2, 11889}, false), "Hello</s>USER");
}

TEST(SentencePieceTokenizer, TrainsASmallDeterministicLlamaLayoutModel) {
  TempDir dir("sptok_train");
  const auto texts = training_texts();
  const auto first = (dir.path / "first.model").string(), second = (dir.path / "second.model").string();
  train_sentencepiece(texts, 400, first);
  train_sentencepiece(texts, 400, second);
  EXPECT_EQ(read_bytes(first), read_bytes(second)) << "training is not deterministic";

  SentencePieceTokenizer tok(first);
  EXPECT_EQ(tok.vocab_size(), 400);
  EXPECT_EQ(tok.unk_id(), 0);
  EXPECT_EQ(tok.bos_id(), 1);
  EXPECT_EQ(tok.eos_id(), 2);
  EXPECT_EQ(tok.id_to_piece(0), "<unk>");
  EXPECT_EQ(tok.id_to_piece(1), "<s>");
  EXPECT_EQ(tok.id_to_piece(2), "</s>");
  EXPECT_EQ(tok.id_to_piece(3), "<0x00>");  // byte fallback pieces follow the special ones
  for (const auto& text : texts) EXPECT_EQ(tok.decode(tok.encode(text)), text);
  // Unseen characters fall back to bytes; whitespace is kept as written; digits are split.
  for (const std::string text : {"🔬 naïve  tumor\tcells\n", "  leading and trailing  ", "12345"}) {
    const auto ids = tok.encode(text);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), tok.unk_id()), 0) << text;
    EXPECT_EQ(tok.decode(ids), text);
  }
  const auto digits = tok.encode("12345", /*add_bos=*/false);
  ASSERT_EQ(digits.size(), 6u) << "a dummy-prefix piece and one piece per digit";
  EXPECT_EQ(tok.id_to_piece(digits[0]), "\u2581");
  EXPECT_EQ(tok.id_to_piece(digits[5]), "5");
  // The legacy special-string rule holds for any model.
  auto expected = tok.encode("grade ");
  expected.push_back(tok.eos_id());
  const auto after = tok.encode("2.", false);
  expected.insert(expected.end(), after.begin(), after.end());
  EXPECT_EQ(tok.encode("grade </s>2."), expected);
}

// The model's control pieces (Mistral v0.3's [INST]) are special tokens cut out of the text even without a
// tokenizer_config.json, as transformers 5 converts the model; tokenizer_config.json's added_tokens_decoder adds
// tokens after the model's pieces (llava-hf's <image> and <pad>), special or not. Legacy: each run of text between
// them is a text of its own.
TEST(SentencePieceTokenizer, ControlPiecesAndConfiguredAddedTokensAreCutOutOfTheText) {
  TempDir dir("sptok_added");
  const SentencePieceTokenizer bare(control_model(dir.path / "bare"));
  ASSERT_EQ(bare.id_to_piece(3), "[INST]");
  ASSERT_EQ(bare.id_to_piece(4), "[/INST]");
  EXPECT_EQ(bare.vocab_size(), 400);
  EXPECT_TRUE(bare.is_special(3) && bare.is_special(4) && bare.is_special(0));
  EXPECT_FALSE(bare.is_special(5));
  EXPECT_EQ(specials_of(bare), (std::map<int32_t, std::string>{{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}, {3, "[INST]"},
                                                               {4, "[/INST]"}}));
  const auto run = [&](const std::string& text) { return bare.encode(text, /*add_bos=*/false); };
  const auto ids = bare.encode("[INST] Grade? [/INST] Two.</s>");
  EXPECT_EQ(ids, concat({{1, 3}, run(" Grade? "), {4}, run(" Two."), {2}}));
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 3), 1);
  EXPECT_EQ(bare.decode(ids).find("INST"), std::string::npos) << bare.decode(ids);
  EXPECT_EQ(bare.decode({3, 4}, /*skip_special=*/false), "[INST][/INST]");
  EXPECT_GT(run("[INST").size(), 1u);  // a near miss is text

  auto config = llava_added_tokens(400, /*pad_special=*/false);
  const SentencePieceTokenizer tok(control_model(dir.path / "config", config));
  EXPECT_EQ(tok.vocab_size(), 402);
  EXPECT_EQ(tok.id_to_piece(400), "<image>");
  EXPECT_EQ(tok.id_to_piece(401), "<pad>");
  EXPECT_TRUE(tok.is_special(400));
  EXPECT_FALSE(tok.is_special(401));
  EXPECT_EQ(specials_of(tok), (std::map<int32_t, std::string>{{0, "<unk>"}, {1, "<s>"}, {2, "</s>"}, {3, "[INST]"},
                                                              {4, "[/INST]"}, {400, "<image>"}}));
  EXPECT_EQ(tok.encode("<image>\nx<pad>"), concat({{1, 400}, run("\nx"), {401}}));
  EXPECT_EQ(tok.decode({400, 401}), "<pad>");  // a token that is not special stays
  EXPECT_EQ(tok.decode({400, 401}, /*skip_special=*/false), "<image><pad>");
  EXPECT_NE(error_of([&] { tok.decode({402}); }).find("outside the vocabulary of 402"), std::string::npos);

  // Saved, the added tokens travel in tokenizer_config.json and read back the same.
  tok.save_hf((dir.path / "saved").string());
  const auto saved = nlohmann::json::parse(read_bytes(dir.path / "saved/tokenizer_config.json"));
  EXPECT_EQ(saved.at("added_tokens_decoder"), config.at("added_tokens_decoder"));
  const SentencePieceTokenizer again((dir.path / "saved/tokenizer.model").string());
  EXPECT_EQ(again.vocab_size(), 402);
  for (const auto& text : kAddedTokenTexts) EXPECT_EQ(again.encode(text), tok.encode(text)) << text;
}

// tokenizer_config.json's added tokens must agree with the model: an entry's content is the model's piece of its
// id, ids after the model's pieces follow without gaps, and lstrip / rstrip / single_word are refused. Each error
// names the config file and the token.
TEST(SentencePieceTokenizer, AddedTokensThatDisagreeWithTheModelAreRefused) {
  TempDir dir("sptok_added_errors");
  const auto model = control_model(dir.path);
  const auto config_file = (dir.path / "tokenizer_config.json").string();
  const auto refusal = [&](const nlohmann::json& decoder) {
    std::ofstream(config_file) << nlohmann::json{{"added_tokens_decoder", decoder}}.dump();
    return error_of([&] { SentencePieceTokenizer tok(model); });
  };
  auto lstrip = added_token("<image>", true);
  lstrip["lstrip"] = true;
  for (const auto& [decoder, expected] : std::vector<std::pair<nlohmann::json, std::vector<std::string>>>{
           {{{"5", added_token("[X]", true)}}, {"'[X]'", "id 5", "the model's piece"}},
           {{{"401", added_token("<pad>", false)}}, {"'<pad>'", "401", "without gaps", "the next is 400"}},
           {{{"400", lstrip}}, {"'<image>'", "lstrip", "not supported"}},
           {{{"x1", added_token("<image>", true)}}, {"'x1'", "not an id"}},
           {{{"400", {{"content", ""}}}}, {"added token 400", "no content"}},
           {{{"400", added_token("[INST]", true)}}, {"'[INST]' (id 400) is also the token of id 3"}},
           {nlohmann::json::array(), {"added_tokens_decoder", "not an object"}}}) {
    const auto message = refusal(decoder);
    EXPECT_NE(message.find(config_file), std::string::npos) << message;
    for (const auto& part : expected) EXPECT_NE(message.find(part), std::string::npos) << part << " | " << message;
  }
}

TEST(SentencePieceTokenizer, TrainingErrorsNameTheModelFile) {
  TempDir dir("sptok_train_errors");
  const auto model = (dir.path / "tiny.model").string();
  auto message = error_of([&] { train_sentencepiece({}, 300, model); });
  EXPECT_NE(message.find(model), std::string::npos) << message;
  message = error_of([&] { train_sentencepiece({"only a few words"}, 5000, model); });
  EXPECT_NE(message.find(model), std::string::npos) << message;
  EXPECT_FALSE(fs::exists(model));
}
