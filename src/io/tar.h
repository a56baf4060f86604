// tar archives (POSIX ustar, GNU and pax, as GNU tar and Python's tarfile write them): the regular files of an
// archive and where their bytes lie, listed without reading the data, so a reader can take the members it wants
// out of a multi-gigabyte WebDataset shard.
//
//   tar::Listing l = tar::list("shard-00000.tar");
//   tar::Reader archive(l.path);
//   for (const tar::Member& m : l.members) bytes = archive.read(m);   // m.name, m.offset, m.size
//   if (!l.problem.empty()) ...   // damaged after the members listed: "cut short at byte 1536 ..."
//
// Names come from GNU long-name records, pax `path` records and the ustar prefix; pax `size` records allow members
// over 8 GiB. Directories, links and devices are left out, as WebDataset leaves them out.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

namespace pathvlm::tar {

struct Member {
  std::string name;
  uint64_t offset = 0, size = 0;  // the member's bytes in the archive
};

struct Listing {
  std::string path;
  std::vector<Member> members;  // regular files, in archive order, each complete
  std::string problem;          // empty, or why the listing stopped early ("not a tar archive", "cut short ...")
};

// Every intact member up to the end or to the first damage, which `problem` then describes with its byte offset.
// Throws pathvlm::Error only when the file cannot be opened.
Listing list(const std::string& path);

// An archive opened once for reading many members.
class Reader {
 public:
  explicit Reader(const std::string& path);  // throws pathvlm::Error when it cannot be opened
  // A member's bytes; throws pathvlm::Error naming the archive and the member when they cannot be read.
  std::vector<uint8_t> read(const Member& member);
  uint64_t size() const { return size_; }

 private:
  friend Listing list(const std::string& path);
  bool read_at(uint64_t offset, char* out, uint64_t n);
  std::string path_;
  std::ifstream in_;
  uint64_t size_ = 0;
};

// One member's bytes (opening the archive for it).
std::vector<uint8_t> read(const std::string& path, const Member& member);

}  // namespace pathvlm::tar
