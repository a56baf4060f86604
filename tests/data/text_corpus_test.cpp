// Text corpus: JSONL documents (errors name file:line), text paragraphs, directories and globs in sorted order.
#include "data/text_corpus.h"

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


}  // namespace

TEST(TextCorpus, JsonlLinesAreDocumentsAndTextParagraphsToo) {
  TempDir dir("corpus_read");
  const auto jsonl = dir.write("a.jsonl", "{\"text\": \"first doc\", \"id\": 1}\n\n{\"text\": \"second\\ndoc\"}\n{\"text\": \"\"}\n");
  const auto txt = dir.write("b.txt", "line one\nline two\n\n  \nnext paragraph\r\n\n\n");
  auto docs = data::read_text_corpus({jsonl, txt});
  ASSERT_EQ(docs.size(), 4u);
  EXPECT_EQ(docs[0].text, "first doc");
  EXPECT_EQ(docs[0].source, jsonl + ":1");
  EXPECT_EQ(docs[1].text, "second\ndoc");
  EXPECT_EQ(docs[1].source, jsonl + ":3");
  EXPECT_EQ(docs[2].text, "line one\nline two");
  EXPECT_EQ(docs[2].source, txt + ":1");
  EXPECT_EQ(docs[3].text, "next paragraph");
  EXPECT_EQ(docs[3].source, txt + ":5");
}

TEST(TextCorpus, DirectoriesAndGlobsGiveTheirFilesSorted) {
  TempDir dir("corpus_dirs");
  dir.write("d/z.txt", "z");
  dir.write("d/sub/m.jsonl", "{\"text\": \"m\"}\n");
  dir.write("d/a.txt", "a");
  dir.write("d/skip.csv", "not text");
  auto docs = data::read_text_corpus({(dir.path / "d").string()});
  ASSERT_EQ(docs.size(), 3u);
  EXPECT_EQ(docs[0].text, "a");
  EXPECT_EQ(docs[1].text, "m");
  EXPECT_EQ(docs[2].text, "z");
  auto globbed = data::text_corpus_files({(dir.path / "d" / "*.txt").string()});
  EXPECT_EQ(globbed, (std::vector<std::string>{(dir.path / "d/a.txt").string(), (dir.path / "d/z.txt").string()}));
  EXPECT_NE(error_of([&] { data::read_text_corpus({(dir.path / "nothing*.jsonl").string()}); })
                .find("nothing*.jsonl' does not exist and matches no file"),
            std::string::npos);
  EXPECT_NE(error_of([&] { data::read_text_corpus({(dir.path / "d/skip.csv").string()}); })
                .find("skip.csv' is neither .jsonl nor .txt"),
            std::string::npos);
}

TEST(TextCorpus, BadJsonlLinesAreErrorsNamingFileAndLine) {
  TempDir dir("corpus_bad");
  const auto bad_json = dir.write("bad.jsonl", "{\"text\": \"ok\"}\n\n{\"text\": \"unterminated}\n");
  auto msg = error_of([&] { data::read_text_corpus({bad_json}); });
  EXPECT_NE(msg.find(bad_json + ":3: not a JSON object"), std::string::npos) << msg;
  const auto missing = dir.write("missing.jsonl", "{\"text\": \"ok\"}\n{\"body\": \"x\"}\n");
  msg = error_of([&] { data::read_text_corpus({missing}); });
  EXPECT_NE(msg.find(missing + ":2: no field \"text\""), std::string::npos) << msg;
  const auto number = dir.write("number.jsonl", "{\"text\": 7}\n");
  msg = error_of([&] { data::read_text_corpus({number}); });
  EXPECT_NE(msg.find(number + ":1: field \"text\" is not a string (number)"), std::string::npos) << msg;
}
