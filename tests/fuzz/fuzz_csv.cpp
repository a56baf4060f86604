// CSV manifests from anywhere (slide lists, tile records, reports). Invariants: rows start on increasing lines
// within the text (a line ends at LF, CRLF or a lone CR), each row has at least one field, and a field written
// with csv_field reads back as itself.
#include "core/error.h"
#include "data/csv.h"
#include "fuzz_util.h"

using pathvlm::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const char sep = data[0] % 2 ? '\t' : ',';
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  try {
    const auto rows = pathvlm::data::parse_csv(text, sep, "fuzz.csv", "slide manifest");
    int64_t previous = 0;
    int64_t lines = 1;  // line ends: LF, CRLF, a lone CR
    for (size_t i = 0; i < text.size(); ++i)
      lines += text[i] == '\n' || (text[i] == '\r' && (i + 1 == text.size() || text[i + 1] != '\n'));
    for (const auto& row : rows) {
      require(row.line > previous && row.line <= lines, "rows out of order or beyond the text");
      require(!row.fields.empty(), "a row without fields");
      previous = row.line;
    }
    if (sep == ',' && !rows.empty()) {
      for (const auto& field : rows.front().fields) {
        const auto back = pathvlm::data::parse_csv(pathvlm::data::csv_field(field) + "\n", ',', "back.csv", "field");
        if (field.find_first_not_of(" \t\r\n") == std::string::npos) continue;  // a blank line is skipped
        require(back.size() == 1 && back[0].fields == std::vector<std::string>{field},
                "a field written with csv_field read back otherwise");
      }
    }
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
