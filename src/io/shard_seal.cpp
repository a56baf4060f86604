#include "io/shard_seal.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>

#include "core/error.h"
#include "io/checked_rows.h"
#include "io/crc32.h"
#include "io/hdf5.h"
#include "io/shard_envelope.h"
#include "io/shard_schema.h"

namespace fs = std::filesystem;

namespace pathvlm::shards {
namespace {

constexpr int64_t kCopyBytes = int64_t(64) << 20;  // rows copied per read/write
constexpr int64_t kBlobBatch = 256;

// The record datasets of a shard of `kind` (absolute paths): they become checked rows or checked bytes.
std::set<std::string> record_datasets(const h5::File& file, ShardKind kind) {
  switch (kind) {
    case ShardKind::Tiles: return {"/images"};
    case ShardKind::TileFeatures: return {"/features"};
    case ShardKind::Slides: {
      std::set<std::string> out;
      for (const auto& id : file.group("slides").children()) out.insert("/slides/" + id + "/features");
      return out;
    }
  }
  return {};
}

class Sealer {
 public:
  Sealer(h5::File& out, std::set<std::string> records) : out_(out), records_(std::move(records)) {}

  void copy_group(const h5::Group& from, h5::Group& to) {
    from.copy_attrs_to(to);
    for (const auto& name : from.children()) {
      if (from.has_group(name)) {
        h5::Group child = to.create_group(name);
        copy_group(from.group(name), child);
        continue;
      }
      const h5::Dataset ds = from.dataset(name);
      const bool record = records_.count(ds.path()) > 0;
      if (record && ds.kind() == h5::Dataset::Kind::Blob) {
        checked_bytes(ds, to, name);
      } else if (record) {
        checked_rows(ds, to, name);
      } else if (ds.kind() == h5::Dataset::Kind::String) {
        h5::Dataset copy = to.write_strings(name, ds.read_strings());
        ds.copy_attrs_to(copy);
      } else {
        PATHVLM_CHECK(ds.kind() == h5::Dataset::Kind::Numeric, ds.where(), ": unexpected ", ds.dtype_name(),
                      " dataset (only the record datasets may hold blobs)");
        h5::Dataset copy = to.write(name, ds.read());
        ds.copy_attrs_to(copy);
      }
    }
  }

  const std::vector<Region>& regions() const { return regions_; }

 private:
  void add_region(const h5::Dataset& ds) {
    const auto s = ds.storage();
    if (s.offset >= 0 && s.bytes > 0) regions_.push_back({s.offset, s.bytes});
  }

  void checked_rows(const h5::Dataset& ds, h5::Group& to, const std::string& name) {
    const auto shape = ds.shape();
    PATHVLM_CHECK(!shape.empty(), ds.where(), ": a record dataset needs rows");
    h5::Dataset copy = to.create_contiguous(name, ds.dtype(), shape);
    ds.copy_attrs_to(copy);
    const int64_t n = shape[0];
    int64_t row_bytes = c10::elementSize(ds.dtype());
    for (size_t i = 1; i < shape.size(); ++i) row_bytes *= shape[i];
    const int64_t batch = std::max<int64_t>(1, kCopyBytes / std::max<int64_t>(1, row_bytes));
    torch::Tensor crc = torch::empty({n}, torch::kInt64);
    for (int64_t begin = 0; begin < n; begin += batch) {
      const int64_t count = std::min(batch, n - begin);
      const torch::Tensor rows = ds.read_rows(begin, count);
      copy.write_rows(begin, rows);
      crc.narrow(0, begin, count).copy_(row_checksums(rows));
    }
    to.write(name + "_crc32", crc);
    add_region(copy);
  }

  void checked_bytes(const h5::Dataset& ds, h5::Group& to, const std::string& name) {
    const int64_t n = ds.rows();
    torch::Tensor offsets = torch::zeros({n + 1}, torch::kInt64), crc = torch::empty({n}, torch::kInt64);
    int64_t* off = offsets.data_ptr<int64_t>();
    for (int64_t begin = 0; begin < n; begin += kBlobBatch) {
      const auto blobs = ds.read_blobs(begin, std::min(kBlobBatch, n - begin));
      for (size_t k = 0; k < blobs.size(); ++k) {
        const int64_t i = begin + static_cast<int64_t>(k);
        off[i + 1] = off[i] + static_cast<int64_t>(blobs[k].size());
        crc.data_ptr<int64_t>()[i] = crc32(blobs[k].data(), blobs[k].size());
      }
    }
    h5::Dataset copy = to.create_contiguous(name, torch::kUInt8, {off[n]});
    ds.copy_attrs_to(copy);
    for (int64_t begin = 0; begin < n; begin += kBlobBatch) {
      const int64_t count = std::min(kBlobBatch, n - begin);
      const auto blobs = ds.read_blobs(begin, count);
      torch::Tensor bytes = torch::empty({off[begin + count] - off[begin]}, torch::kUInt8);
      auto* p = bytes.data_ptr<uint8_t>();
      for (const auto& b : blobs) p = std::copy(b.begin(), b.end(), p);
      copy.write_rows(off[begin], bytes);
    }
    to.write(name + "_offsets", offsets);
    to.write(name + "_crc32", crc);
    add_region(copy);
  }

  h5::File& out_;
  std::set<std::string> records_;
  std::vector<Region> regions_;
};

// Writes the sealed copy of `source` to `temp`, closed and with its envelope.
void write_sealed(const std::string& source, const std::string& temp) {
  int64_t block = 0;
  std::vector<Region> regions;
  {
    const h5::File in = h5::File::open(source);
    const ShardKind kind = check_schema(in, /*each_slide=*/false);
    PATHVLM_CHECK(read_schema_version(in) == 1, "shard '", source, "' is already sealed (schema ",
                  read_schema_version(in), ")");
    std::set<std::string> records = record_datasets(in, kind);
    block = envelope_bytes(records.size());
    h5::File out = h5::File::create(temp, block);
    {
      Sealer sealer(out, std::move(records));
      sealer.copy_group(in, out);
      regions = sealer.regions();
    }
    out.set_attr(kSchemaAttr, str(kind_name(kind), "/", kSchemaVersion));
    out.close();
  }
  seal_envelope(temp, block, regions);
}

// Runs `work` in a child process: its error message, a signal or running past `timeout_s` is an Error.
void run_in_child(const std::function<void()>& work, double timeout_s, const std::string& what) {
  int fds[2];
  PATHVLM_CHECK(::pipe2(fds, O_CLOEXEC) == 0, what, ": cannot create a pipe: ", std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(fds[0]), ::close(fds[1]);
    throw Error(str(what, ": cannot fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    ::close(fds[0]);
    int code = 0;
    std::string message;
    try {
      work();
    } catch (const std::exception& e) {
      message = e.what();
      code = 1;
    }
    message.resize(std::min<size_t>(message.size(), 4000));  // fits the pipe: the parent reads after the exit
    if (!message.empty() && ::write(fds[1], message.data(), message.size()) < 0) code = 2;
    ::_exit(code);
  }
  ::close(fds[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  bool timed_out = false;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::string message(4096, '\0');
  const ssize_t n = ::read(fds[0], message.data(), message.size());
  message.resize(n > 0 ? static_cast<size_t>(n) : 0);
  ::close(fds[0]);
  PATHVLM_CHECK(!timed_out, what, ": did not finish within ", timeout_s, " s (the file is damaged?)");
  PATHVLM_CHECK(!WIFSIGNALED(status), what, ": the HDF5 reader died of signal ", WTERMSIG(status), " (",
                ::strsignal(WTERMSIG(status)), "): the file is damaged");
  PATHVLM_CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, what, ": ",
                message.empty() ? str("failed with exit code ", WEXITSTATUS(status)) : message);
}

}  // namespace

void seal_shard(const std::string& source, const std::string& target) {
  const std::string temp = target + ".sealing";
  try {
    write_sealed(source, temp);
    fs::rename(temp, target);
  } catch (const std::exception& e) {
    std::error_code ec;
    fs::remove(temp, ec);
    throw Error(str("cannot write shard '", target, "': ", e.what()));
  }
}

UpgradeResult upgrade_shard(const std::string& path, double timeout_s) {
  std::error_code ec;
  PATHVLM_CHECK(fs::is_regular_file(path, ec), "shard '", path, "': no such file");
  if (has_envelope(path)) {
    check_envelope(path);
    return UpgradeResult::AlreadyCurrent;
  }
  if (timeout_s <= 0) timeout_s = 60.0 + static_cast<double>(fs::file_size(path)) / 20e6;
  const std::string next = path + ".upgraded";
  try {
    run_in_child([&] { seal_shard(path, next); }, timeout_s, str("upgrading shard '", path, "'"));
    check_envelope(next);
    fs::rename(next, path);
  } catch (...) {
    fs::remove(next, ec);
    fs::remove(next + ".sealing", ec);
    throw;
  }
  return UpgradeResult::Upgraded;
}

}  // namespace pathvlm::shards
