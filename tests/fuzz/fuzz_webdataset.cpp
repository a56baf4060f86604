// WebDataset tar shards from anywhere (`shards build DATA.tar`): the tar listing and the grouping into samples.
// Invariants: every member lies inside the file and reads back at its size, samples are numbered 1, 2, ... with a
// key and at least one field.
#include "core/error.h"
#include "data/webdataset.h"
#include "fuzz_util.h"

using pathvlm::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = pathvlm::fuzz::scratch_file("shard.tar", data, size);
  try {
    const auto shard = pathvlm::data::read_wds_shard(path);
    for (size_t i = 0; i < shard.samples.size(); ++i) {
      const auto& sample = shard.samples[i];
      require(sample.number == static_cast<int64_t>(i) + 1, "samples not numbered 1, 2, ...");
      require(!sample.key.empty() && !sample.fields.empty(), "a sample without a key or a field");
      for (const auto& [field, member] : sample.fields) {
        require(!field.empty(), "an empty field name");
        require(member.offset <= size && member.size <= size - member.offset, "a member beyond the file");
        require(pathvlm::tar::read(path, member).size() == member.size, "a member read back at another size");
      }
    }
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
