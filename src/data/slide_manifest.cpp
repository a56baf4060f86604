#include "data/slide_manifest.h"

#include <filesystem>

#include "core/error.h"
#include "data/csv.h"

namespace fs = std::filesystem;

namespace pathvlm::data {

std::vector<SlideManifestRow> read_slide_manifest(const std::string& csv_path, bool reports_required) {
  const auto rows = parse_csv(read_text_file(csv_path, "slide manifest"), ',', csv_path, "slide manifest");
  PATHVLM_CHECK(!rows.empty(), "slide manifest '", csv_path,
                "' is empty (expected a header with slide_id, features and report or report_file)");
  const auto& header = rows[0].fields;
  const int id_col = find_csv_column(header, {"slide_id", "slide"});
  const int features_col = find_csv_column(header, {"features"});
  const int report_col = find_csv_column(header, {"report"});
  const int report_file_col = find_csv_column(header, {"report_file"});
  const int label_col = find_csv_column(header, {"label"});
  if (id_col < 0 || features_col < 0 || (reports_required && report_col < 0 && report_file_col < 0)) {
    std::string names;
    for (const auto& h : header) names += (names.empty() ? "'" : ", '") + h + "'";
    throw Error(str("slide manifest '", csv_path, "': the header needs columns 'slide_id', 'features'",
                    reports_required ? " and 'report' or 'report_file'" : "", " (found ", names, ")"));
  }
  const fs::path base = fs::path(csv_path).parent_path();
  auto resolve = [&](const std::string& path) { return fs::path(path).is_relative() ? (base / path).string() : path; };

  std::vector<SlideManifestRow> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& [line, fields] = rows[r];
    SlideManifestRow row;
    row.line = line;
    auto fail = [&](const char* kind, const std::string& why) {
      row.problem_kind = kind;
      row.problem = why;
    };
    if (fields.size() != header.size()) {
      if (fields.size() > static_cast<size_t>(id_col)) row.slide_id = trim_space(fields[id_col]);
      fail("bad row", str(fields.size(), " fields, the header has ", header.size()));
      out.push_back(std::move(row));
      continue;
    }
    row.slide_id = trim_space(fields[id_col]);
    const std::string features = trim_space(fields[features_col]);
    if (!features.empty()) row.features = resolve(features);
    if (label_col >= 0) row.label = trim_space(fields[label_col]);
    if (report_col >= 0) row.report = trim_space(fields[report_col]);
    const std::string report_file = report_file_col >= 0 ? trim_space(fields[report_file_col]) : "";
    if (row.slide_id.empty()) {
      fail("bad row", "no slide_id");
    } else if (features.empty()) {
      fail("bad row", "no features path");
    } else if (row.report.empty() && !report_file.empty()) {
      try {
        row.report = trim_space(read_text_file(resolve(report_file), "report file"));
        if (row.report.empty()) fail("empty report", str("empty report (report file '", resolve(report_file), "')"));
      } catch (const Error& e) {
        fail("missing report file", e.what());
      }
    } else if (row.report.empty() && reports_required) {
      fail("empty report", "empty report");
    }
    out.push_back(std::move(row));
  }
  return out;
}

}  // namespace pathvlm::data
