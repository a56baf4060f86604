// WebDataset shards: the tar files of open_clip's `--dataset-type webdataset` and img2dataset's output, read the
// way the webdataset package reads them, for `pathvlm shards build` to turn into tiles shards.
//
// A sample is a run of consecutive members sharing a key: the member's path up to the first dot of its file name
// ("part/000123" for "part/000123.jpg"); the rest, lower-cased, names the field ("jpg", "txt", "cls", "json").
// Members without a dot in the file name and "__*__" names are left out, as webdataset leaves them out, and so are
// names ending in the dot (an empty field). A field the sample already has starts a new sample with the same key, as
// open_clip's grouping does.
//
//   for (auto& path : expand_shard_list("data/{00000..00099}.tar::extra/part-{0,1}.tar")) {
//     WdsShard shard = read_wds_shard(path);
//     for (const WdsSample& s : shard.samples) ... s.key, s.fields.at("jpg") (a tar::Member) ...
//   }
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "io/tar.h"

namespace pathvlm::data {

// The paths of a shard list as open_clip takes it: sources joined by "::", each brace-expanded like bash and
// Python's braceexpand: "{a,b}" alternatives, "{000..099}" ranges (zero-padded to the wider bound), "{a..e}",
// nested.
// Throws pathvlm::Error naming the list for unbalanced braces or a range of more than 10 million paths.
std::vector<std::string> expand_shard_list(const std::string& list);

struct WdsSample {
  std::string key;
  int64_t number = 0;                         // 1-based position among the shard's samples
  std::map<std::string, tar::Member> fields;  // by field name
};

struct WdsShard {
  std::string path;
  std::vector<WdsSample> samples;
  std::string problem;  // the archive's damage after the samples listed (tar::Listing::problem), or ""
};

// The samples of one tar file; throws pathvlm::Error only when it cannot be opened.
WdsShard read_wds_shard(const std::string& path);

}  // namespace pathvlm::data
