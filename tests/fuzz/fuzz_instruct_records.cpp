// LLaVA instruction records from anywhere (.json lists or .jsonl lines, the first input byte picks). The .json
// reader splits the list one record at a time; it must agree with parsing the whole file as JSON: the same number
// of records where that gives a list, an Error where it fails. Invariants: records = well-formed + malformed, and
// every record kept is a well-formed exchange with one image per "<image>" placeholder.
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/instruct_records.h"
#include "fuzz_util.h"

using pathvlm::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool jsonl = data[0] % 2;
  const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
  const std::string path = pathvlm::fuzz::scratch_file(jsonl ? "records.jsonl" : "records.json", data + 1, size - 1);
  nlohmann::json whole = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  try {
    const auto got = pathvlm::data::read_instruct_records({path}, /*max_malformed_fraction=*/1.0);
    require(got.files.size() == 1, "one file read, not one report");
    require(got.files[0].records == static_cast<int64_t>(got.records.size()) + got.files[0].malformed,
            "records != well-formed + malformed");
    if (!jsonl) {
      require(whole.is_array(), "a .json file that is not a JSON list was read");
      require(got.files[0].records == static_cast<int64_t>(whole.size()), "the record count differs from the list's");
    }
    for (const auto& record : got.records) {
      require(!record.source.empty(), "a record without its source");
      require(pathvlm::text::conversation_structure_problem(record.conversation, true).empty(),
              "an ill-formed exchange was kept");
      require(
          pathvlm::text::count_image_placeholders(record.conversation) == static_cast<int64_t>(record.images.size()),
          "placeholders and images differ in number");
    }
  } catch (const pathvlm::Error&) {
    if (!jsonl) require(!whole.is_array(), "a JSON list was refused");
  }
  return 0;
}
