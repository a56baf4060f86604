// The files a list of data paths names, for every reader of data sets made of files (text corpora, instruction
// data). A path is a file, a directory (its files of the accepted kinds, recursively, in sorted order) or a glob
// pattern (its matches, sorted, each expanded the same way), so the list is a pure function of the file tree.
//
//   auto files = data::list_data_files({"data/train.json", "more/", "extra/*.jsonl"}, {".json", ".jsonl"},
//                                      "instruct data");
//   // errors start with "instruct data: " and name the path
#pragma once
#include <string>
#include <vector>

namespace pathvlm::data {

// `extensions`: the accepted file kinds (".jsonl", ".txt"); a named file of another kind, a directory holding
// none, and a path that neither exists nor matches anything are errors prefixed with `what`.
std::vector<std::string> list_data_files(const std::vector<std::string>& paths,
                                         const std::vector<std::string>& extensions, const std::string& what);

// The sources of `list` joined by "::", as open_clip joins --train-data sources ("a/::b/manifest.json"), in order;
// an empty one is an error "<what> '<list>': an empty source (around a '::')".
std::vector<std::string> split_sources(const std::string& list, const std::string& what);

}  // namespace pathvlm::data
