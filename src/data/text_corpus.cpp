#include "data/text_corpus.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/data_files.h"

namespace pathvlm::data {

namespace fs = std::filesystem;

namespace {

bool has_extension(const fs::path& p, const char* ext) { return p.extension() == ext; }

void read_jsonl(const std::string& file, std::ifstream& in, std::vector<TextDocument>& out) {
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const auto where = str(file, ":", number);
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    PATHVLM_CHECK(!j.is_discarded(), where, ": not a JSON object");
    PATHVLM_CHECK(j.is_object() && j.contains("text"), where, ": no field \"text\"");
    PATHVLM_CHECK(j.at("text").is_string(), where, ": field \"text\" is not a string (", j.at("text").type_name(),
                  ")");
    auto text = j.at("text").get<std::string>();
    if (!text.empty()) out.push_back({std::move(text), where});
  }
}

void read_paragraphs(const std::string& file, std::ifstream& in, std::vector<TextDocument>& out) {
  std::string line, paragraph;
  int64_t first = 0;
  auto flush = [&] {
    if (!paragraph.empty()) out.push_back({std::move(paragraph), str(file, ":", first)});
    paragraph.clear();
  };
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) {
      flush();
      continue;
    }
    if (paragraph.empty()) first = number;
    else paragraph += '\n';
    paragraph += line;
  }
  flush();
}

}  // namespace

std::vector<std::string> text_corpus_files(const std::vector<std::string>& paths) {
  return list_data_files(paths, {".jsonl", ".txt"}, "text corpus");
}

std::vector<TextDocument> read_text_corpus(const std::vector<std::string>& paths) {
  std::vector<TextDocument> docs;
  for (const auto& file : text_corpus_files(paths)) {
    std::ifstream in(file);
    PATHVLM_CHECK(in, "text corpus: cannot read '", file, "'");
    if (has_extension(file, ".jsonl")) read_jsonl(file, in, docs);
    else read_paragraphs(file, in, docs);
    PATHVLM_CHECK(!in.bad(), "text corpus: error while reading '", file, "'");
  }
  return docs;
}

}  // namespace pathvlm::data
