#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "core/log.h"
#include "core/text_file.h"

namespace fs = std::filesystem;

namespace pathvlm::train::ckpt {
namespace {

constexpr const char* kStateFile = "trainer_state.json";
constexpr const char* kDoneFile = "DONE";
constexpr const char* kLatestFile = "latest";

// Step number of "step_00000120" (plain or .tmp excluded); -1 if the name is not a step directory.
int64_t parse_step_dir(const std::string& name) {
  if (name.size() != 13 || name.rfind("step_", 0) != 0) return -1;
  int64_t step = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (name[i] < '0' || name[i] > '9') return -1;
    step = step * 10 + (name[i] - '0');
  }
  return step;
}

// Throws SourceChanged unless `file` still has its recorded size and checksum.
void check_source(const std::string& dir, const SourceFile& file) {
  const std::string what = str("checkpoint '", dir, "': external source file '", file.path, "'");
  const std::string fix = " (frozen tensors of this checkpoint are read from it: restore the file, or start "
                          "fresh with checkpoint.resume=none)";
  if (!fs::exists(file.path)) throw SourceChanged(str(what, " is missing", fix));
  const auto bytes = static_cast<int64_t>(fs::file_size(file.path));
  if (bytes != file.bytes)
    throw SourceChanged(str(what, " has ", bytes, " bytes, recorded ", file.bytes, " (it changed)", fix));
  const uint32_t crc = file_crc32(file.path);
  if (crc != file.crc32)
    throw SourceChanged(str(what, " has CRC-32 ", crc, ", recorded ", file.crc32, " (it changed)", fix));
}

// trainer_state.json against the size and CRC-32 that DONE records. An empty DONE was written by pathvlm before
// DONE held them: such a checkpoint is accepted, with a warning, as it was then.
void check_state_file(const std::string& dir) {
  const std::string done_text = read_text_file(dir + "/" + kDoneFile);
  if (done_text.find_first_not_of(" \n") == std::string::npos) {
    log_warn("checkpoint '", dir, "': its DONE (from an older pathvlm) records no checksum of ", kStateFile,
             ", which is used unchecked");
    return;
  }
  int64_t bytes = 0;
  uint32_t crc = 0;
  try {
    const auto record = nlohmann::json::parse(done_text).at(kStateFile);
    bytes = record.at("bytes").get<int64_t>();
    crc = record.at("crc32").get<uint32_t>();
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("checkpoint '", dir, "': ", kDoneFile, " is corrupt (", e.what(), ")"));
  }
  const std::string path = dir + "/" + kStateFile;
  PATHVLM_CHECK(fs::exists(path), "checkpoint '", dir, "': ", kStateFile, " is missing");
  const auto actual = static_cast<int64_t>(fs::file_size(path));
  PATHVLM_CHECK(actual == bytes, "checkpoint '", dir, "': ", kStateFile, " has ", actual, " bytes, ", kDoneFile,
                " records ", bytes, " (edited or truncated after the save)");
  PATHVLM_CHECK(file_crc32(path) == crc, "checkpoint '", dir, "': ", kStateFile, " fails the CRC-32 check recorded in ",
                kDoneFile, " (edited or corrupt after the save)");
}

}  // namespace

std::string step_dir_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "step_%08lld", static_cast<long long>(step));
  return buf;
}
std::string step_dir(const std::string& root, int64_t step) { return root + "/" + step_dir_name(step); }
std::string tmp_dir(const std::string& root, int64_t step) { return step_dir(root, step) + ".tmp"; }

void fsync_path(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY);
  PATHVLM_CHECK(fd >= 0, "cannot open '", path, "' to fsync it");
  const int rc = ::fsync(fd);
  ::close(fd);
  PATHVLM_CHECK(rc == 0, "fsync of '", path, "' failed");
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    PATHVLM_CHECK(out, "cannot create '", tmp, "'");
    out << contents;
    out.flush();
    PATHVLM_CHECK(out.good(), "cannot write '", tmp, "' (disk full?)");
  }
  fsync_path(tmp);
  std::error_code ec;
  fs::rename(tmp, path, ec);
  PATHVLM_CHECK(!ec, "cannot rename '", tmp, "' to '", path, "': ", ec.message());
  fsync_path(fs::path(path).parent_path().string());
}

uint32_t file_crc32(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PATHVLM_CHECK(in, "cannot read '", path, "'");
  std::vector<char> buf(1 << 20);
  uLong crc = crc32(0L, Z_NULL, 0);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    if (in.gcount() > 0) crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), static_cast<uInt>(in.gcount()));
  }
  return static_cast<uint32_t>(crc);
}

std::string begin(const std::string& root, int64_t step) {
  fs::create_directories(root);
  for (const auto& entry : fs::directory_iterator(root)) {
    const auto name = entry.path().filename().string();
    if (entry.is_directory() && name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0)
      fs::remove_all(entry.path());
  }
  const std::string dir = tmp_dir(root, step);
  fs::create_directories(dir);
  return dir;
}

std::string commit(const std::string& root, int64_t step, nlohmann::json state, int keep_last) {
  const std::string tmp = tmp_dir(root, step), final_dir = step_dir(root, step);
  nlohmann::json files = nlohmann::json::object();
  for (const auto& entry : fs::directory_iterator(tmp)) {
    if (!entry.is_regular_file()) continue;
    const auto name = entry.path().filename().string();
    if (name == kStateFile || name == kDoneFile) continue;
    fsync_path(entry.path().string());
    files[name] = {{"bytes", static_cast<int64_t>(entry.file_size())}, {"crc32", file_crc32(entry.path().string())}};
  }
  state["files"] = files;
  const std::string state_path = tmp + "/" + kStateFile;
  write_file_atomic(state_path, state.dump(1));
  // DONE covers trainer_state.json as trainer_state.json covers the other files.
  const nlohmann::json done = {
      {kStateFile, {{"bytes", static_cast<int64_t>(fs::file_size(state_path))}, {"crc32", file_crc32(state_path)}}}};
  fsync_path(tmp);
  std::error_code ec;
  if (fs::exists(final_dir)) fs::remove_all(final_dir);  // a broken directory of the same step (no DONE)
  fs::rename(tmp, final_dir, ec);
  PATHVLM_CHECK(!ec, "checkpoint: cannot rename '", tmp, "' to '", final_dir, "': ", ec.message());
  fsync_path(root);
  write_file_atomic(final_dir + "/" + kDoneFile, done.dump() + "\n");
  write_file_atomic(root + "/" + kLatestFile, step_dir_name(step) + "\n");
  // Retention: keep the newest keep_last complete checkpoints.
  auto steps = list_steps(root);
  const int excess = static_cast<int>(steps.size()) - std::max(1, keep_last);
  for (int i = 0; i < excess; ++i) fs::remove_all(steps[i].second, ec);
  return final_dir;
}

nlohmann::json verify(const std::string& dir) {
  PATHVLM_CHECK(fs::is_directory(dir), "checkpoint '", dir, "' does not exist or is not a directory");
  PATHVLM_CHECK(fs::exists(dir + "/" + kDoneFile), "checkpoint '", dir,
                "' is incomplete: no DONE marker (the save was interrupted)");
  check_state_file(dir);
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_text_file(dir + "/" + kStateFile));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("checkpoint '", dir, "': ", kStateFile, " is not valid JSON: ", e.what()));
  }
  PATHVLM_CHECK(state.contains("files") && state.contains("step"), "checkpoint '", dir, "': ", kStateFile,
                " lacks 'files' or 'step'");
  for (const auto& [name, info] : state.at("files").items()) {
    const std::string path = dir + "/" + name;
    PATHVLM_CHECK(fs::exists(path), "checkpoint '", dir, "': file '", name, "' is missing");
    const auto bytes = static_cast<int64_t>(fs::file_size(path));
    PATHVLM_CHECK(bytes == info.at("bytes").get<int64_t>(), "checkpoint '", dir, "': file '", name, "' has ",
                  bytes, " bytes, expected ", info.at("bytes").get<int64_t>(), " (truncated?)");
    PATHVLM_CHECK(file_crc32(path) == info.at("crc32").get<uint32_t>(), "checkpoint '", dir, "': file '", name,
                  "' fails its CRC-32 check (corrupt)");
  }
  if (state.contains("external"))
    for (const auto& [path, file] : External::from_json(state["external"], dir).files) check_source(dir, file);
  return state;
}

nlohmann::json External::to_json() const {
  nlohmann::json j = {{"files", nlohmann::json::array()}, {"tensors", nlohmann::json::object()}};
  for (const auto& [path, f] : files) j["files"].push_back({{"path", f.path}, {"bytes", f.bytes}, {"crc32", f.crc32}});
  for (const auto& [name, t] : tensors) j["tensors"][name] = {{"file", t.file}, {"name", t.name}};
  return j;
}

External External::from_json(const nlohmann::json& j, const std::string& where) {
  External out;
  try {
    for (const auto& f : j.at("files"))
      out.files[f.at("path").get<std::string>()] = {f.at("path").get<std::string>(), f.at("bytes").get<int64_t>(),
                                                     f.at("crc32").get<uint32_t>()};
    for (const auto& [name, t] : j.at("tensors").items())
      out.tensors[name] = {t.at("file").get<std::string>(), t.at("name").get<std::string>()};
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("checkpoint '", where, "': ", kStateFile, ": malformed 'external' record: ", e.what()));
  }
  for (const auto& [name, t] : out.tensors)
    PATHVLM_CHECK(out.files.count(t.file), "checkpoint '", where, "': ", kStateFile, ": external tensor '", name,
                  "' names file '", t.file, "', which is not among the recorded files");
  return out;
}

SourceFile describe_file(const std::string& path) {
  const std::string absolute = fs::absolute(path).lexically_normal().string();
  return {absolute, static_cast<int64_t>(fs::file_size(absolute)), file_crc32(absolute)};
}

ModelTensors ModelTensors::open(const std::string& path, bool check_sources) {
  ModelTensors m;
  m.path_ = path;
  const bool is_step_dir = fs::is_directory(path) && fs::exists(path + "/" + kStateFile);
  m.own_ = safetensors::Checkpoint::open(is_step_dir ? path + "/model.safetensors" : path);
  m.names_ = m.own_.names();
  if (!is_step_dir) return m;
  nlohmann::json state;
  try {
    state = nlohmann::json::parse(read_text_file(path + "/" + kStateFile));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("checkpoint '", path, "': ", kStateFile, " is not valid JSON: ", e.what()));
  }
  if (!state.contains("external")) return m;
  m.external_ = External::from_json(state["external"], path);
  for (const auto& [file, record] : m.external_.files) {
    if (check_sources) check_source(path, record);
    m.sources_.emplace(file, safetensors::File::open(file));
  }
  for (const auto& [name, source] : m.external_.tensors) {
    PATHVLM_CHECK(!m.own_.contains(name), "checkpoint '", path, "': tensor '", name,
                  "' is both in model.safetensors and recorded as external");
    PATHVLM_CHECK(m.sources_.at(source.file).contains(source.name), "checkpoint '", path, "': external source file '",
                  source.file, "' lacks tensor '", source.name, "' (for '", name, "')");
    m.names_.push_back(name);
  }
  std::sort(m.names_.begin(), m.names_.end());
  return m;
}

const std::vector<std::string>& ModelTensors::names() const { return names_; }

bool ModelTensors::contains(const std::string& name) const {
  return own_.contains(name) || external_.tensors.count(name);
}

const safetensors::TensorInfo& ModelTensors::info(const std::string& name) const {
  auto it = external_.tensors.find(name);
  return it == external_.tensors.end() ? own_.info(name) : sources_.at(it->second.file).info(it->second.name);
}

torch::Tensor ModelTensors::get(const std::string& name) const {
  auto it = external_.tensors.find(name);
  return it == external_.tensors.end() ? own_.get(name) : sources_.at(it->second.file).get(it->second.name);
}

TensorSource ModelTensors::source_of(const std::string& name) const {
  auto it = external_.tensors.find(name);
  if (it != external_.tensors.end()) return it->second;
  return {fs::absolute(own_.file_of(name)).lexically_normal().string(), name};
}

std::vector<std::pair<int64_t, std::string>> list_steps(const std::string& root) {
  std::vector<std::pair<int64_t, std::string>> out;
  if (!fs::is_directory(root)) return out;
  for (const auto& entry : fs::directory_iterator(root)) {
    const int64_t step = parse_step_dir(entry.path().filename().string());
    if (step >= 0 && entry.is_directory() && fs::exists(entry.path() / kDoneFile))
      out.emplace_back(step, entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::optional<Found> find_latest_complete(const std::string& root,
                                          const std::function<void(const std::string&)>& warn) {
  // Every step directory, with or without DONE, newest first: a newer broken one is worth a warning.
  std::vector<std::pair<int64_t, std::string>> candidates;
  if (fs::is_directory(root))
    for (const auto& entry : fs::directory_iterator(root)) {
      const int64_t step = parse_step_dir(entry.path().filename().string());
      if (step >= 0 && entry.is_directory()) candidates.emplace_back(step, entry.path().string());
    }
  std::sort(candidates.rbegin(), candidates.rend());
  std::optional<SourceChanged> source_changed;
  for (const auto& [step, dir] : candidates) {
    try {
      auto state = verify(dir);
      return Found{dir, step, std::move(state)};
    } catch (const SourceChanged& e) {
      if (!source_changed) source_changed = e;
      warn(str(e.what(), "; falling back to an older checkpoint"));
    } catch (const Error& e) {
      warn(str(e.what(), "; falling back to an older checkpoint"));
    }
  }
  if (source_changed)
    throw SourceChanged(str(source_changed->what(), "; no checkpoint under '", root, "' verifies"));
  return std::nullopt;
}

std::string base64_encode(const std::string& bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint8_t(bytes[i]) << 16) | (uint8_t(bytes[i + 1]) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += alphabet[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint8_t(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= uint8_t(bytes[i + 1]) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64_decode(const std::string& text) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  PATHVLM_CHECK(text.size() % 4 == 0, "base64: length ", text.size(), " is not a multiple of 4");
  std::string out;
  for (size_t i = 0; i < text.size(); i += 4) {
    int v[4];
    for (int k = 0; k < 4; ++k) {
      v[k] = text[i + k] == '=' ? 0 : value(text[i + k]);
      PATHVLM_CHECK(v[k] >= 0, "base64: invalid character at offset ", i + k);
    }
    const uint32_t n = (v[0] << 18) | (v[1] << 12) | (v[2] << 6) | v[3];
    out += char((n >> 16) & 255);
    if (text[i + 2] != '=') out += char((n >> 8) & 255);
    if (text[i + 3] != '=') out += char(n & 255);
  }
  return out;
}

}  // namespace pathvlm::train::ckpt
