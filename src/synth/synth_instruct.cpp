#include "synth/synth_instruct.h"

#include <cctype>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/random.h"
#include "data/tile_shards.h"
#include "synth/synth_tiles.h"
#include "synth/tissue_texture.h"
#include "text/conversation.h"
#include "text/sentencepiece_tokenizer.h"

namespace pathvlm::synth {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

namespace {

// Quilt-LLaVA's hint after closed PathVQA questions (scripts/convert_pvqa_for_eval.py).
const char* const kTwoOptions = " Please choose from the following two options: [yes, no]";

struct Draws {
  uint64_t state;
  size_t below(size_t n) { return static_cast<size_t>((state = splitmix64(state)) % n); }
  bool chance(double p) { return static_cast<double>((state = splitmix64(state)) >> 11) * 0x1.0p-53 < p; }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[below(v.size())]; }
};

// Separate streams for each kind of record, so adding one kind leaves the others' draws unchanged.
enum Stream : uint64_t { kPhase1 = 1, kPhase2 = 2, kTextOnly = 3, kEvalQuestions = 4, kClassQuestions = 5 };

Draws draws(uint64_t seed, Stream stream, uint64_t split, uint64_t index) {
  return {splitmix64(splitmix64(splitmix64(seed ^ 0x696E737472ull) ^ (stream << 8 | split)) ^ index)};
}

struct Tile {
  std::string id, caption;
  TissueClass tissue;
};

std::vector<Tile> tiles_of(const data::TileDataset& ds) {
  std::vector<Tile> tiles;
  for (int64_t i = 0; i < ds.size(); ++i) {
    PATHVLM_CHECK(ds.label(i) >= 0 && ds.label(i) < kNumTissueClasses, "synth instruct: ", ds.where(i),
                  " has no tissue class label");
    tiles.push_back({ds.id(i), ds.caption(i), static_cast<TissueClass>(ds.label(i))});
  }
  return tiles;
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const auto pos = s.find(from);
  return pos == std::string::npos ? s : s.replace(pos, from.size(), to);
}

std::string sentence(std::string s) {
  s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s.back() == '.' ? s : s + ".";
}

// The short canonical answer naming a class ("adipose tissue"): what open evaluation questions expect.
std::string class_answer(TissueClass c) { return synth_class_synonyms(c)[0]; }

TissueClass other_class(TissueClass c, Draws& d) {
  const int offset = 1 + static_cast<int>(d.below(kNumTissueClasses - 1));
  return static_cast<TissueClass>((static_cast<int>(c) + offset) % kNumTissueClasses);
}

const std::vector<std::string>& tissue_questions() {
  static const std::vector<std::string> q = {
      synth_few_shot_question(), "Which tissue does this H&E tile show?",
      "What is the predominant tissue in this image?", "Identify the tissue in this image."};
  return q;
}

const std::vector<std::string>& feature_questions() {
  static const std::vector<std::string> q = {
      "What histological features are visible?", "Describe the morphology in this image.",
      "Which features characterise this tissue?", "What do you notice about the cells and structures here?"};
  return q;
}

const std::vector<std::string>& closed_templates() {  // {N}: a class name
  static const std::vector<std::string> q = {"Is this {N}?", "Does this image show {N}?", "Is {N} present in this tile?",
                                             "Would you classify this tissue as {N}?"};
  return q;
}

const std::vector<std::string>& text_only_templates() {
  static const std::vector<std::string> q = {"What does {N} look like in an H&E stained section?",
                                             "How would you recognise {N} under the microscope?",
                                             "Describe the typical appearance of {N}."};
  return q;
}

Json turn(const char* from, const std::string& value) { return Json{{"from", from}, {"value", value}}; }

std::string with_image(const std::string& question) { return "<image>\n" + question; }

std::string features_answer(TissueClass c, Draws& d) {
  return sentence("The image shows " + d.pick(synth_class_names(c)) + " " + d.pick(synth_class_findings(c)));
}

// A closed question naming class `asked` about a tile of class `c`, and its answer.
std::pair<std::string, std::string> closed_turn_about(TissueClass c, TissueClass asked, bool two_options, Draws& d) {
  const bool yes = asked == c;
  std::string question = replace(d.pick(closed_templates()), "{N}", d.pick(synth_class_names(asked)));
  if (two_options) return {question + kTwoOptions, yes ? "Yes." : "No."};
  return {question, yes ? "Yes, this is " + class_answer(c) + "." : "No, this is " + class_answer(c) + "."};
}

// A closed question about a tile of class `c` and its answer; the caller decides yes or no (and keeps them balanced).
std::pair<std::string, std::string> closed_turn(TissueClass c, bool yes, bool two_options, Draws& d) {
  const TissueClass asked = yes ? c : other_class(c, d);
  return closed_turn_about(c, asked, two_options, d);
}

// One phase-2 record about `tile`; closed answers alternate yes, no, ... with `closed_count` across a file.
Json conversation(const Tile& tile, const std::string& id, Draws& d, int64_t& closed_count) {
  Json turns = Json::array();
  const size_t kind = d.below(20);  // 7 open, 7 closed, 6 multi-turn
  if (kind < 7) {
    if (d.chance(0.5)) {
      turns.push_back(turn("human", with_image(d.pick(tissue_questions()))));
      turns.push_back(turn("gpt", sentence(class_answer(tile.tissue))));
    } else {
      turns.push_back(turn("human", with_image(d.pick(feature_questions()))));
      turns.push_back(turn("gpt", features_answer(tile.tissue, d)));
    }
  } else if (kind < 14) {
    auto [q, a] = closed_turn(tile.tissue, closed_count++ % 2 == 0, d.chance(0.5), d);
    turns.push_back(turn("human", with_image(q)));
    turns.push_back(turn("gpt", a));
  } else {
    turns.push_back(turn("human", with_image(d.pick(tissue_questions()))));
    turns.push_back(turn("gpt", sentence(class_answer(tile.tissue))));
    turns.push_back(turn("human", d.chance(0.5) ? "What features support that?" : d.pick(feature_questions())));
    turns.push_back(turn("gpt", features_answer(tile.tissue, d)));
    if (d.chance(0.5)) {
      auto [q, a] = closed_turn(tile.tissue, closed_count++ % 2 == 0, false, d);
      turns.push_back(turn("human", q));
      turns.push_back(turn("gpt", a));
    }
  }
  return Json{{"id", id}, {"image", tile.id}, {"conversations", turns}};
}

Json phase1_records(const std::vector<Tile>& tiles, uint64_t seed, uint64_t split, const std::string& prefix) {
  Json records = Json::array();
  for (size_t i = 0; i < tiles.size(); ++i) {
    Draws d = draws(seed, kPhase1, split, i);
    char id[64];
    std::snprintf(id, sizeof id, "%sp1-%05zu", prefix.c_str(), i);
    records.push_back(Json{{"id", id},
                           {"image", tiles[i].id},
                           {"conversations", Json::array({turn("human", with_image(d.pick(synth_describe_prompts()))),
                                                          turn("gpt", tiles[i].caption)})}});
  }
  return records;
}

Json phase2_records(const std::vector<Tile>& tiles, int64_t per_tile, uint64_t seed, uint64_t split,
                    const std::string& prefix) {
  Json records = Json::array();
  int64_t closed_count = 0;
  for (size_t i = 0; i < tiles.size(); ++i) {
    Draws d = draws(seed, kPhase2, split, i);
    for (int64_t k = 0; k < per_tile; ++k) {
      char id[64];
      std::snprintf(id, sizeof id, "%sp2-%05zu-%lld", prefix.c_str(), i, static_cast<long long>(k));
      records.push_back(conversation(tiles[i], id, d, closed_count));
    }
  }
  return records;
}

// Per tile one yes/no question naming each class in turn, "yes" for its own: the answer must come from the image,
// not from the class named. Balanced closed questions alone teach a small model this binding far more slowly.
Json class_question_records(const std::vector<Tile>& tiles, uint64_t seed) {
  Json records = Json::array();
  for (size_t i = 0; i < tiles.size(); ++i) {
    Draws d = draws(seed, kClassQuestions, 0, i);
    for (auto asked : all_tissue_classes()) {
      auto [question, answer] = closed_turn_about(tiles[i].tissue, asked, d.chance(0.5), d);
      char id[64];
      std::snprintf(id, sizeof id, "cq-%05zu-%d", i, static_cast<int>(asked));
      records.push_back(Json{{"id", id},
                             {"image", tiles[i].id},
                             {"conversations", Json::array({turn("human", with_image(question)), turn("gpt", answer)})}});
    }
  }
  return records;
}

Json text_only_records(int64_t count, uint64_t seed) {
  Json records = Json::array();
  for (int64_t i = 0; i < count; ++i) {
    Draws d = draws(seed, kTextOnly, 0, static_cast<uint64_t>(i));
    const auto c = static_cast<TissueClass>(d.below(kNumTissueClasses));
    const std::string question = replace(d.pick(text_only_templates()), "{N}", d.pick(synth_class_names(c)));
    const std::string answer = sentence("In an H&E section one typically sees " + d.pick(synth_class_names(c)) + " " +
                                        d.pick(synth_class_findings(c)));
    char id[64];
    std::snprintf(id, sizeof id, "text-%05lld", static_cast<long long>(i));
    records.push_back(Json{{"id", id}, {"conversations", Json::array({turn("human", question), turn("gpt", answer)})}});
  }
  return records;
}

void write_json(const std::string& path, const Json& value) {
  std::ofstream out(path, std::ios::trunc);
  PATHVLM_CHECK(out, "synth instruct: cannot write '", path, "'");
  out << value.dump(1) << "\n";
  PATHVLM_CHECK(out.flush(), "synth instruct: cannot write '", path, "'");
}

// Shards of one synth-tiles split; returns the manifest path.
std::string build_shards(const std::string& csv, const fs::path& out_dir, const SynthInstructOptions& o) {
  data::TileShardBuildOptions b;
  b.records = csv;
  b.out_dir = out_dir.string();
  b.threads = o.threads;
  b.progress = o.progress;
  const auto report = data::build_tile_shards(b);
  PATHVLM_CHECK(report.bad.empty(), "synth instruct: ", report.bad.size(), " tiles of '", csv,
                "' could not be sharded; see '", report.bad_records_file, "'");
  return report.manifest;
}

}  // namespace

void write_instruct_tokenizer_and_corpus(const std::vector<const nlohmann::ordered_json*>& record_lists,
                                         const std::vector<std::string>& documents,
                                         const std::vector<std::string>& extra, int vocab_size,
                                         const std::string& tokenizer_path, const std::string& corpus_path) {
  std::vector<std::string> texts;
  for (const auto* records : record_lists)
    for (const auto& record : *records)
      for (const auto& turn : record["conversations"]) texts.push_back(turn["value"].get<std::string>());
  texts.insert(texts.end(), documents.begin(), documents.end());
  // The strings of the templates the demo configs use come with every sample: weighted like that, they become few
  // tokens. (A fixed list: a template added to pathvlm must not change the demo's tokenizer.)
  const size_t turns = texts.size();
  for (const std::string tmpl_name : {"plain", "vicuna_v1", "pathasst"}) {
    const auto system = text::ConversationTemplate::named(tmpl_name).system();
    for (size_t i = 0; i < turns; ++i) texts.push_back(system + " USER: ASSISTANT: ### User: ### Assistant:");
  }
  texts.insert(texts.end(), extra.begin(), extra.end());
  text::train_sentencepiece(texts, vocab_size, tokenizer_path);

  // The language model's pretraining text (what Vicuna brings to LLaVA): every record's turns as one document.
  std::ofstream corpus(corpus_path, std::ios::trunc);
  PATHVLM_CHECK(corpus, "synth: cannot write '", corpus_path, "'");
  for (const auto* records : record_lists)
    for (const auto& record : *records) {
      std::string document;
      for (const auto& turn : record["conversations"]) {
        std::string value = turn["value"].get<std::string>();
        if (value.rfind("<image>\n", 0) == 0) value.erase(0, 8);
        document += (document.empty() ? "" : "\n") + value;
      }
      corpus << Json{{"text", document}}.dump() << "\n";
    }
  for (const auto& document : documents) corpus << Json{{"text", document}}.dump() << "\n";
  PATHVLM_CHECK(corpus.flush(), "synth: cannot write '", corpus_path, "'");
}

const char* synth_few_shot_question() { return "What type of tissue is shown in this image?"; }

const std::vector<std::string>& synth_describe_prompts() {
  static const std::vector<std::string> p = {
      "Describe this image.",
      "What is shown in this histopathology image?",
      "Give a short caption for this H&E tile.",
      "Summarize the visual content of the image.",
      "Describe the tissue in this image concisely.",
      "What do you see in this H&E stained section?",
  };
  return p;
}

SynthInstructReport synth_instruct(const SynthInstructOptions& o) {
  PATHVLM_CHECK(!o.out_dir.empty(), "synth instruct: no output folder given");
  PATHVLM_CHECK(o.train_per_class >= 1 && o.eval_per_class >= 1 && o.support_per_class >= 0,
                "synth instruct: need at least one train and one eval tile per class (support may be 0)");
  PATHVLM_CHECK(o.conversations_per_tile >= 1 && o.text_only >= 0,
                "synth instruct: conversations per tile must be >= 1 and text-only records >= 0");
  const fs::path out(o.out_dir);
  SynthTilesOptions t;
  t.out_dir = (out / "tiles").string();
  t.tile_size = o.tile_size;
  t.train_per_class = o.train_per_class;
  t.val_per_class = o.support_per_class;
  t.zeroshot_per_class = o.eval_per_class;
  t.seed = o.seed;
  t.threads = o.threads;
  t.progress = o.progress;
  const auto tiles = synth_tiles(t);

  SynthInstructReport r;
  r.train_shards = build_shards(tiles.train_csv, out / "shards" / "train", o);
  r.eval_shards = build_shards(tiles.zeroshot_csv, out / "shards" / "eval", o);
  const auto train = tiles_of(data::TileDataset::open(r.train_shards));
  const auto eval = tiles_of(data::TileDataset::open(r.eval_shards));
  std::vector<Tile> support;
  if (o.support_per_class > 0) {
    r.support_shards = build_shards(tiles.val_csv, out / "shards" / "support", o);
    support = tiles_of(data::TileDataset::open(r.support_shards));
  }
  r.train_tiles = static_cast<int64_t>(train.size());
  r.eval_tiles = static_cast<int64_t>(eval.size());
  r.support_tiles = static_cast<int64_t>(support.size());

  fs::create_directories(out / "eval");
  r.phase1 = (out / "phase1.json").string();
  r.phase2 = (out / "phase2.json").string();
  r.class_questions = (out / "phase2_classes.json").string();
  r.eval_phase1 = (out / "eval" / "phase1.json").string();
  r.eval_phase2 = (out / "eval" / "phase2.json").string();
  r.questions = (out / "eval" / "questions.jsonl").string();
  r.support = (out / "support.json").string();

  const Json phase1 = phase1_records(train, o.seed, 0, "");
  Json phase2 = phase2_records(train, o.conversations_per_tile, o.seed, 0, "");
  const Json text_only = text_only_records(o.text_only, o.seed);
  for (const auto& record : text_only) phase2.push_back(record);
  write_json(r.phase1, phase1);
  write_json(r.phase2, phase2);
  const Json class_questions = class_question_records(train, o.seed);
  write_json(r.class_questions, class_questions);
  r.class_question_records = static_cast<int64_t>(class_questions.size());
  write_json(r.eval_phase1, phase1_records(eval, o.seed, 1, "eval-"));
  write_json(r.eval_phase2, phase2_records(eval, o.conversations_per_tile, o.seed, 1, "eval-"));
  r.phase1_records = static_cast<int64_t>(phase1.size());
  r.phase2_records = static_cast<int64_t>(phase2.size());
  r.text_only_records = static_cast<int64_t>(text_only.size());

  // Per eval tile one closed and one open question. The n-th tile of class c gets a "yes" question iff n + c is
  // even: yes and no alternate within each class and balance across classes.
  std::ofstream questions(r.questions, std::ios::trunc);
  PATHVLM_CHECK(questions, "synth instruct: cannot write '", r.questions, "'");
  std::vector<int64_t> seen_of_class(kNumTissueClasses, 0);
  int64_t question_id = 0;
  for (size_t i = 0; i < eval.size(); ++i) {
    const Tile& tile = eval[i];
    const int c = static_cast<int>(tile.tissue);
    const bool yes = (seen_of_class[static_cast<size_t>(c)]++ + c) % 2 == 0;
    Draws d = draws(o.seed, kEvalQuestions, 1, i);
    const auto closed = closed_turn(tile.tissue, yes, true, d);
    questions << Json{{"question_id", question_id++}, {"image", tile.id}, {"text", closed.first},
                      {"answer", yes ? "yes" : "no"}, {"answer_type", "CLOSED"}}.dump()
              << "\n";
    questions << Json{{"question_id", question_id++}, {"image", tile.id}, {"text", d.pick(tissue_questions())},
                      {"answer", class_answer(tile.tissue)}, {"answer_type", "OPEN"}}.dump()
              << "\n";
    ++r.closed_questions, ++r.open_questions;
  }
  PATHVLM_CHECK(questions.flush(), "synth instruct: cannot write '", r.questions, "'");

  r.tokenizer = (out / "tokenizer.model").string();
  r.text = (out / "text.jsonl").string();
  write_instruct_tokenizer_and_corpus({&phase1, &phase2}, {}, {synth_few_shot_question()}, o.vocab_size, r.tokenizer,
                                      r.text);

  Json classes = Json::array();
  for (auto c : all_tissue_classes()) {
    Json ids = Json::array();
    for (const auto& tile : support)
      if (tile.tissue == c) ids.push_back(tile.id);
    classes.push_back(Json{{"label", static_cast<int>(c)}, {"class", tissue_class_key(c)}, {"name", class_answer(c)},
                           {"tiles", ids}});
  }
  write_json(r.support, Json{{"shards", o.support_per_class > 0 ? "shards/support" : ""}, {"classes", classes}});
  return r;
}

}  // namespace pathvlm::synth
