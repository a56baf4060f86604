// Synthetic instruction data: the files and counts, LLaVA record structure, answers that follow the tiles'
// classes, balanced closed questions, the support set (and that eval/few_shot reads it and scores the open
// answers by their class), and determinism in the seed.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "data/tile_shards.h"
#include "eval/few_shot.h"
#include "eval/support_set.h"
#include "synth/synth_instruct.h"
#include "synth/synth_tiles.h"
#include "synth/tissue_texture.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using nlohmann::json;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<json> read_jsonl(const fs::path& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) rows.push_back(json::parse(line));
  return rows;
}

synth::SynthInstructOptions small_options(const fs::path& dir, uint64_t seed) {
  synth::SynthInstructOptions o;
  o.out_dir = dir.string();
  o.tile_size = 32;
  o.train_per_class = 2;
  o.support_per_class = 1;
  o.eval_per_class = 2;
  o.conversations_per_tile = 3;
  o.text_only = 4;
  o.seed = seed;
  o.progress = false;
  return o;
}

// Tile id -> class label of a shard set.
std::map<std::string, int> labels_of(const std::string& manifest) {
  auto ds = data::TileDataset::open(manifest);
  std::map<std::string, int> labels;
  for (int64_t i = 0; i < ds.size(); ++i) labels[ds.id(i)] = ds.label(i);
  return labels;
}

std::string lower(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

bool names_class(const std::string& text, int label) {
  for (const auto& name : synth::synth_class_names(static_cast<synth::TissueClass>(label)))
    if (lower(text).find(lower(name)) != std::string::npos) return true;
  return false;
}

bool starts_with_word(const std::string& text, const std::string& word) {
  return text == word + "." || text.rfind(word + ",", 0) == 0;
}

struct SynthInstructTest : ::testing::Test {
  fs::path root = fs::temp_directory_path() / ("pathvlm_synth_instruct_" + std::to_string(::getpid()));
  void SetUp() override { fs::remove_all(root); }
  void TearDown() override { fs::remove_all(root); }
};

}  // namespace

TEST_F(SynthInstructTest, WritesShardsRecordsQuestionsAndSupportSet) {
  const auto r = synth::synth_instruct(small_options(root / "a", 3));
  EXPECT_EQ(r.train_tiles, 16);
  EXPECT_EQ(r.support_tiles, 8);
  EXPECT_EQ(r.eval_tiles, 16);
  EXPECT_EQ(r.phase1_records, 16);
  EXPECT_EQ(r.phase2_records, 16 * 3 + 4);
  EXPECT_EQ(r.text_only_records, 4);
  const auto train = labels_of(r.train_shards), eval = labels_of(r.eval_shards), support = labels_of(r.support_shards);
  for (const auto& [id, label] : eval) EXPECT_EQ(train.count(id), 0u) << id << " is both train and eval";

  // Phase 1: a describe prompt after the image, the tile's caption as the answer.
  auto train_ds = data::TileDataset::open(r.train_shards);
  std::map<std::string, std::string> captions;
  for (int64_t i = 0; i < train_ds.size(); ++i) captions[train_ds.id(i)] = train_ds.caption(i);
  const auto phase1 = json::parse(read_text(r.phase1));
  ASSERT_EQ(phase1.size(), 16u);
  const auto& prompts = synth::synth_describe_prompts();
  for (const auto& rec : phase1) {
    const std::string image = rec.at("image");
    ASSERT_EQ(captions.count(image), 1u) << image;
    const auto& turns = rec.at("conversations");
    ASSERT_EQ(turns.size(), 2u);
    EXPECT_EQ(turns[0].at("from"), "human");
    const std::string prompt = turns[0].at("value");
    ASSERT_EQ(prompt.rfind("<image>\n", 0), 0u) << prompt;
    EXPECT_NE(std::find(prompts.begin(), prompts.end(), prompt.substr(8)), prompts.end()) << prompt;
    EXPECT_EQ(turns[1].at("from"), "gpt");
    EXPECT_EQ(turns[1].at("value"), captions[image]);
  }

  // Phase 2: alternating turns, <image> once at the start of image records, single and multi-turn records,
  // text-only records without an image, and yes/no answers in balance.
  const auto phase2 = json::parse(read_text(r.phase2));
  ASSERT_EQ(phase2.size(), 52u);
  int64_t text_only = 0, multi_turn = 0, yes = 0, no = 0;
  std::set<std::string> ids;
  for (const auto& rec : phase2) {
    EXPECT_TRUE(ids.insert(rec.at("id").get<std::string>()).second);
    const auto& turns = rec.at("conversations");
    ASSERT_TRUE(turns.size() == 2 || turns.size() == 4 || turns.size() == 6) << rec.dump();
    for (size_t t = 0; t < turns.size(); ++t) {
      EXPECT_EQ(turns[t].at("from"), t % 2 == 0 ? "human" : "gpt");
      const std::string value = turns[t].at("value");
      const bool image_here = value.find("<image>") != std::string::npos;
      EXPECT_EQ(image_here, rec.contains("image") && t == 0) << rec.dump();
      if (t % 2 == 1 && starts_with_word(value, "Yes")) ++yes;
      if (t % 2 == 1 && starts_with_word(value, "No")) ++no;
    }
    if (!rec.contains("image")) {
      ++text_only;
      continue;
    }
    multi_turn += turns.size() > 2 ? 1 : 0;
    const int label = train.at(rec.at("image"));
    const std::string first_answer = turns[1].at("value");
    EXPECT_TRUE(names_class(first_answer, label) || starts_with_word(first_answer, "Yes") ||
                starts_with_word(first_answer, "No"))
        << rec.dump();
  }
  EXPECT_EQ(text_only, 4);
  EXPECT_GT(multi_turn, 0);
  EXPECT_GT(yes, 3);
  EXPECT_LE(std::abs(yes - no), 1);

  // Class questions: per train tile one yes/no question naming each class, yes exactly for its own.
  const auto class_questions = json::parse(read_text(r.class_questions));
  ASSERT_EQ(class_questions.size(), 16u * 8);
  EXPECT_EQ(r.class_question_records, 16 * 8);
  int64_t class_yes = 0;
  for (const auto& rec : class_questions) {
    const int label = train.at(rec.at("image"));
    const std::string question = rec.at("conversations")[0].at("value"), answer = rec.at("conversations")[1].at("value");
    ASSERT_EQ(question.rfind("<image>\n", 0), 0u) << question;
    EXPECT_EQ(starts_with_word(answer, "Yes"), names_class(question, label)) << question << " / " << answer;
    class_yes += starts_with_word(answer, "Yes") ? 1 : 0;
  }
  EXPECT_EQ(class_yes, 16);

  // Eval questions: one closed and one open per eval tile; closed balanced, "yes" iff the question names the
  // tile's class; open answers are the class's short name.
  const auto questions = read_jsonl(r.questions);
  ASSERT_EQ(questions.size(), 32u);
  EXPECT_EQ(r.closed_questions, 16);
  int64_t closed_yes = 0;
  for (size_t i = 0; i < questions.size(); ++i) {
    const auto& q = questions[i];
    EXPECT_EQ(q.at("question_id"), static_cast<int64_t>(i));
    const int label = eval.at(q.at("image"));
    const std::string text = q.at("text"), answer = q.at("answer");
    if (q.at("answer_type") == "CLOSED") {
      EXPECT_NE(text.find("Please choose from the following two options: [yes, no]"), std::string::npos);
      ASSERT_TRUE(answer == "yes" || answer == "no") << answer;
      closed_yes += answer == "yes";
      EXPECT_EQ(answer == "yes", names_class(text, label)) << text << " / class " << label;
    } else {
      EXPECT_EQ(q.at("answer_type"), "OPEN");
      EXPECT_EQ(answer, synth::synth_class_synonyms(static_cast<synth::TissueClass>(label))[0]);
    }
  }
  EXPECT_EQ(closed_yes, 8);
  EXPECT_EQ(json::parse(read_text(r.eval_phase1)).size(), 16u);
  EXPECT_EQ(json::parse(read_text(r.eval_phase2)).size(), 48u);

  // Support set: every class with its tile, labelled as in the support shards.
  const auto set = json::parse(read_text(r.support));
  EXPECT_EQ(set.at("shards"), "shards/support");
  ASSERT_EQ(set.at("classes").size(), 8u);
  for (const auto& c : set.at("classes")) {
    ASSERT_EQ(c.at("tiles").size(), 1u);
    EXPECT_EQ(support.at(c.at("tiles")[0]), c.at("label").get<int>());
    EXPECT_EQ(c.at("class"), synth::tissue_class_key(static_cast<synth::TissueClass>(c.at("label").get<int>())));
  }
}

TEST_F(SynthInstructTest, SupportSetServesFewShotPrompts) {
  auto o = small_options(root / "a", 4);
  o.support_per_class = 2;
  const auto r = synth::synth_instruct(o);
  const eval::SupportSet set = eval::read_support_set(r.support);
  EXPECT_EQ(set.size(), 16);
  const auto support = labels_of(set.shards);  // the resolved folder opens as the support shards
  ASSERT_EQ(support.size(), 16u);
  for (const auto& c : set.classes)
    for (const auto& tile : c.tiles) EXPECT_EQ(support.at(tile), c.label) << tile;

  // Every open eval question becomes an 8-shot prompt, and its ground truth names the query tile's class.
  const auto eval_labels = labels_of(r.eval_shards);
  int64_t open = 0;
  for (const auto& q : read_jsonl(r.questions)) {
    if (q.at("answer_type") != "OPEN") continue;
    const std::string tile = q.at("image");
    const auto p = eval::few_shot_prompt(set, 8, tile, q.at("text"), 0, open++);
    EXPECT_EQ(p.image_ids.back(), tile);
    EXPECT_EQ(text::count_image_placeholders(p.conversation), 9);
    EXPECT_EQ(eval::predicted_class(q.at("answer"), set.class_names()), set.class_of_label(eval_labels.at(tile)))
        << q.at("answer");
  }
  EXPECT_EQ(open, 16);
}

TEST_F(SynthInstructTest, DeterministicInTheSeed) {
  const auto a = synth::synth_instruct(small_options(root / "a", 5));
  const auto b = synth::synth_instruct(small_options(root / "b", 5));
  const auto c = synth::synth_instruct(small_options(root / "c", 6));
  for (auto member : {&synth::SynthInstructReport::phase1, &synth::SynthInstructReport::phase2,
                      &synth::SynthInstructReport::eval_phase2, &synth::SynthInstructReport::questions}) {
    EXPECT_EQ(read_text(a.*member), read_text(b.*member)) << a.*member;
    EXPECT_NE(read_text(a.*member), read_text(c.*member)) << a.*member;
  }
  // Tile ids name files, not seeds: the support set lists the same ids (of other pixels).
  EXPECT_EQ(read_text(a.support), read_text(c.support));
}
