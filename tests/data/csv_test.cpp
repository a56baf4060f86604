// parse_csv: fields, quoting, and the line each row starts on, which every manifest error names.
#include "data/csv.h"

#include <gtest/gtest.h>

#include "test_util.h"

using pathvlm::data::csv_field;
using pathvlm::data::parse_csv;

namespace {

std::vector<int64_t> lines_of(const std::string& text) {
  std::vector<int64_t> lines;
  for (const auto& row : parse_csv(text, ',', "t.csv", "manifest")) lines.push_back(row.line);
  return lines;
}

}  // namespace

TEST(Csv, RowsKeepTheirFieldsThroughQuotes) {
  const auto rows = parse_csv("id,report\na,\"one, \"\"two\"\"\nthree\"\n\n b ,\n", ',', "t.csv", "manifest");
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[1].fields, (std::vector<std::string>{"a", "one, \"two\"\nthree"}));
  EXPECT_EQ(rows[2].fields, (std::vector<std::string>{" b ", ""}));
}

// A line ends at LF, CRLF or a lone CR, inside a quoted field as outside it, so an error's line is the editor's.
TEST(Csv, RowsStartOnTheLineAnEditorShows) {
  EXPECT_EQ(lines_of("h\na\n\nb\n"), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(lines_of("h\r\na\r\n\r\nb\r\n"), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(lines_of("h\ra\r\rb"), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(lines_of("h\n\"x\ny\"\nb\n"), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(lines_of("h\r\n\"x\r\ny\"\r\nb\r\n"), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(lines_of("h\r\"x\ry\"\rb\r"), (std::vector<int64_t>{1, 2, 4}));
}

TEST(Csv, AnUnclosedQuoteNamesTheFileAndItsLine) {
  const auto error =
      pathvlm::testing::error_of([] { parse_csv("h\r\"a\r\"\rb,\"open\n", ',', "t.csv", "slide manifest"); });
  EXPECT_NE(error.find("slide manifest 't.csv': a quoted field opened on line 4 never closes"), std::string::npos)
      << error;
}

TEST(Csv, AWrittenFieldReadsBackAsItself) {
  for (const std::string field : {"plain", "a,b", "say \"hi\"", "two\nlines", "cr\ronly", " spaced ", "\"", ","}) {
    const auto rows = parse_csv(csv_field(field) + "\n", ',', "t.csv", "manifest");
    ASSERT_EQ(rows.size(), 1u) << field;
    EXPECT_EQ(rows[0].fields, std::vector<std::string>{field});
  }
}
