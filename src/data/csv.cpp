#include "data/csv.h"

#include "core/error.h"
#include "core/text_file.h"

namespace pathvlm::data {

std::string trim_space(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n"), e = s.find_last_not_of(" \t\r\n");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

std::string csv_field(const std::string& value) {
  if (value.find_first_of(",\"\n\r") == std::string::npos) return value;
  std::string out = "\"";
  for (char c : value) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

std::string read_text_file(const std::string& path, const std::string& what) {
  std::string text;
  try {
    text = pathvlm::read_text_file(path);
  } catch (const Error& e) {
    throw Error(str(what, ": ", e.what()));
  }
  if (text.size() >= 3 && text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);  // UTF-8 BOM
  return text;
}

std::vector<CsvRow> parse_csv(const std::string& text, char sep, const std::string& path, const std::string& what) {
  std::vector<CsvRow> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, field_started = false;
  int64_t line = 1, row_line = 1;
  auto end_row = [&] {
    row.push_back(field);
    field.clear();
    field_started = false;
    const bool blank = row.size() == 1 && trim_space(row[0]).empty();
    if (!blank) rows.push_back({row_line, row});
    row.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"';
        ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        if (c == '\n' || (c == '\r' && (i + 1 == text.size() || text[i + 1] != '\n'))) ++line;
        field += c;
      }
    } else if (c == '"' && !field_started) {
      quoted = field_started = true;
    } else if (c == sep) {
      row.push_back(field);
      field.clear();
      field_started = false;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      end_row();
      row_line = ++line;
    } else {
      field += c;
      field_started = true;
    }
  }
  PATHVLM_CHECK(!quoted, what, " '", path, "': a quoted field opened on line ", row_line, " never closes");
  if (field_started || !row.empty() || !field.empty()) end_row();
  return rows;
}

int find_csv_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (const char* name : names)
    for (size_t i = 0; i < header.size(); ++i)
      if (trim_space(header[i]) == name) return static_cast<int>(i);
  return -1;
}

}  // namespace pathvlm::data
