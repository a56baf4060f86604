// RFC 4180 CSV text as rows of fields, for the readers of CSV manifests (tile records, slide manifests), and the
// text files they name.
//
//   for (const auto& [line, fields] : parse_csv(text, ',', "slides.csv", "slide manifest")) ...
//   int col = find_csv_column(rows[0].fields, {"slide_id", "slide"});   // -1 when absent
//
// Quoted fields may hold separators, doubled quotes and newlines; each row keeps the line it starts on (from 1; a
// line ends at LF, CRLF or a lone CR, inside quotes too);
// blank lines are skipped; a quoted field that never closes is an error naming `what`, the file and the line.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

namespace pathvlm::data {

struct CsvRow {
  int64_t line = 0;  // where the row starts
  std::vector<std::string> fields;
};

std::vector<CsvRow> parse_csv(const std::string& text, char sep, const std::string& path, const std::string& what);

// The index of the first of `names` found in `header` (fields compared trimmed), or -1.
int find_csv_column(const std::vector<std::string>& header, std::initializer_list<const char*> names);

std::string trim_space(const std::string& s);

// One field for writing CSV: quoted (quotes doubled) when it holds a comma, a quote or a line break.
std::string csv_field(const std::string& value);

// A whole text file (a UTF-8 byte-order mark dropped); errors name `what` and the path.
std::string read_text_file(const std::string& path, const std::string& what);  // without surrounding spaces, tabs, CR and LF

}  // namespace pathvlm::data
