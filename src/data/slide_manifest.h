// The slide CSV manifest: one row per whole slide naming its per-slide features file (TRIDENT/CLAM layout) and
// its report, for the slide <-> report trainer (data/slide_bags.h reads the files).
//
//   slide_id,features,report,label
//   TCGA-A1,features/TCGA-A1.h5,"Invasive ductal carcinoma, grade 2.\nMargins clear.",BRCA
//   TCGA-B2,/data/feats/TCGA-B2.h5,,LUAD          <- with a report_file column instead (or as well)
//
//   for (const auto& row : read_slide_manifest("train.csv")) use(row.slide_id, row.features, row.report);
//
// The header needs `slide_id` (or `slide`), `features`, and `report` and/or `report_file` (a text file, read
// whole); `label` is optional; other columns are ignored. Relative paths resolve against the CSV's folder. A row
// with a non-empty `report` uses it, else its `report_file`. Fields follow RFC 4180 (quoted fields may hold
// commas, doubled quotes and newlines). A missing column is an error naming the CSV; a row that cannot be used
// (wrong field count, no id or features path, an unreadable report file, an empty report) keeps its `problem`
// so the reader counts it instead of stopping. Without `reports_required` (zero-shot evaluation of labelled slides)
// the report columns may be absent and a report empty.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::data {

struct SlideManifestRow {
  int64_t line = 0;      // where the row starts in the CSV (from 1, the header is line 1)
  std::string slide_id;
  std::string features;  // resolved path of the per-slide .h5
  std::string report;    // the text (from the report column or the report file), trimmed
  std::string label;
  std::string problem;   // why the row is unusable ("" when it is fine)
  std::string problem_kind;  // the problem's category for counts ("bad row", "missing report file", "empty report")
};

std::vector<SlideManifestRow> read_slide_manifest(const std::string& csv_path, bool reports_required = true);

}  // namespace pathvlm::data
