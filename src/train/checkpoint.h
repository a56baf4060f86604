// Checkpoint directories: the commit protocol, verification and retention (what goes inside is the
// Trainer's business).
//
//   <root>/step_00000120.tmp/   files written here by every rank, then (rank 0) commit():
//     trainer_state.json gets every file's size and CRC-32; files and directory fsynced; renamed to
//     step_00000120/; DONE written last, holding trainer_state.json's size and CRC-32
//     ({"trainer_state.json": {"bytes": N, "crc32": C}}); <root>/latest (a small file naming the step
//     directory) replaced atomically by rename; older complete checkpoints beyond keep_last deleted.
//
// A step directory counts only if DONE exists, trainer_state.json has the size and checksum DONE records
// (an empty DONE, as older versions wrote, is accepted with a warning), parses, and every listed file has its
// recorded size and checksum. find_latest_complete() walks from the newest down, warning about each
// broken one, so `resume: auto` falls back to the previous complete checkpoint.
//
// Partial checkpoints: model.safetensors leaves out frozen tensors that train.init_from loaded (nothing
// changed them, so their source holds their values). trainer_state.json records them under "external":
//   {"files":   [{"path": "/abs/source.safetensors", "bytes": 123, "crc32": 456}, ...],   one per file/shard
//    "tensors": {"<model name>": {"file": "/abs/source.safetensors", "name": "<name in that file>"}, ...}}
// verify() checks those files' sizes and checksums too; ModelTensors gives a checkpoint's full tensor set.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace pathvlm::train::ckpt {

std::string step_dir_name(int64_t step);            // "step_00000120"
std::string step_dir(const std::string& root, int64_t step);
std::string tmp_dir(const std::string& root, int64_t step);  // "<root>/step_00000120.tmp"

// Rank 0, before the ranks write: removes stale *.tmp directories left by crashes and creates a fresh
// tmp_dir(root, step). Returns it.
std::string begin(const std::string& root, int64_t step);

// Rank 0, after every rank's files are in tmp_dir (a barrier): records file sizes and checksums in
// `state`, writes trainer_state.json, fsyncs, renames, writes DONE, updates `latest`, applies retention.
// Returns the final directory.
std::string commit(const std::string& root, int64_t step, nlohmann::json state, int keep_last);

// Checks a step directory as described above (external source files included); returns its
// trainer_state.json. Throws pathvlm::Error naming the directory, the file and what is wrong
// (SourceChanged when only an external source file is missing or differs).
nlohmann::json verify(const std::string& dir);

// A source file of external tensors whose size or checksum differs from the record, or that is gone.
class SourceChanged : public Error {
 public:
  using Error::Error;
};

// A weights file external tensors are read from, with its size and CRC-32 when it was first loaded.
struct SourceFile {
  std::string path;  // absolute
  int64_t bytes = 0;
  uint32_t crc32 = 0;
};
// Where a model tensor's values are: a file and the tensor's name in it.
struct TensorSource {
  std::string file, name;
};
// The "external" record of trainer_state.json.
struct External {
  std::map<std::string, SourceFile> files;      // by path
  std::map<std::string, TensorSource> tensors;  // by model name
  nlohmann::json to_json() const;
  // Throws naming `where` when `j` is malformed or a tensor names a file that is not listed.
  static External from_json(const nlohmann::json& j, const std::string& where);
};
// Size and CRC-32 of `path` now.
SourceFile describe_file(const std::string& path);

// The full tensor set of weights: a checkpoint step directory (its model.safetensors plus the external
// tensors, read from their sources after checking each file's size and CRC-32; a changed or missing source
// throws SourceChanged naming the checkpoint, the file and what differs) or anything
// safetensors::Checkpoint::open takes. Names are the model's; get() reads from whichever file holds them.
class ModelTensors {
 public:
  // `check_sources` false: the caller verified this checkpoint's sources already (ckpt::verify), so their
  // checksums are not computed again (a pass over every source file, gigabytes for a frozen LLM).
  static ModelTensors open(const std::string& path, bool check_sources = true);

  const std::vector<std::string>& names() const;  // sorted
  bool contains(const std::string& name) const;
  const safetensors::TensorInfo& info(const std::string& name) const;  // its shape and dtype in its file
  torch::Tensor get(const std::string& name) const;                      // see safetensors::File::get
  TensorSource source_of(const std::string& name) const;  // the file holding `name` and its name there
  // External source files, as checked by open() (their checksums need not be computed again).
  const std::map<std::string, SourceFile>& checked_files() const { return external_.files; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  safetensors::Checkpoint own_;
  std::map<std::string, safetensors::File> sources_;  // external files by path
  External external_;
  std::vector<std::string> names_;
};

struct Found {
  std::string dir;
  int64_t step = 0;
  nlohmann::json state;
};
// The newest step directory under `root` that verifies; broken ones are reported through `warn`. When none
// verifies and some failed only because an external source changed, throws that error instead of returning
// nothing: every checkpoint of the run shares the source, and starting fresh would silently drop the run.
std::optional<Found> find_latest_complete(const std::string& root,
                                          const std::function<void(const std::string&)>& warn);

// Complete-looking (DONE present) step directories under `root`, oldest first.
std::vector<std::pair<int64_t, std::string>> list_steps(const std::string& root);

// Durable small-file write: temp file, fsync, rename, fsync of the directory.
void write_file_atomic(const std::string& path, const std::string& contents);
void fsync_path(const std::string& path);  // a file or a directory
uint32_t file_crc32(const std::string& path);

std::string base64_encode(const std::string& bytes);
std::string base64_decode(const std::string& text);

}  // namespace pathvlm::train::ckpt
