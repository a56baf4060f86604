// safetensors reader (mmap, header validated up front), writer (tmp + fsync + rename) and sharded checkpoints.
#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "io/crc32.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data are little-endian; so must the host be");

namespace pathvlm::safetensors {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";

struct DtypeEntry {
  const char* name;
  torch::ScalarType dtype;
};
constexpr std::array<DtypeEntry, 10> kDtypes = {{{"F64", torch::kFloat64},
                                                 {"F32", torch::kFloat32},
                                                 {"F16", torch::kFloat16},
                                                 {"BF16", torch::kBFloat16},
                                                 {"I64", torch::kInt64},
                                                 {"I32", torch::kInt32},
                                                 {"I16", torch::kInt16},
                                                 {"I8", torch::kInt8},
                                                 {"U8", torch::kUInt8},
                                                 {"BOOL", torch::kBool}}};
constexpr uint64_t kMaxDimension = uint64_t(1) << 62;  // any real size; products are checked for overflow
// Valid in the format but without a torch dtype in every libtorch we build against.
const std::set<std::string> kKnownUnsupported = {"U16", "U32", "U64", "F8_E5M2", "F8_E4M3"};

// Parses JSON, rejecting duplicate keys at `object_depth` (nlohmann would silently keep the last one).
json parse_json_unique(const char* begin, const char* end, int object_depth, const std::string& what,
                       std::string& duplicate) {
  std::set<std::pair<std::string, std::string>> seen;  // (enclosing key, key)
  std::string parent;
  json::parser_callback_t callback = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event != json::parse_event_t::key) return true;
    const auto& key = parsed.get_ref<const std::string&>();
    if (depth == object_depth - 1) parent = key;
    if (depth == object_depth && duplicate.empty() && !seen.emplace(parent, key).second) duplicate = key;
    return true;
  };
  try {
    return json::parse(begin, end, callback);
  } catch (const json::exception& e) {
    throw Error(str(what, ": invalid JSON: ", e.what()));
  }
}

// Why a JSON value is not a usable dimension ("" when it is one). Huge values say so, not "negative".
std::string shape_entry_problem(const json& d) {
  if (!d.is_number()) return "is not a number";
  if (d.is_number_unsigned() ? d.get<uint64_t>() > kMaxDimension : d.get<double>() > double(kMaxDimension))
    return str("is too large (at most 2^62 = ", kMaxDimension, ")");
  if (d.get<double>() < 0) return "is negative";
  if (!d.is_number_integer()) return "is not an integer";
  return "";
}

uint64_t checked_product(const std::vector<int64_t>& shape, uint64_t element_size, bool& overflow) {
  uint64_t n = element_size;
  overflow = false;
  for (int64_t d : shape) overflow |= __builtin_mul_overflow(n, static_cast<uint64_t>(d), &n);
  return n;
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::ostringstream out;
  out << "[";
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
  out << "]";
  return out.str();
}

// A private, copy-on-write mapping of a whole file.
struct Mapping {
  void* base = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (base) munmap(base, size);
  }
};

void write_all(int fd, const void* data, size_t size, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, std::min<size_t>(size, 1u << 30));
    if (n < 0 && errno == EINTR) continue;
    PATHVLM_CHECK(n > 0, "safetensors '", path, "': write failed: ", std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
}

void fsync_directory(const fs::path& dir) {
  int fd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Writes `bytes` producers to a temporary file beside `path`, fsyncs it and renames it into place.
template <class WriteBody>
void write_atomically(const std::string& path, WriteBody&& body) {
  fs::path target(path);
  std::string tmp = str(path, ".tmp.", ::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  PATHVLM_CHECK(fd >= 0, "cannot create '", tmp, "': ", std::strerror(errno));
  try {
    body(fd, tmp);
    PATHVLM_CHECK(::fsync(fd) == 0, "fsync '", tmp, "': ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw Error(str("cannot rename '", tmp, "' to '", path, "': ", std::strerror(err)));
  }
  fsync_directory(target.parent_path());
}

bool is_regular_file(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

}  // namespace

std::string dtype_name(torch::ScalarType dtype) {
  for (const auto& e : kDtypes)
    if (e.dtype == dtype) return e.name;
  throw Error(str("safetensors: tensors of dtype ", c10::toString(dtype), " cannot be stored"));
}

torch::ScalarType dtype_from_name(const std::string& name) {
  for (const auto& e : kDtypes)
    if (name == e.name) return e.dtype;
  if (kKnownUnsupported.count(name)) throw Error(str("dtype '", name, "' is valid safetensors but not supported"));
  throw Error(str("unknown dtype '", name, "' (known: F64 F32 F16 BF16 I64 I32 I16 I8 U8 BOOL)"));
}

void check_convertible(torch::ScalarType stored, torch::ScalarType wanted, const std::string& where,
                       const std::string& tensor) {
  const bool stored_float = c10::isFloatingType(stored), wanted_float = c10::isFloatingType(wanted);
  if (stored_float == wanted_float) return;
  throw Error(str(where, ": tensor '", tensor, "' is stored as ", dtype_name(stored),
                  stored_float ? " (floating point)" : " (integers)", " but the model needs ",
                  wanted_float ? "floating-point" : "integer", " values (", dtype_name(wanted),
                  "): a mislabelled dtype or the wrong tensor; refusing to reinterpret it"));
}

uint32_t checksum(const torch::Tensor& tensor) {
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  return crc32(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size());
}

// ---- File -------------------------------------------------------------------------------------------------------

struct File::State {
  std::string path;
  Mapping mapping;
  const uint8_t* data = nullptr;  // start of the data buffer inside the mapping
  std::vector<TensorInfo> tensors;
  std::map<std::string, size_t> by_name;
  Metadata metadata;
};

bool is_pickle_file(const std::string& path) {
  const auto ext = fs::path(path).extension().string();
  return ext == ".bin" || ext == ".pt" || ext == ".pth" || ext == ".ckpt";
}

std::string pickle_refusal(const std::string& what, const std::string& source) {
  return str(what, " holds PyTorch pickles, which pathvlm does not read (loading one can run code); convert them "
             "once with `python3 scripts/convert_to_safetensors.py ", source, "` (writes safetensors shards and "
             "model.safetensors.index.json beside them)");
}

File File::open(const std::string& path) {
  PATHVLM_CHECK(!is_pickle_file(path), pickle_refusal(str("'", path, "'"), path));
  auto state = std::make_shared<State>();
  state->path = path;
  const std::string what = str("safetensors '", path, "'");

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PATHVLM_CHECK(fd >= 0, what, ": cannot open: ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(str(what, ": not a regular file"));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw Error(str(what, ": truncated: ", file_size, " bytes, a safetensors file has at least 8"));
  }
  void* base = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  int map_errno = errno;
  ::close(fd);
  PATHVLM_CHECK(base != MAP_FAILED, what, ": mmap failed: ", std::strerror(map_errno));
  state->mapping.base = base;
  state->mapping.size = file_size;
  const auto* bytes = static_cast<const uint8_t*>(base);

  uint64_t header_size = 0;
  std::memcpy(&header_size, bytes, 8);
  PATHVLM_CHECK(header_size <= kMaxHeaderBytes, what, ": header length ", header_size, " exceeds the limit of ",
                kMaxHeaderBytes, " bytes (corrupt or not a safetensors file)");
  PATHVLM_CHECK(header_size <= file_size - 8, what, ": header length ", header_size,
                " runs past the end of the file (", file_size, " bytes): truncated or not a safetensors file");
  PATHVLM_CHECK(header_size >= 2, what, ": header length ", header_size, " is too small for a JSON object");
  const uint64_t data_size = file_size - 8 - header_size;
  state->data = bytes + 8 + header_size;

  const char* header = reinterpret_cast<const char*>(bytes + 8);
  std::string duplicate;
  json root = parse_json_unique(header, header + header_size, 1, str(what, ": header"), duplicate);
  PATHVLM_CHECK(duplicate.empty(), what, ": tensor '", duplicate, "' is listed twice in the header");
  PATHVLM_CHECK(root.is_object(), what, ": header is JSON ", root.type_name(), ", expected an object");

  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string& name = it.key();
    const json& entry = it.value();
    if (name == "__metadata__") {
      PATHVLM_CHECK(entry.is_object(), what, ": __metadata__ must be an object of strings");
      for (auto m = entry.begin(); m != entry.end(); ++m) {
        PATHVLM_CHECK(m.value().is_string(), what, ": __metadata__ '", m.key(), "' is ", m.value().type_name(),
                      ", expected a string");
        state->metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tensor = str(what, ": tensor '", name, "'");
    PATHVLM_CHECK(entry.is_object(), tensor, ": entry must be an object");
    PATHVLM_CHECK(entry.contains("dtype") && entry["dtype"].is_string(), tensor, ": missing string 'dtype'");
    PATHVLM_CHECK(entry.contains("shape") && entry["shape"].is_array(), tensor, ": missing array 'shape'");
    PATHVLM_CHECK(entry.contains("data_offsets") && entry["data_offsets"].is_array() &&
                      entry["data_offsets"].size() == 2,
                  tensor, ": missing 'data_offsets' [begin, end]");
    TensorInfo info;
    info.name = name;
    try {
      info.dtype = dtype_from_name(entry["dtype"].get<std::string>());
    } catch (const Error& e) {
      throw Error(str(tensor, ": ", e.what()));
    }
    for (const json& d : entry["shape"]) {
      const std::string problem = shape_entry_problem(d);
      PATHVLM_CHECK(problem.empty(), tensor, ": shape entry ", d.dump(), " ", problem);
      info.shape.push_back(d.get<int64_t>());
    }
    for (const json& o : entry["data_offsets"])
      PATHVLM_CHECK(o.is_number_unsigned(), tensor, ": data_offsets must be non-negative integers, got ",
                    entry["data_offsets"].dump());
    info.begin = entry["data_offsets"][0].get<uint64_t>();
    info.end = entry["data_offsets"][1].get<uint64_t>();
    PATHVLM_CHECK(info.begin <= info.end, tensor, ": data_offsets [", info.begin, ", ", info.end, ") end before they begin");
    PATHVLM_CHECK(info.end <= data_size, tensor, ": data_offsets [", info.begin, ", ", info.end,
                  ") lie outside the data buffer of ", data_size, " bytes (file truncated?)");
    bool overflow = false;
    uint64_t expected = checked_product(info.shape, c10::elementSize(info.dtype), overflow);
    PATHVLM_CHECK(!overflow, tensor, ": shape ", shape_string(info.shape), " is too large (", dtype_name(info.dtype),
                  " data of that shape would need more than 2^64 bytes)");
    PATHVLM_CHECK(expected == info.nbytes(), tensor, ": ", dtype_name(info.dtype), " ", shape_string(info.shape),
                  " needs ", expected, " bytes but data_offsets give ", info.nbytes());
    state->tensors.push_back(std::move(info));
  }

  // The ranges must tile the data buffer exactly: sorted by offset, no overlap, no gap, nothing after.
  std::sort(state->tensors.begin(), state->tensors.end(), [](const TensorInfo& a, const TensorInfo& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t cursor = 0;
  const TensorInfo* previous = nullptr;
  for (const auto& t : state->tensors) {
    PATHVLM_CHECK(t.begin >= cursor, what, ": tensor '", t.name, "' [", t.begin, ", ", t.end, ") overlaps tensor '",
                  previous ? previous->name : "", "' [", previous ? previous->begin : 0, ", ", cursor, ")");
    PATHVLM_CHECK(t.begin == cursor, what, ": gap of ", t.begin - cursor, " bytes before tensor '", t.name,
                  "' (data_offsets must be contiguous)");
    cursor = t.end;
    previous = &t;
  }
  PATHVLM_CHECK(cursor == data_size, what, ": ", data_size - cursor,
                " bytes after the last tensor are not described by the header");
  for (size_t i = 0; i < state->tensors.size(); ++i) state->by_name[state->tensors[i].name] = i;

  File file;
  file.state_ = std::move(state);
  return file;
}

const std::string& File::path() const { return state_->path; }
const std::vector<TensorInfo>& File::tensors() const { return state_->tensors; }
bool File::contains(const std::string& name) const { return state_->by_name.count(name) > 0; }
const Metadata& File::metadata() const { return state_->metadata; }

const TensorInfo& File::info(const std::string& name) const {
  auto it = state_->by_name.find(name);
  PATHVLM_CHECK(it != state_->by_name.end(), "safetensors '", state_->path, "': no tensor '", name, "' (",
                state_->tensors.size(), " tensors)");
  return state_->tensors[it->second];
}

torch::Tensor File::get(const std::string& name) const {
  const TensorInfo& t = info(name);
  auto options = torch::TensorOptions().dtype(t.dtype);
  auto* ptr = const_cast<uint8_t*>(state_->data + t.begin);
  torch::Tensor out;
  if (reinterpret_cast<uintptr_t>(ptr) % c10::elementSize(t.dtype) == 0) {
    auto keep_alive = state_;
    out = torch::from_blob(ptr, t.shape, [keep_alive](void*) {}, options);
  } else {
    out = torch::empty(t.shape, options);
    std::memcpy(out.data_ptr(), ptr, t.nbytes());
  }
  if (t.dtype == torch::kBool) {
    const uint8_t* b = state_->data + t.begin;
    for (uint64_t i = 0; i < t.nbytes(); ++i)
      PATHVLM_CHECK(b[i] <= 1, "safetensors '", state_->path, "': tensor '", name, "': BOOL byte ", i, " is ",
                    int(b[i]), ", not 0 or 1");
  }
  return out;
}

// ---- writer -----------------------------------------------------------------------------------------------------

void save(const std::string& path, const NamedTensors& tensors, const Metadata& metadata) {
  const std::string what = str("safetensors '", path, "'");
  std::set<std::string> names;
  std::vector<torch::Tensor> data;
  std::vector<size_t> order(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto& [name, tensor] = tensors[i];
    PATHVLM_CHECK(!name.empty() && name != "__metadata__", what, ": invalid tensor name '", name, "'");
    PATHVLM_CHECK(names.insert(name).second, what, ": tensor '", name, "' given twice");
    PATHVLM_CHECK(tensor.defined(), what, ": tensor '", name, "' is undefined");
    try {
      dtype_name(tensor.scalar_type());
    } catch (const Error& e) {
      throw Error(str(what, ": tensor '", name, "': ", e.what()));
    }
    data.push_back(tensor.detach().to(torch::kCPU).contiguous());
    order[i] = i;
  }
  // Largest elements first keeps every tensor aligned to its element size (the header is padded to 8).
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return data[a].element_size() > data[b].element_size(); });

  json header = json::object();
  json meta = json::object();
  meta["format"] = "pt";
  for (const auto& [k, v] : metadata) meta[k] = v;
  header["__metadata__"] = meta;
  uint64_t offset = 0;
  for (size_t i : order) {
    uint64_t n = data[i].numel() * data[i].element_size();
    json shape = json::array();
    for (int64_t d : data[i].sizes()) shape.push_back(d);
    header[tensors[i].first] = {{"dtype", dtype_name(data[i].scalar_type())},
                                {"shape", shape},
                                {"data_offsets", {offset, offset + n}}};
    offset += n;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  uint64_t header_size = text.size();

  write_atomically(path, [&](int fd, const std::string& tmp) {
    write_all(fd, &header_size, 8, tmp);
    write_all(fd, text.data(), text.size(), tmp);
    for (size_t i : order) write_all(fd, data[i].data_ptr(), data[i].numel() * data[i].element_size(), tmp);
  });
}

std::vector<std::string> save_sharded(const std::string& dir, const NamedTensors& tensors, uint64_t max_shard_bytes,
                                      const Metadata& metadata) {
  PATHVLM_CHECK(max_shard_bytes > 0, "safetensors: max_shard_bytes must be positive");
  std::error_code ec;
  fs::create_directories(dir, ec);
  PATHVLM_CHECK(!ec, "cannot create directory '", dir, "': ", ec.message());

  std::vector<NamedTensors> shards(1);
  uint64_t current = 0, total = 0;
  for (const auto& named : tensors) {
    uint64_t n = named.second.numel() * named.second.element_size();
    if (!shards.back().empty() && current + n > max_shard_bytes) {
      shards.emplace_back();
      current = 0;
    }
    shards.back().push_back(named);
    current += n;
    total += n;
  }

  const fs::path root(dir);
  std::vector<std::string> written;
  if (shards.size() == 1) {
    std::string single = (root / kSingleName).string();
    save(single, shards[0], metadata);
    fs::remove(root / kIndexName, ec);  // a stale index would shadow the new file
    written.push_back(single);
    return written;
  }
  json weight_map = json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    std::string file = (root / name).string();
    save(file, shards[s], metadata);
    for (const auto& named : shards[s]) weight_map[named.first] = name;
    written.push_back(file);
  }
  json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
  std::string text = index.dump(2) + "\n";
  std::string index_path = (root / kIndexName).string();
  write_atomically(index_path, [&](int fd, const std::string& tmp) { write_all(fd, text.data(), text.size(), tmp); });
  fs::remove(root / kSingleName, ec);  // a stale single file would confuse readers of the directory
  written.push_back(index_path);
  return written;
}

// ---- Checkpoint -------------------------------------------------------------------------------------------------

Checkpoint Checkpoint::open(const std::string& path_or_dir) {
  Checkpoint ckpt;
  ckpt.path_ = path_or_dir;
  std::error_code ec;
  std::string index_path;
  if (fs::is_directory(path_or_dir, ec)) {
    fs::path root(path_or_dir);
    if (is_regular_file((root / kIndexName).string())) {
      index_path = (root / kIndexName).string();
    } else if (is_regular_file((root / kSingleName).string())) {
      ckpt.files_.push_back(File::open((root / kSingleName).string()));
    } else {
      for (const auto& entry : fs::directory_iterator(root, ec))
        PATHVLM_CHECK(!is_pickle_file(entry.path().string()),
                      pickle_refusal(str("checkpoint directory '", path_or_dir, "' (", entry.path().filename().string(),
                                         ")"),
                                     path_or_dir));
      throw Error(str("checkpoint directory '", path_or_dir, "' holds neither ", kSingleName, " nor ", kIndexName));
    }
  } else if (path_or_dir.size() > 11 && path_or_dir.compare(path_or_dir.size() - 11, 11, ".index.json") == 0) {
    index_path = path_or_dir;
  } else {
    ckpt.files_.push_back(File::open(path_or_dir));
  }

  if (index_path.empty()) {
    for (const auto& t : ckpt.files_[0].tensors()) ckpt.index_[t.name] = 0;
  } else {
    const std::string what = str("safetensors index '", index_path, "'");
    std::ifstream in(index_path, std::ios::binary);
    PATHVLM_CHECK(in, what, ": cannot open");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::string duplicate;
    json index = parse_json_unique(text.data(), text.data() + text.size(), 2, what, duplicate);
    PATHVLM_CHECK(index.is_object() && index.contains("weight_map") && index["weight_map"].is_object(), what,
                  ": expected an object with a \"weight_map\" object");
    PATHVLM_CHECK(duplicate.empty(), what, ": '", duplicate, "' is listed twice");
    const json& weight_map = index["weight_map"];
    PATHVLM_CHECK(!weight_map.empty(), what, ": weight_map is empty");
    fs::path root = fs::path(index_path).parent_path();
    std::map<std::string, size_t> shard_position;
    for (auto it = weight_map.begin(); it != weight_map.end(); ++it) {
      PATHVLM_CHECK(it.value().is_string(), what, ": tensor '", it.key(), "' maps to ", it.value().dump(),
                    ", expected a shard file name");
      const std::string shard = it.value().get<std::string>();
      fs::path rel(shard);
      PATHVLM_CHECK(!shard.empty() && rel.is_relative() &&
                        std::find(rel.begin(), rel.end(), fs::path("..")) == rel.end(),
                    what, ": tensor '", it.key(), "': shard '", shard, "' must be a file beside the index");
      auto [pos, fresh] = shard_position.emplace(shard, ckpt.files_.size());
      if (fresh) ckpt.files_.push_back(File::open((root / rel).string()));
      const File& file = ckpt.files_[pos->second];
      PATHVLM_CHECK(file.contains(it.key()), what, ": tensor '", it.key(), "' is mapped to '", file.path(),
                    "', which does not contain it");
      ckpt.index_[it.key()] = pos->second;
    }
  }
  for (const auto& entry : ckpt.index_) ckpt.names_.push_back(entry.first);
  return ckpt;
}

const std::vector<std::string>& Checkpoint::names() const { return names_; }
bool Checkpoint::contains(const std::string& name) const { return index_.count(name) > 0; }
const std::vector<File>& Checkpoint::files() const { return files_; }
const std::string& Checkpoint::path() const { return path_; }
Metadata Checkpoint::metadata() const { return files_.empty() ? Metadata{} : files_[0].metadata(); }

const std::string& Checkpoint::file_of(const std::string& name) const {
  auto it = index_.find(name);
  PATHVLM_CHECK(it != index_.end(), "checkpoint '", path_, "': no tensor '", name, "' (", names_.size(), " tensors)");
  return files_[it->second].path();
}

const TensorInfo& Checkpoint::info(const std::string& name) const {
  auto it = index_.find(name);
  PATHVLM_CHECK(it != index_.end(), "checkpoint '", path_, "': no tensor '", name, "' (", names_.size(), " tensors)");
  return files_[it->second].info(name);
}

torch::Tensor Checkpoint::get(const std::string& name) const {
  auto it = index_.find(name);
  PATHVLM_CHECK(it != index_.end(), "checkpoint '", path_, "': no tensor '", name, "' (", names_.size(), " tensors)");
  return files_[it->second].get(name);
}

}  // namespace pathvlm::safetensors
