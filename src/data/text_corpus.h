// Text corpus: the documents of a language-model data set, read from JSONL and plain-text files.
//
//   .jsonl  one JSON object per non-empty line; its string field `text` is one document. A line that is not
//           JSON, or has no string `text`, is an error naming file:line.
//   .txt    one document per paragraph: paragraphs are separated by blank lines (lines of whitespace only), so
//           a file of reports separated by blank lines gives one document per report and a file without blank
//           lines is one document. Line breaks inside a paragraph are kept.
// A path is a file, a directory (every .jsonl and .txt below it, recursively, in sorted order) or a glob
// pattern (its matches, sorted). Documents come in the order of the paths, then of the files, then of the
// lines; empty documents are skipped, so the corpus is a pure function of the files.
//
//   auto docs = data::read_text_corpus({"corpus/train.jsonl", "notes/"});
//   for (const auto& d : docs) use(d.text, d.source);   // d.source: "corpus/train.jsonl:12"
#pragma once
#include <string>
#include <vector>

namespace pathvlm::data {

struct TextDocument {
  std::string text;
  std::string source;  // "file:line" (JSONL) or "file:line" of the paragraph's first line (text)
};

// The files `paths` name (see above), in order; throws naming a path that matches nothing or a file of an
// unknown kind.
std::vector<std::string> text_corpus_files(const std::vector<std::string>& paths);

// Every document of every file `paths` name.
std::vector<TextDocument> read_text_corpus(const std::vector<std::string>& paths);

}  // namespace pathvlm::data
