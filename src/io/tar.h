// tar archives (POSIX ustar, GNU and pax, as GNU tar and Python's tarfile write them): the regular files of an
// archive and where their bytes lie, listed without reading the data, so a reader can take the members it wants
// out of a multi-gigabyte WebDataset shard.
//
//   tar::Listing l = tar::list("shard-00000.tar");
//   for (const tar::Member& m : l.members) bytes = tar::read(l.path, m);   // m.name, m.offset, m.size
//   if (!l.problem.empty()) ...   // damaged after the members listed: "cut short at byte 1536 ..."
//
// Names come from GNU long-name records, pax `path` records and the ustar prefix; pax `size` records allow members
// over 8 GiB. Directories, links and devices are left out, as WebDataset leaves them out.
#pragma once
#include <cstdint>
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

// A member's bytes; throws pathvlm::Error naming the archive and the member when they cannot be read.
std::vector<uint8_t> read(const std::string& path, const Member& member);

}  // namespace pathvlm::tar
