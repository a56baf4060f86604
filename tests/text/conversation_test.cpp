// Conversation templates: input_ids and labels equal an independent python implementation of LLaVA's
// preprocess_v1 / preprocess_llama_2 / preprocess_plain / tokenizer_image_token
// (tests/text/llava_preprocess_reference.py, python sentencepiece on LLaMA-2's tokenizer.model) for fixed samples
// of every template (multi-turn, text-only, several images, generation prompts); the supervised tokens decode to
// exactly the replies and their stop; the join rule of text pieces; structural problems; truncation with images
// never cut; the inspection renderings.
#include "text/conversation.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_util.h"
#include "text/conversation_inspect.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/sequence_fit.h"
#include "text/supervised_sequence.h"

using namespace pathvlm;
using pathvlm::testing::error_of;
using text::Conversation;
using text::ConversationTemplate;
using text::kIgnoreIndex;
using text::kImageToken;
using text::Speaker;
namespace fs = std::filesystem;

namespace {

const std::string kLlamaModel = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";
const std::string kPython = "/usr/bin/python3";
const std::string kReference = std::string(PATHVLM_SOURCE_DIR) + "/tests/text/llava_preprocess_reference.py";

#define SKIP_WITHOUT_LLAMA_MODEL() \
  if (!fs::exists(kLlamaModel))    \
  GTEST_SKIP() << "shared test data missing: " << kLlamaModel << " (see ../shared/data/README.md)"

const text::SentencePieceTokenizer& llama() {
  static text::SentencePieceTokenizer tok(kLlamaModel);
  return tok;
}

Conversation conversation(std::vector<std::string> values, const std::string& id = "c") {
  Conversation c{id, {}};
  for (size_t i = 0; i < values.size(); ++i) c.turns.push_back({i % 2 ? Speaker::gpt : Speaker::human, values[i]});
  return c;
}

// The supervised stretches of a sequence, each as its ids.
std::vector<std::vector<int64_t>> supervised_runs(const text::SupervisedSequence& seq) {
  std::vector<std::vector<int64_t>> runs;
  bool open = false;
  for (size_t i = 0; i < seq.labels.size(); ++i) {
    if (seq.labels[i] == kIgnoreIndex) {
      open = false;
      continue;
    }
    EXPECT_EQ(seq.labels[i], seq.input_ids[i]) << "a label differs from its input id at " << i;
    if (!open) runs.emplace_back();
    runs.back().push_back(seq.labels[i]);
    open = true;
  }
  return runs;
}

std::string read_text(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Sample {
  std::string template_name;
  bool generation;
  Conversation conversation;
};

std::vector<Sample> reference_samples() {
  const std::string q = "<image>\nWhat tissue is shown in this H&E-stained image?";
  const std::string a = "This is colonic mucosa with tubular adenoma; the glands show low-grade dysplasia.";
  std::vector<Sample> samples;
  for (const std::string name : {"vicuna_v1", "pathasst", "mistral_instruct", "llava_llama_2"}) {
    samples.push_back({name, false, conversation({q, a})});
    // The image after the question moves to the front; several turns; a reply with newlines and a list.
    samples.push_back(
        {name, false,
         conversation({"Describe the slide.\n<image>", a, "Is it malignant?", "No.\n1. Low-grade.\n2. Margins clear.",
                       "Next step?", "Follow-up colonoscopy in 3 years."})});
    samples.push_back({name, false, conversation({"What does Ki-67 measure?", "Proliferation."})});  // text only
    // Few-shot: one image per human turn, and two images in one turn.
    samples.push_back({name, false,
                       conversation({"<image>\nExample: benign or malignant?", "Benign.", "<image>\nAnd this one?",
                                     "Malignant.", "Compare these two: <image> <image>", "The second is denser."})});
    samples.push_back({name, false, conversation({"<image>", "Invasive ductal carcinoma, grade 2."})});  // image only
    samples.push_back({name, false, conversation({"Größe? 病理 <image> 🔬", "Über 12 µm — groß."})});
    samples.push_back({name, true, conversation({q})});
    samples.push_back({name, true, conversation({q, a, "Is it malignant?"})});
  }
  samples.push_back({"plain", false, conversation({q, a})});
  samples.push_back({"plain", false, conversation({"<image>", "H&E, 40x: nests of atypical cells.\nMitoses."})});
  samples.push_back({"plain", false, conversation({"<image><image>\nTwo views.", "Both show necrosis."})});
  samples.push_back({"plain", false, conversation({"no image here", "A caption without an image."})});
  samples.push_back({"plain", true, conversation({q})});
  return samples;
}

// Runs the python reference on `samples` with LlamaTokenizer `mode` ("legacy" or "non-legacy") on the SentencePiece
// model `model`; one {"prompt", "input_ids", "labels", "mismatch"} per sample.
std::vector<nlohmann::json> python_reference(const std::vector<Sample>& samples, const std::string& mode,
                                             const std::string& model) {
  const auto dir = fs::temp_directory_path() / ("pathvlm_conversation_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  {
    std::ofstream input(dir / "samples.jsonl");
    for (const auto& s : samples) {
      nlohmann::json turns = nlohmann::json::array();
      for (const auto& t : s.conversation.turns) {
        turns.push_back({{"from", t.from == Speaker::human ? "human" : "gpt"}, {"value", t.value}});
      }
      input << nlohmann::json{{"template", s.template_name}, {"generation", s.generation}, {"conversations", turns}}
                   .dump()
            << "\n";
    }
  }
  const std::string command = kPython + " " + kReference + " " + model + " " + (dir / "samples.jsonl").string() +
                              " " + (dir / "out.jsonl").string() + " " + mode + " 2> " + (dir / "err.txt").string();
  const int status = std::system(command.c_str());
  std::vector<nlohmann::json> out;
  if (status != 0) {
    ADD_FAILURE() << "the python reference failed (exit " << WEXITSTATUS(status)
                  << "); it needs /usr/bin/python3 with python3-sentencepiece (scripts/setup.sh):\n"
                  << read_text(dir / "err.txt");
  } else {
    std::ifstream in(dir / "out.jsonl");
    for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  }
  fs::remove_all(dir);
  return out;
}

// Every reference sample through `tok` gives the python reference's prompt, ids and labels (`mode`: the
// reference's LlamaTokenizer, on tok's model); returns the samples whose labels were compared. `lone_space`: [INST]
// and [/INST] are control pieces of tok's legacy model, so a reply after [/INST], a text of its own, starts with a
// lone "▁" (the dummy prefix before its space); LLaVA's preprocess_llama_2, whose length arithmetic takes [/INST]
// for text, masks that token too: there exactly those labels may differ.
size_t expect_llava_preprocessing(const text::Tokenizer& tok, const std::string& mode, bool lone_space = false) {
  const auto samples = reference_samples();
  const auto reference = python_reference(samples, mode, tok.path());
  EXPECT_EQ(reference.size(), samples.size());
  if (reference.size() != samples.size()) return 0;
  size_t labelled = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    const auto tmpl = ConversationTemplate::named(s.template_name);
    const auto what = "sample " + std::to_string(i) + " (" + s.template_name + (s.generation ? ", generation)" : ")");
    const auto pieces =
        s.generation ? tmpl.generation_pieces(s.conversation, tok) : tmpl.training_pieces(s.conversation, tok);
    EXPECT_EQ(text::join_pieces(pieces, tok), "<s>" + reference[i]["prompt"].get<std::string>()) << what;
    const auto seq = s.generation ? tmpl.generation_prompt(s.conversation, tok) : tmpl.tokenize(s.conversation, tok);
    EXPECT_EQ(seq.input_ids, reference[i]["input_ids"].get<std::vector<int64_t>>()) << what;
    EXPECT_EQ(seq.images(), text::count_image_placeholders(s.conversation)) << what;
    if (s.generation) {
      EXPECT_EQ(seq.supervised_tokens(), 0) << what;
      continue;
    }
    EXPECT_FALSE(reference[i]["mismatch"].get<bool>()) << what << ": LLaVA's own masking reports a mismatch";
    auto labels = reference[i]["labels"].get<std::vector<int64_t>>();
    if (lone_space && (s.template_name == "mistral_instruct" || s.template_name == "llava_llama_2")) {
      EXPECT_EQ(labels.size(), seq.labels.size()) << what;
      if (labels.size() != seq.labels.size()) continue;
      int64_t unmasked = 0;
      for (size_t k = 0; k + 1 < labels.size(); ++k) {
        if (labels[k] != kIgnoreIndex || labels[k + 1] == kIgnoreIndex || seq.labels[k] == kIgnoreIndex) continue;
        EXPECT_EQ(tok.id_to_piece(seq.labels[k]), "\u2581") << what;
        labels[k] = seq.labels[k];
        ++unmasked;
      }
      EXPECT_EQ(unmasked, static_cast<int64_t>(supervised_runs(seq).size())) << what;
    }
    EXPECT_EQ(seq.labels, labels) << what;
    ++labelled;
  }
  return labelled;
}

}  // namespace

TEST(ConversationTemplate, MatchesAnIndependentPythonImplementationOfLlavaPreprocessing) {
  SKIP_WITHOUT_LLAMA_MODEL();
  EXPECT_GT(expect_llava_preprocessing(llama(), "legacy"), 0u);
}

// vicuna-7b-v1.5 and LLaVA-1.5 say legacy false in their tokenizer_config.json: the text after a special token written
// in the prompt gets no "▁" ("</s>USER" -> </s> USER, not </s> ▁US ER), and LLaVA's preprocess_v1 counts one token
// less per later round. Ids and labels still equal LLaVA's, every template.
TEST(ConversationTemplate, MatchesLlavaPreprocessingWithANonLegacyTokenizer) {
  SKIP_WITHOUT_LLAMA_MODEL();
  pathvlm::testing::TempDir dir("conversation_non_legacy");
  fs::copy_file(kLlamaModel, dir.path / "tokenizer.model");
  std::ofstream(dir.path / "tokenizer_config.json") << R"({"legacy": false, "tokenizer_class": "LlamaTokenizer"})";
  const text::SentencePieceTokenizer non_legacy((dir.path / "tokenizer.model").string());
  ASSERT_FALSE(non_legacy.legacy());
  EXPECT_GT(expect_llava_preprocessing(non_legacy, "non-legacy"), 0u);
  // The difference is real: a later round's USER is one token here, two (▁US ER) for the legacy tokenizer.
  const auto conv = conversation({"Hi", "Hello.", "Grade?", "Two."});
  const auto tmpl = ConversationTemplate::named("vicuna_v1");
  EXPECT_EQ(tmpl.tokenize(conv, non_legacy).input_ids.size() + 1, tmpl.tokenize(conv, llama()).input_ids.size());
}

// A tokenizer whose model has [INST] and [/INST] as control pieces (Mistral v0.3's kind) gets them as their ids in
// the prompt LLaVA-Med's mistral_instruct template writes, as transformers tokenizes that prompt: ids and labels
// equal LLaVA's preprocessing on such a tokenizer, legacy or not (but for the lone "▁" LLaVA masks, see
// expect_llava_preprocessing), and so do every other template's.
TEST(ConversationTemplate, MarkersThatAreControlPiecesOfTheModelAreTheirTokens) {
  SKIP_WITHOUT_LLAMA_MODEL();
  pathvlm::testing::TempDir dir("conversation_control_pieces");
  std::vector<std::string> texts;
  for (const auto& s : reference_samples())
    for (const auto& turn : s.conversation.turns) texts.push_back(turn.value);
  text::train_sentencepiece(texts, 400, (dir.path / "tokenizer.model").string(), {"[INST]", "[/INST]"});
  const auto conv = conversation({"<image>\nWhat is shown?", "A tumor.", "Grade?", "Two."});
  const auto tmpl = ConversationTemplate::named("mistral_instruct");
  for (const auto legacy : {true, false}) {
    SCOPED_TRACE(legacy ? "legacy" : "non-legacy");
    std::ofstream(dir.path / "tokenizer_config.json") << nlohmann::json{{"legacy", legacy}}.dump();
    const text::SentencePieceTokenizer tok((dir.path / "tokenizer.model").string());
    ASSERT_EQ(tok.id_to_piece(3), "[INST]");
    ASSERT_TRUE(tok.is_special(3) && tok.is_special(4));
    EXPECT_GT(expect_llava_preprocessing(tok, legacy ? "legacy" : "non-legacy", /*lone_space=*/legacy), 0u);
    const auto ids = tmpl.tokenize(conv, tok).input_ids;
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 3), 2);
    EXPECT_EQ(std::count(ids.begin(), ids.end(), 4), 2);
    // A turn may not write them.
    EXPECT_NE(tmpl.problem(conversation({"[INST] hi", "ok"}), tok).find("'[INST]'"), std::string::npos);
    // Its tokenizer.json alone (what transformers 5 saves) gives the same sequences.
    const auto saved = dir.path / (legacy ? "saved_legacy" : "saved_non_legacy");
    tok.save_hf(saved.string());
    fs::remove(saved / "tokenizer.model");
    const auto json_tokenizer = text::open_tokenizer(saved.string());
    ASSERT_EQ(json_tokenizer->path(), (saved / "tokenizer.json").string());
    const auto from_json = tmpl.tokenize(conv, *json_tokenizer), from_model = tmpl.tokenize(conv, tok);
    EXPECT_EQ(from_json.input_ids, from_model.input_ids);
    EXPECT_EQ(from_json.labels, from_model.labels);
  }
  // A tokenizer without them writes them as text (LLaMA-2's, Mistral v0.1's).
  const auto ids = tmpl.tokenize(conv, llama()).input_ids;
  EXPECT_EQ(std::count(ids.begin(), ids.end(), 3), 0);
  EXPECT_EQ(text::join_pieces(tmpl.training_pieces(conv, llama()), llama()),
            "<s>[INST] <image>\nWhat is shown? [/INST] A tumor. </s>[INST] Grade? [/INST] Two. </s>");
}

// A LLaMA-2 directory that ships tokenizer.json alone (transformers 5 saves no tokenizer.model), with <image> a
// special token of it as in a LLaVA directory, gives every template the sequences its tokenizer.model gives: ids,
// labels and generation prompts.
TEST(ConversationTemplate, ALlama2TokenizerJsonGivesTheSequencesOfItsModel) {
  SKIP_WITHOUT_LLAMA_MODEL();
  pathvlm::testing::TempDir dir("conversation_tokenizer_json");
  llama().save_hf(dir.path.string());
  fs::remove(dir.path / "tokenizer.model");
  auto json = nlohmann::json::parse(read_text(dir.path / "tokenizer.json"));
  json["added_tokens"].push_back({{"id", 32000}, {"content", "<image>"}, {"single_word", false}, {"lstrip", false},
                                  {"rstrip", false}, {"normalized", false}, {"special", true}});
  std::ofstream(dir.path / "tokenizer.json") << json.dump();
  const auto json_tokenizer = text::open_tokenizer(dir.path.string());
  ASSERT_EQ(json_tokenizer->path(), (dir.path / "tokenizer.json").string());
  ASSERT_TRUE(json_tokenizer->is_special(32000));
  const auto samples = reference_samples();
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& s = samples[i];
    const auto tmpl = ConversationTemplate::named(s.template_name);
    auto sequence = [&](const text::Tokenizer& tok) {
      return s.generation ? tmpl.generation_prompt(s.conversation, tok) : tmpl.tokenize(s.conversation, tok);
    };
    const auto expected = sequence(llama()), got = sequence(*json_tokenizer);
    EXPECT_EQ(got.input_ids, expected.input_ids) << "sample " << i << " (" << s.template_name << ")";
    EXPECT_EQ(got.labels, expected.labels) << "sample " << i << " (" << s.template_name << ")";
  }
}

TEST(ConversationTemplate, SupervisedTokensAreExactlyTheRepliesAndTheirStop) {
  SKIP_WITHOUT_LLAMA_MODEL();
  const auto conv = conversation({"<image>\nWhat is shown?", "A tubular adenoma.", "Grade?",
                                  "Low-grade dysplasia.\nNo invasion.", "Margins?", "Clear."});
  const std::vector<std::string> replies = {"A tubular adenoma.", "Low-grade dysplasia.\nNo invasion.", "Clear."};

  const auto vicuna = ConversationTemplate::named("vicuna_v1").tokenize(conv, llama());
  auto runs = supervised_runs(vicuna);
  ASSERT_EQ(runs.size(), replies.size());
  for (size_t r = 0; r < runs.size(); ++r) {
    ASSERT_EQ(runs[r].back(), llama().eos_id()) << "reply " << r << " ends with </s>";
    EXPECT_EQ(llama().decode(runs[r]), replies[r]);
    EXPECT_EQ(std::count(runs[r].begin(), runs[r].end(), llama().eos_id()), 1);
  }

  const auto pathasst = ConversationTemplate::named("pathasst").tokenize(conv, llama());
  runs = supervised_runs(pathasst);
  ASSERT_EQ(runs.size(), replies.size());
  for (size_t r = 0; r < runs.size(); ++r) EXPECT_EQ(llama().decode(runs[r]), replies[r] + "\n###");

  for (const std::string name : {"mistral_instruct", "llava_llama_2"}) {
    const auto seq = ConversationTemplate::named(name).tokenize(conv, llama());
    runs = supervised_runs(seq);
    ASSERT_EQ(runs.size(), replies.size()) << name;
    for (size_t r = 0; r < runs.size(); ++r) {
      ASSERT_EQ(runs[r].back(), llama().eos_id()) << name << " reply " << r << " ends with </s>";
      runs[r].pop_back();
      // The reply and the space LLaMA-2's format puts after it (its own token: decoding keeps it).
      EXPECT_EQ(llama().decode(runs[r]), replies[r] + " ") << name << " reply " << r;
    }
    // llava_llama_2 opens every later round with <s> (its sep), never supervised; mistral_instruct has none.
    const auto bos = std::count(seq.input_ids.begin(), seq.input_ids.end(), llama().bos_id());
    EXPECT_EQ(bos, name == "llava_llama_2" ? 3 : 1) << name;
  }

  const auto plain = ConversationTemplate::named("plain").tokenize(conversation({"<image>", "Colon, H&E."}), llama());
  runs = supervised_runs(plain);
  ASSERT_EQ(runs.size(), 1u);
  EXPECT_EQ(llama().decode(runs[0]), "Colon, H&E.\n");
  EXPECT_EQ(std::vector<int64_t>(plain.input_ids.begin(), plain.input_ids.begin() + 2),
            (std::vector<int64_t>{llama().bos_id(), kImageToken}));
}

// Turns that hold the template's own separators: LLaVA's preprocess_v1 splits rounds on " ASSISTANT: " and then
// supervises the template's "ASSISTANT:" as part of the reply (or, with odd whitespace, reports a tokenization
// mismatch and masks the whole sample); preprocess_llama_2 splits on "[/INST] " the same way. The spans here come
// from the pieces, so they stay exactly the replies.
TEST(ConversationTemplate, RepliesStaySupervisedWhenTurnsHoldTheSeparators) {
  SKIP_WITHOUT_LLAMA_MODEL();
  const auto conv =
      conversation({"<image>\nIs this the end? ASSISTANT:", " USER:<", "###Human: next ASSISTANT: [/INST] ",
                    "ASSISTANT: yes\n\n ### [/INST] [INST]", "  leading and trailing  ", " \t 40x  "});
  const std::vector<std::string> replies = {" USER:<", "ASSISTANT: yes\n\n ### [/INST] [INST]", " \t 40x  "};
  for (const std::string name : {"vicuna_v1", "pathasst", "mistral_instruct", "llava_llama_2"}) {
    const auto seq = ConversationTemplate::named(name).tokenize(conv, llama());
    const auto runs = supervised_runs(seq);
    ASSERT_EQ(runs.size(), replies.size()) << name;
    for (size_t r = 0; r < runs.size(); ++r) {
      // The reply verbatim, then the template's stop (vicuna_v1: </s>, pathasst: "\n###", the LLaMA-2 ones:
      // " </s>").
      const bool llama_2 = name == "mistral_instruct" || name == "llava_llama_2";
      const std::string expected = replies[r] + (name == "pathasst" ? "\n###" : llama_2 ? " " : "");
      std::vector<int64_t> text_ids = runs[r];
      if (name != "pathasst") {
        ASSERT_EQ(text_ids.back(), llama().eos_id()) << name << " reply " << r;
        text_ids.pop_back();
      }
      EXPECT_EQ(llama().decode(text_ids), expected) << name << " reply " << r;
    }
  }
}

TEST(ConversationTemplate, RendersTheSupervisedSpansAndJson) {
  SKIP_WITHOUT_LLAMA_MODEL();
  const auto conv = conversation({"<image>\nWhat is shown?", "An adenoma.", "Grade?", "Low."}, "rec-1");
  const auto vicuna = ConversationTemplate::named("vicuna_v1");
  const auto system = vicuna.system();
  EXPECT_EQ(text::render_supervision(vicuna.tokenize(conv, llama()), llama()),
            "<s> " + system +
                " USER: <image> \nWhat is shown? ASSISTANT:[[ An adenoma.</s>]] USER: Grade? ASSISTANT:[[ Low.</s>]]");
  EXPECT_EQ(text::render_supervision(ConversationTemplate::named("pathasst").tokenize(conv, llama()), llama()),
            "<s> " + system +
                "\n\n### User: <image> \nWhat is shown?\n### Assistant:[[ An adenoma.\n###]] User: Grade?\n### "
                "Assistant:[[ Low.\n###]]");
  EXPECT_EQ(text::render_supervision(ConversationTemplate::named("mistral_instruct").tokenize(conv, llama()), llama()),
            "<s> [INST] <image> \nWhat is shown? [/INST][[ An adenoma. </s>]] [INST] Grade? [/INST][[ Low. </s>]]");

  const auto plain = ConversationTemplate::named("plain").tokenize(conversation({"<image>", "Colon."}, "7"), llama());
  const auto json = nlohmann::json::parse(text::sequence_json("7", plain));
  EXPECT_EQ(json["id"], "7");
  EXPECT_EQ(json["input_ids"].get<std::vector<int64_t>>(), plain.input_ids);
  EXPECT_EQ(json["labels"].get<std::vector<int64_t>>(), plain.labels);
  EXPECT_EQ(json["input_ids"][1], -200);
  EXPECT_EQ(json["labels"][0], -100);
  EXPECT_EQ(json["labels"][1], -100);
}

TEST(ConversationTemplate, NamesStopStringsAndGenerationPrompts) {
  SKIP_WITHOUT_LLAMA_MODEL();
  EXPECT_EQ(ConversationTemplate::names(),
            (std::vector<std::string>{"plain", "vicuna_v1", "pathasst", "mistral_instruct", "llava_llama_2",
                                      "llama_3", "chatml", "qwen3"}));
  EXPECT_EQ(ConversationTemplate::named("plain").stop_strings(), (std::vector<std::string>{"\n"}));
  EXPECT_TRUE(ConversationTemplate::named("vicuna_v1").stop_strings().empty());
  EXPECT_EQ(ConversationTemplate::named("pathasst").stop_strings(), (std::vector<std::string>{"###"}));
  EXPECT_TRUE(ConversationTemplate::named("mistral_instruct").stop_strings().empty());
  EXPECT_NE(error_of([] {
              ConversationTemplate::named("llava_v0");
            }).find("known: plain, vicuna_v1, pathasst, mistral_instruct, llava_llama_2, llama_3, chatml"),
            std::string::npos);

  const auto question = conversation({"<image>\nWhat is shown?"}, "q1");
  const auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  for (const auto& [name, tail] :
       std::vector<std::pair<std::string, std::string>>{{"vicuna_v1", "What is shown? ASSISTANT:"},
                                                        {"pathasst", "What is shown?\n### Assistant:"},
                                                        {"mistral_instruct", "What is shown? [/INST]"},
                                                        {"llava_llama_2", "What is shown? [/INST]"}}) {
    const auto tmpl = ConversationTemplate::named(name);
    EXPECT_TRUE(ends_with(text::join_pieces(tmpl.generation_pieces(question, llama()), llama()), tail)) << name;
    // The prompt is the training sequence up to the first reply.
    const auto prompt = tmpl.generation_prompt(question, llama());
    const auto full = tmpl.tokenize(conversation({"<image>\nWhat is shown?", "An adenoma."}), llama());
    ASSERT_LT(prompt.input_ids.size(), full.input_ids.size()) << name;
    EXPECT_TRUE(std::equal(prompt.input_ids.begin(), prompt.input_ids.end(), full.input_ids.begin())) << name;
    EXPECT_NE(full.labels[prompt.input_ids.size()], kIgnoreIndex) << name << ": the reply starts right after it";
    const auto msg = error_of([&] { tmpl.generation_prompt(conversation({"Q", "A"}, "r9"), llama()); });
    EXPECT_NE(msg.find("conversation 'r9' (template " + name + ", generation prompt): it ends with a reply"),
              std::string::npos)
        << msg;
  }
  EXPECT_EQ(ConversationTemplate::named("plain").generation_prompt(question, llama()).input_ids,
            (std::vector<int64_t>{llama().bos_id(), kImageToken}));
}

TEST(ConversationTemplate, ProblemsNameTheTurn) {
  SKIP_WITHOUT_LLAMA_MODEL();
  const auto v1 = ConversationTemplate::named("vicuna_v1");
  EXPECT_EQ(v1.problem(conversation({"Q", "A"}), llama()), "");
  EXPECT_EQ(v1.problem(Conversation{"x", {}}, llama()), "it has no turns");
  EXPECT_EQ(v1.problem(Conversation{"x", {{Speaker::gpt, "A"}}}, llama()),
            "turn 0 is a gpt reply; a conversation starts with a human turn");
  EXPECT_EQ(v1.problem(Conversation{"x", {{Speaker::human, "Q"}, {Speaker::human, "Q"}}}, llama()),
            "turns 0 and 1 come from the same speaker; human and gpt turns alternate");
  EXPECT_EQ(v1.problem(conversation({"Q", "A", "Q2"}), llama()), "it ends with a human turn, not a reply");
  EXPECT_EQ(v1.problem(conversation({"Q", ""}), llama()), "turn 1 is empty");
  EXPECT_EQ(v1.problem(conversation({"Q", "see <image>"}), llama()),
            "turn 1 is a reply holding \"<image>\" (images go in human turns)");
  EXPECT_EQ(v1.problem(conversation({"Q", "A</s>B"}), llama()), "turn 1 holds the special-token string '</s>'");
  EXPECT_EQ(ConversationTemplate::named("plain").problem(conversation({"<image>", "A", "Q", "B"}), llama()),
            "template plain takes one human turn and its reply (a caption); the conversation has 4 turns");
  const auto msg = error_of([&] { v1.tokenize(conversation({"Q", "A", "Q2"}, "rec-3"), llama()); });
  EXPECT_NE(msg.find("conversation 'rec-3' (template vicuna_v1): it ends with a human turn"), std::string::npos) << msg;
}

// Text pieces join so the ids equal the whole prompt's; a cut anywhere else than before a space is refused.
TEST(SupervisedSequence, PiecesJoinAtSpacesOnly) {
  SKIP_WITHOUT_LLAMA_MODEL();
  using text::Piece;
  const auto seq = text::tokenize_pieces(
      {Piece::bos(), Piece::of_text("USER: Hi"), Piece::of_text(" ASSISTANT:"), Piece::of_text("  Hello there", true),
       Piece::eos(true), Piece::of_text("USER: more"), Piece::image(), Piece::of_text("\nx")},
      llama());
  auto whole = llama().encode("USER: Hi ASSISTANT:  Hello there</s>USER: more");
  const auto tail = llama().encode("\nx", /*add_bos=*/false);
  whole.push_back(kImageToken);
  whole.insert(whole.end(), tail.begin(), tail.end());
  EXPECT_EQ(seq.input_ids, whole);
  EXPECT_EQ(llama().decode(supervised_runs(seq)[0]), " Hello there");  // the reply's first space is its own

  for (const auto& bad : std::vector<std::vector<Piece>>{
           {Piece::of_text("USER:"), Piece::of_text("Hello", true)},    // no space at the cut
           {Piece::of_text("USER: "), Piece::of_text(" Hello", true)},  // a space before the cut
           {Piece::of_text("USER:"), Piece::of_text(" ", true)}}) {     // nothing after the space
    EXPECT_NE(
        error_of([&] { text::tokenize_pieces(bad, llama()); }).find("without starting at a space after a non-space"),
        std::string::npos);
  }
  EXPECT_NE(error_of([] {
              text::tokenize_pieces({Piece::of_text("a <s> b")}, llama());
            }).find("prompt piece 0 holds the special-token string '<s>'"),
            std::string::npos);
}

TEST(SequenceFit, CutsTextFromTheEndNeverImagesAndFlagsLostSupervision) {
  SKIP_WITHOUT_LLAMA_MODEL();
  const auto tmpl = ConversationTemplate::named("vicuna_v1");
  const auto original =
      tmpl.tokenize(conversation({"<image>\nWhat is shown?", "A tubular adenoma with low-grade dysplasia."}), llama());
  const int64_t image_tokens = 16;
  const int64_t length = original.positions(image_tokens);
  ASSERT_EQ(length, static_cast<int64_t>(original.input_ids.size()) + image_tokens - 1);
  const int64_t supervised = original.supervised_tokens();
  ASSERT_GT(supervised, 5);

  auto seq = original;
  auto fit = text::fit_to_length(seq, length, image_tokens);
  EXPECT_EQ(fit.outcome, text::FitOutcome::whole);
  EXPECT_EQ(seq.input_ids, original.input_ids);

  // The answer partly cut: the last 3 tokens go, the first supervised ones stay.
  seq = original;
  fit = text::fit_to_length(seq, length - 3, image_tokens);
  EXPECT_EQ(fit.outcome, text::FitOutcome::truncated);
  EXPECT_TRUE(fit.trainable());
  EXPECT_EQ(fit.positions_before, length);
  EXPECT_EQ(fit.cut_tokens, 3);
  EXPECT_EQ(fit.cut_supervised, 3);
  EXPECT_EQ(seq.positions(image_tokens), length - 3);
  EXPECT_EQ(seq.supervised_tokens(), supervised - 3);
  EXPECT_EQ(seq.input_ids, std::vector<int64_t>(original.input_ids.begin(), original.input_ids.end() - 3));
  EXPECT_EQ(seq.labels, std::vector<int64_t>(original.labels.begin(), original.labels.end() - 3));

  // The answer wholly cut: flagged, not trainable.
  seq = original;
  fit = text::fit_to_length(seq, length - supervised, image_tokens);
  EXPECT_EQ(fit.outcome, text::FitOutcome::supervision_cut);
  EXPECT_FALSE(fit.trainable());
  EXPECT_EQ(fit.cut_supervised, supervised);
  EXPECT_EQ(seq.supervised_tokens(), 0);
  EXPECT_EQ(seq.images(), 1);

  // Just the BOS and the image fit: all text goes, the image stays.
  seq = original;
  fit = text::fit_to_length(seq, 1 + image_tokens, image_tokens);
  EXPECT_EQ(fit.outcome, text::FitOutcome::supervision_cut);
  EXPECT_EQ(seq.input_ids, (std::vector<int64_t>{llama().bos_id(), kImageToken}));

  // Not even that: dropped, unchanged.
  seq = original;
  fit = text::fit_to_length(seq, image_tokens, image_tokens);
  EXPECT_EQ(fit.outcome, text::FitOutcome::images_do_not_fit);
  EXPECT_EQ(seq.input_ids, original.input_ids);

  text::FitCounts counts;
  for (const auto outcome : {text::FitOutcome::whole, text::FitOutcome::truncated, text::FitOutcome::supervision_cut,
                             text::FitOutcome::images_do_not_fit, text::FitOutcome::whole}) {
    counts.add({outcome, 0, 0, outcome == text::FitOutcome::truncated ? 2 : 0});
  }
  EXPECT_EQ(counts.total(), 5);
  EXPECT_EQ(counts.dropped(), 2);
  EXPECT_EQ(counts.summary(),
            "5 samples: 2 whole, 1 truncated, 1 with every supervised token cut, 1 whose images do not fit (2 "
            "supervised tokens cut)");
  EXPECT_NE(error_of([&] { text::fit_to_length(seq, 0, 1); }).find("max_length must be positive"), std::string::npos);
}

// Few-shot: a cut that reaches back past a later image keeps the image and removes the text around it.
TEST(SequenceFit, KeepsEveryImageOfAFewShotSample) {
  SKIP_WITHOUT_LLAMA_MODEL();
  const auto tmpl = ConversationTemplate::named("pathasst");
  const auto original = tmpl.tokenize(conversation({"<image>\nExample?", "Benign.", "<image>\nAnd this one?",
                                                    "Malignant.", "<image>\nThis?", "Benign."}),
                                      llama());
  ASSERT_EQ(original.images(), 3);
  const int64_t image_tokens = 4;
  // Find the second image: keep text only up to just before it.
  const auto second = std::find(std::find(original.input_ids.begin(), original.input_ids.end(), kImageToken) + 1,
                                original.input_ids.end(), kImageToken) -
                      original.input_ids.begin();
  const int64_t text_kept = second - 2;  // text tokens before the second image, BOS and the first image excluded
  auto seq = original;
  const auto fit = text::fit_to_length(seq, 1 + 3 * image_tokens + text_kept, image_tokens);
  EXPECT_EQ(seq.images(), 3);
  EXPECT_EQ(seq.positions(image_tokens), 1 + 3 * image_tokens + text_kept);
  std::vector<int64_t> expected(original.input_ids.begin(), original.input_ids.begin() + second);
  expected.push_back(kImageToken);
  expected.push_back(kImageToken);
  EXPECT_EQ(seq.input_ids, expected);
  EXPECT_EQ(fit.outcome, text::FitOutcome::truncated);  // the first reply is before the cut
  EXPECT_EQ(llama().decode(supervised_runs(seq).at(0)), "Benign.\n###");
}
