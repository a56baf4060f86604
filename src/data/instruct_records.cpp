#include "data/instruct_records.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/data_files.h"

namespace pathvlm::data {

namespace {

using nlohmann::json;

// Fills `record` from `j`; returns why the record is malformed, or "".
std::string parse_record(const json& j, InstructRecord& record) {
  if (!j.is_object()) return str("not a JSON object (", j.type_name(), ")");

  const auto id = j.find("id");
  if (id == j.end()) return "no field \"id\"";
  if (id->is_string()) record.id = id->get<std::string>();
  else if (id->is_number()) record.id = id->dump();
  else return str("field \"id\" is neither a string nor a number (", id->type_name(), ")");

  const auto image = j.find("image");
  if (image != j.end() && !image->is_null()) {
    const auto bad_image = str("field \"image\" is neither a non-empty string nor a list of them");
    if (image->is_string()) {
      record.images.push_back(image->get<std::string>());
    } else if (image->is_array()) {
      for (const auto& path : *image) {
        if (!path.is_string()) return bad_image;
        record.images.push_back(path.get<std::string>());
      }
    } else {
      return bad_image;
    }
    for (const auto& path : record.images)
      if (path.empty()) return bad_image;
  }

  const auto conversations = j.find("conversations");
  if (conversations == j.end()) return "no field \"conversations\"";
  if (!conversations->is_array())
    return str("field \"conversations\" is not a list (", conversations->type_name(), ")");
  record.conversation.id = record.id;
  for (size_t i = 0; i < conversations->size(); ++i) {
    const auto& turn = (*conversations)[i];
    const auto where = str("conversations[", i, "]");
    if (!turn.is_object()) return str(where, " is not an object");
    const auto from = turn.find("from"), value = turn.find("value");
    if (from == turn.end() || !from->is_string()) return str(where, " has no string \"from\"");
    if (value == turn.end() || !value->is_string()) return str(where, " has no string \"value\"");
    const auto speaker = from->get<std::string>();
    if (speaker != "human" && speaker != "gpt") {
      return str(where, ": \"from\" is \"", speaker, "\", not \"human\" or \"gpt\"");
    }
    record.conversation.turns.push_back(
        {speaker == "human" ? text::Speaker::human : text::Speaker::gpt, value->get<std::string>()});
  }
  const auto why = text::conversation_structure_problem(record.conversation, /*ends_with_reply=*/true);
  if (!why.empty()) return str("conversations: ", why);
  const auto placeholders = text::count_image_placeholders(record.conversation);
  if (placeholders != static_cast<int64_t>(record.images.size())) {
    return str(placeholders, " \"", text::kImagePlaceholder, "\" placeholder", placeholders == 1 ? "" : "s", " for ",
               record.images.size(), " image", record.images.size() == 1 ? "" : "s");
  }
  return "";
}

class FileReader {
 public:
  FileReader(const std::string& file, InstructRecords& out) : out_(out) { report_.file = file; }

  // `where`: the record's place in the file, "file[index]" in a list, "file:line" in .jsonl.
  void add(const json& j, std::string where) {
    ++report_.records;
    InstructRecord record;
    const auto why = parse_record(j, record);
    if (why.empty()) {
      record.source = std::move(where);
      record.file = out_.files.size();  // this file's report comes next
      out_.records.push_back(std::move(record));
    } else {
      malformed(where, why);
    }
  }

  // A line of .jsonl that is not JSON.
  void add_unparsed(const std::string& where, const std::string& why) {
    ++report_.records;
    malformed(where, why);
  }

  InstructFileReport finish() { return std::move(report_); }

 private:
  void malformed(const std::string& where, const std::string& why) {
    ++report_.malformed;
    if (report_.first_problems.size() < InstructFileReport::kReportedProblems) {
      report_.first_problems.push_back(str(where, ": ", why));
    }
  }

  InstructRecords& out_;
  InstructFileReport report_;
};

void read_jsonl(const std::string& file_name, std::ifstream& in, FileReader& reader) {
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    auto where = str(file_name, ":", number);
    if (j.is_discarded()) {
      reader.add_unparsed(where, "not JSON");
      continue;
    }
    reader.add(j, std::move(where));
  }
}

// The list's elements are handed to the reader as they complete and then dropped from the tree.
void read_json_list(const std::string& file, std::ifstream& in, FileReader& reader) {
  bool top_is_list = false;
  int64_t index = 0;
  const json::parser_callback_t on_event = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth == 0 && event == json::parse_event_t::array_start) top_is_list = true;
    const bool element_done = event == json::parse_event_t::object_end || event == json::parse_event_t::array_end ||
                              event == json::parse_event_t::value;
    if (depth == 1 && top_is_list && element_done) {
      reader.add(parsed, str(file, "[", index++, "]"));
      return false;
    }
    return true;
  };
  json top;
  try {
    top = json::parse(in, on_event);
  } catch (const json::exception& e) {
    throw Error(str("instruct data '", file, "': not valid JSON (", e.what(), ")"));
  }
  PATHVLM_CHECK(top_is_list, "instruct data '", file, "': not a JSON list of records (", top.type_name(), ")");
}

}  // namespace

std::string InstructFileReport::summary() const {
  std::string out = str(file, ": ", records, " records, ", malformed, " malformed");
  if (!first_problems.empty()) {
    out += " (";
    for (size_t i = 0; i < first_problems.size(); ++i) out += (i ? "; " : "") + first_problems[i];
    out += malformed > static_cast<int64_t>(first_problems.size()) ? "; ...)" : ")";
  }
  return out;
}

int64_t InstructRecords::malformed() const {
  int64_t count = 0;
  for (const auto& f : files) count += f.malformed;
  return count;
}

std::vector<std::string> instruct_record_files(const std::vector<std::string>& paths) {
  return list_data_files(paths, {".json", ".jsonl"}, "instruct data");
}

InstructRecords read_instruct_records(const std::vector<std::string>& paths, double max_malformed_fraction) {
  PATHVLM_CHECK(max_malformed_fraction >= 0.0 && max_malformed_fraction <= 1.0,
                "instruct data: the allowed fraction of malformed records must be in [0, 1] (got ",
                max_malformed_fraction, ")");
  InstructRecords out;
  for (const auto& file : instruct_record_files(paths)) {
    std::ifstream in(file, std::ios::binary);
    PATHVLM_CHECK(in, "instruct data: cannot read '", file, "'");
    FileReader reader(file, out);
    if (std::filesystem::path(file).extension() == ".jsonl") read_jsonl(file, in, reader);
    else read_json_list(file, in, reader);
    PATHVLM_CHECK(!in.bad(), "instruct data: error while reading '", file, "'");
    auto report = reader.finish();
    PATHVLM_CHECK(report.malformed <= max_malformed_fraction * static_cast<double>(report.records), "instruct data '",
                  file, "': ", report.malformed, " of ", report.records,
                  " records are malformed, more than the allowed fraction ", max_malformed_fraction, " (",
                  report.summary(), ")");
    out.files.push_back(std::move(report));
  }
  return out;
}

}  // namespace pathvlm::data
