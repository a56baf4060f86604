// Instruction records: .json lists and .jsonl lines in LLaVA's format (ids as strings or numbers, no image, one
// image, several images), malformed records skipped and counted per file with file:index reasons, the
// malformed-fraction threshold naming the file, whole-file errors, directories and globs.
#include "data/instruct_records.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;

namespace {


const char* kJsonList = R"([
  {"id": "000000033471", "image": "coco/train2017/000000033471.jpg",
   "conversations": [{"from": "human", "value": "What are the colors of the bus in the image?\n<image>"},
                     {"from": "gpt", "value": "The bus in the image is white and red."},
                     {"from": "human", "value": "What feature can be seen on the back of the bus?"},
                     {"from": "gpt", "value": "The back of the bus features an advertisement."}]},
  {"id": 17, "conversations": [{"from": "human", "value": "Define mitosis."}, {"from": "gpt", "value": "Cell division."}]},
  {"id": "few-shot", "image": ["a.png", "b.png"],
   "conversations": [{"from": "human", "value": "<image>\nBenign?"}, {"from": "gpt", "value": "Yes."},
                     {"from": "human", "value": "<image>\nAnd this?"}, {"from": "gpt", "value": "No."}]},
  {"id": "null-image", "image": null, "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]}
])";

}  // namespace

TEST(InstructRecords, ReadsJsonListsAndJsonlLines) {
  TempDir dir("instruct_read");
  const auto json = dir.write("llava.json", kJsonList);
  const auto jsonl = dir.write(
      "more.jsonl",
      "{\"id\": \"x1\", \"image\": \"slide_1.png\", \"conversations\": [{\"from\": \"human\", \"value\": \"<image>\"}, "
      "{\"from\": \"gpt\", \"value\": \"Colon.\"}]}\n\n"
      "{\"id\": 2.5, \"conversations\": [{\"from\": \"human\", \"value\": \"Q\"}, {\"from\": \"gpt\", \"value\": "
      "\"A\"}]}\n");
  const auto data = data::read_instruct_records({json, jsonl}, 0.0);
  ASSERT_EQ(data.records.size(), 6u);
  EXPECT_EQ(data.malformed(), 0);
  ASSERT_EQ(data.files.size(), 2u);
  EXPECT_EQ(data.files[0].file, json);
  EXPECT_EQ(data.files[0].records, 4);
  EXPECT_EQ(data.files[1].records, 2);
  EXPECT_EQ(data.files[1].summary(), jsonl + ": 2 records, 0 malformed");

  const auto& bus = data.records[0];
  EXPECT_EQ(bus.id, "000000033471");
  EXPECT_EQ(bus.conversation.id, bus.id);
  EXPECT_EQ(bus.images, (std::vector<std::string>{"coco/train2017/000000033471.jpg"}));
  EXPECT_EQ(bus.source, json + "[0]");
  ASSERT_EQ(bus.conversation.turns.size(), 4u);
  EXPECT_EQ(bus.conversation.turns[0].from, text::Speaker::human);
  EXPECT_EQ(bus.conversation.turns[0].value, "What are the colors of the bus in the image?\n<image>");
  EXPECT_EQ(bus.conversation.turns[3].from, text::Speaker::gpt);
  EXPECT_EQ(bus.conversation.turns[3].value, "The back of the bus features an advertisement.");

  EXPECT_EQ(data.records[1].id, "17");
  EXPECT_TRUE(data.records[1].images.empty());
  EXPECT_EQ(data.records[2].images, (std::vector<std::string>{"a.png", "b.png"}));
  EXPECT_EQ(data.records[2].source, json + "[2]");
  EXPECT_TRUE(data.records[3].images.empty());
  EXPECT_EQ(data.records[4].id, "x1");
  EXPECT_EQ(data.records[4].source, jsonl + ":1");
  EXPECT_EQ(data.records[5].id, "2.5");
  EXPECT_EQ(data.records[5].source, jsonl + ":3");
  EXPECT_EQ(data.records[3].file, 0u);  // data.files[0] is the .json
  EXPECT_EQ(data.records[4].file, 1u);
}

TEST(InstructRecords, MalformedRecordsAreSkippedAndCountedPerFile) {
  TempDir dir("instruct_malformed");
  const std::string ok =
      R"({"id": "ok", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]})";
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"([1, 2])", "not a JSON object (array)"},
      {R"({"conversations": []})", "no field \"id\""},
      {R"({"id": true, "conversations": []})", "field \"id\" is neither a string nor a number (boolean)"},
      {R"({"id": "i", "image": 3, "conversations": []})",
       "field \"image\" is neither a non-empty string nor a list of them"},
      {R"({"id": "i", "image": [""], "conversations": []})",
       "field \"image\" is neither a non-empty string nor a list of them"},
      {R"({"id": "i"})", "no field \"conversations\""},
      {R"({"id": "i", "conversations": {}})", "field \"conversations\" is not a list (object)"},
      {R"({"id": "i", "conversations": [{"from": "user", "value": "Q"}, {"from": "gpt", "value": "A"}]})",
       "conversations[0]: \"from\" is \"user\", not \"human\" or \"gpt\""},
      {R"({"id": "i", "conversations": [{"from": "human"}, {"from": "gpt", "value": "A"}]})",
       "conversations[0] has no string \"value\""},
      {R"({"id": "i", "conversations": []})", "conversations: it has no turns"},
      {R"({"id": "i", "conversations": [{"from": "human", "value": "Q"}]})",
       "conversations: it ends with a human turn, not a reply"},
      {R"({"id": "i", "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]})",
       "1 \"<image>\" placeholder for 0 images"},
      {R"({"id": "i", "image": ["a", "b"], "conversations": [{"from": "human", "value": "<image>\nQ"}, {"from": "gpt", "value": "A"}]})",
       "1 \"<image>\" placeholder for 2 images"},
      {R"({"id": "i", "image": "a", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "<image>"}]})",
       "conversations: turn 1 is a reply holding \"<image>\" (images go in human turns)"},
  };
  std::string jsonl;
  for (const auto& [line, why] : bad) jsonl += line + "\n" + ok + "\n";
  jsonl += "{not json\n";
  const auto file = dir.write("bad.jsonl", jsonl);
  const auto good = dir.write("good.json", "[" + ok + "]");
  const auto data = data::read_instruct_records({file, good}, 0.6);
  EXPECT_EQ(data.records.size(), bad.size() + 1);
  EXPECT_EQ(data.malformed(), static_cast<int64_t>(bad.size()) + 1);
  ASSERT_EQ(data.files.size(), 2u);
  const auto& report = data.files[0];
  EXPECT_EQ(report.records, static_cast<int64_t>(2 * bad.size() + 1));
  EXPECT_EQ(report.malformed, static_cast<int64_t>(bad.size() + 1));
  ASSERT_EQ(report.first_problems.size(), data::InstructFileReport::kReportedProblems);
  for (size_t i = 0; i < report.first_problems.size(); ++i) {
    EXPECT_EQ(report.first_problems[i], file + ":" + std::to_string(2 * i + 1) + ": " + bad[i].second);
  }
  EXPECT_EQ(data.files[1].malformed, 0);
  // Each reason, one file at a time (the report keeps the first few).
  for (size_t i = 0; i < bad.size(); ++i) {
    const auto one = dir.write("one_" + std::to_string(i) + ".jsonl", bad[i].first + "\n");
    const auto r = data::read_instruct_records({one}, 1.0);
    EXPECT_TRUE(r.records.empty()) << i;
    ASSERT_EQ(r.files[0].first_problems.size(), 1u) << i;
    EXPECT_EQ(r.files[0].first_problems[0], one + ":1: " + bad[i].second) << i;
  }
  EXPECT_EQ(data::read_instruct_records({dir.write("x.jsonl", "{not json\n")}, 1.0).files[0].first_problems[0],
            (dir.path / "x.jsonl").string() + ":1: not JSON");
  // The same in a .json list: the index is the list position.
  const auto list = dir.write("bad.json", "[" + ok + ", 7, " + ok + "]");
  const auto from_list = data::read_instruct_records({list}, 0.5);
  EXPECT_EQ(from_list.records.size(), 2u);
  EXPECT_EQ(from_list.records[1].source, list + "[2]");
  EXPECT_EQ(from_list.files[0].summary(),
            list + ": 3 records, 1 malformed (" + list + "[1]: not a JSON object (number))");
}

TEST(InstructRecords, TooManyMalformedRecordsIsAnErrorNamingTheFile) {
  TempDir dir("instruct_threshold");
  const std::string ok =
      R"({"id": "ok", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]})";
  const auto clean = dir.write("a_clean.jsonl", ok + "\n" + ok + "\n");
  const auto dirty = dir.write("b_dirty.jsonl", ok + "\n{\"id\": 1}\n" + ok + "\n" + ok + "\n");
  EXPECT_EQ(data::read_instruct_records({clean, dirty}, 0.25).records.size(), 5u);  // 1 of 4 is allowed
  const auto msg = error_of([&] { data::read_instruct_records({clean, dirty}, 0.2); });
  EXPECT_NE(msg.find("instruct data '" + dirty + "': 1 of 4 records are malformed, more than the allowed fraction 0.2"),
            std::string::npos)
      << msg;
  EXPECT_NE(msg.find(dirty + ":2: no field \"conversations\""), std::string::npos) << msg;
  EXPECT_NE(error_of([&] { data::read_instruct_records({dirty}, 0.0); }).find(dirty), std::string::npos);
  EXPECT_NE(error_of([&] { data::read_instruct_records({clean}, 1.5); }).find("must be in [0, 1]"), std::string::npos);
}

TEST(InstructRecords, WholeFileErrorsDirectoriesAndGlobs) {
  TempDir dir("instruct_files");
  const auto broken = dir.write("broken.json", "[{\"id\": 1,");
  auto msg = error_of([&] { data::read_instruct_records({broken}, 1.0); });
  EXPECT_NE(msg.find("instruct data '" + broken + "': not valid JSON"), std::string::npos) << msg;
  const auto object = dir.write("object.json", "{\"id\": 1, \"conversations\": []}");
  msg = error_of([&] { data::read_instruct_records({object}, 1.0); });
  EXPECT_NE(msg.find("instruct data '" + object + "': not a JSON list of records"), std::string::npos) << msg;

  const std::string ok =
      R"({"id": "r", "conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}]})";
  dir.write("d/z.jsonl", ok + "\n");
  dir.write("d/sub/a.json", "[" + ok + "]");
  dir.write("d/notes.txt", "not data");
  EXPECT_EQ(data::instruct_record_files({(dir.path / "d").string()}),
            (std::vector<std::string>{(dir.path / "d/sub/a.json").string(), (dir.path / "d/z.jsonl").string()}));
  EXPECT_EQ(data::instruct_record_files({(dir.path / "d/*.jsonl").string()}),
            (std::vector<std::string>{(dir.path / "d/z.jsonl").string()}));
  EXPECT_EQ(data::read_instruct_records({(dir.path / "d").string()}, 0.0).records.size(), 2u);
  EXPECT_NE(error_of([&] {
              data::instruct_record_files({(dir.path / "d/notes.txt").string()});
            }).find("instruct data: '" + (dir.path / "d/notes.txt").string() + "' is neither .json nor .jsonl"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              data::instruct_record_files({(dir.path / "none*.json").string()});
            }).find("does not exist and matches no file"),
            std::string::npos);
}
