// Checkpoint directories: the commit protocol, verification and retention (what goes inside is the
// Trainer's business).
//
//   <root>/step_00000120.tmp/   files written here by every rank, then (rank 0) commit():
//     trainer_state.json gets every file's size and CRC-32; files and directory fsynced; renamed to
//     step_00000120/; DONE written last; <root>/latest (a small file naming the step directory) replaced
//     atomically by rename; older complete checkpoints beyond keep_last deleted.
//
// A step directory counts only if DONE exists, trainer_state.json parses and every listed file has its
// recorded size and checksum. find_latest_complete() walks from the newest down, warning about each
// broken one, so `resume: auto` falls back to the previous complete checkpoint.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

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

// Checks a step directory as described above; returns its trainer_state.json. Throws pathvlm::Error
// naming the directory, the file and what is wrong.
nlohmann::json verify(const std::string& dir);

struct Found {
  std::string dir;
  int64_t step = 0;
  nlohmann::json state;
};
// The newest step directory under `root` that verifies; broken ones are reported through `warn`.
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
