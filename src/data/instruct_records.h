// Instruction-tuning records in LLaVA's format, read from .json files (one JSON list of records) and .jsonl files
// (one record a line):
//   {"id": "000123" or 123,
//    "image": "path/a.jpg" | ["a.jpg", "b.jpg"] (several images, e.g. few-shot) | absent or null (text only),
//    "conversations": [{"from": "human", "value": "<image>\nWhat is shown?"}, {"from": "gpt", "value": "..."}]}
// `from` is "human" or "gpt", exactly as LLaVA's data and preprocess_v1 spell them (its role table has no other
// keys; "user"/"assistant" are not LLaVA data and are malformed here). Image paths are kept as written (the
// task resolves them against its image folder).
//
// A record is malformed, and skipped, when: it is not a JSON object (or, in .jsonl, not JSON); `id` is missing
// or neither a string nor a number; `image` is neither a non-empty string nor a list of them; `conversations`
// is missing, not a list, or holds an element that is not {"from": "human"|"gpt", "value": string}; the
// exchange is ill-formed (text::conversation_structure_problem: starts with a reply, speakers do not alternate,
// does not end with a reply, an empty value, "<image>" in a reply); or the number of "<image>" placeholders in
// its human turns differs from its number of images. Malformed records are counted per file, with the reasons
// of the first few; a file whose malformed fraction exceeds `max_malformed_fraction` is an error naming the
// file. A .json file that is not JSON, or not a list, is an error naming it.
// Paths are files, directories (their .json and .jsonl files) or globs (data/data_files.h); records come in the
// order of the files, then of the records, so the result is a pure function of the files. Large .json lists
// are parsed one record at a time (LLaVA's 665K-record file does not become one JSON tree in memory).
//
//   auto data = data::read_instruct_records({"llava_v1_5_mix665k.json"}, /*max_malformed_fraction=*/0.01);
//   for (const auto& r : data.records) use(r.id, r.images, r.conversation, r.source);  // source: file[index]
//   for (const auto& f : data.files) log(f.summary());
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "text/conversation.h"

namespace pathvlm::data {

struct InstructRecord {
  std::string id;                   // a number id as its decimal text
  std::vector<std::string> images;  // in order: the n-th "<image>" placeholder is images[n]
  text::Conversation conversation;  // conversation.id == id
  std::string source;               // "file[index]": the list index (from 0) in .json; "file:line" (from 1) in .jsonl
  size_t file = 0;                  // its file's place in InstructRecords::files
};

struct InstructFileReport {
  std::string file;
  int64_t records = 0;  // records in the file, malformed ones included
  int64_t malformed = 0;
  std::vector<std::string> first_problems;  // "file[index]: reason" or "file:line: reason", the first few

  static constexpr size_t kReportedProblems = 5;
  // "file: 1000 records, 3 malformed (file[4]: ...; file[17]: ...)"
  std::string summary() const;
};

struct InstructRecords {
  std::vector<InstructRecord> records;    // the well-formed records
  std::vector<InstructFileReport> files;  // one per file, in order

  int64_t malformed() const;
};

// The files `paths` name (.json and .jsonl).
std::vector<std::string> instruct_record_files(const std::vector<std::string>& paths);

// Every well-formed record of every file `paths` name, and a report per file (see above).
// `max_malformed_fraction` in [0, 1]: 0 makes any malformed record an error.
InstructRecords read_instruct_records(const std::vector<std::string>& paths, double max_malformed_fraction);

}  // namespace pathvlm::data
