// Mutation fuzzing of shards of every kind and both layouts: seeded bit flips, truncations and block overwrites.
// Every damaged file goes through the readers training uses (TileDataset, TileFeatureDataset, SlideBagDataset, in
// a forked child each, so a signal is counted instead of ending the test) and through `pathvlm shards validate`
// (sealed files) or `pathvlm shards upgrade` (schema-1 files). Required: no signal, no hang, every file answered
// within seconds, and no damage to a sealed file passes unnoticed.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "core/error.h"
#include "data/image.h"
#include "data/slide_bags.h"
#include "data/tile_features.h"
#include "data/tile_shards.h"
#include "io/hdf5.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "test_util.h"

namespace fs = std::filesystem;
namespace h5 = pathvlm::h5;
namespace shards = pathvlm::shards;
namespace data = pathvlm::data;

namespace {

constexpr double kPerFileSeconds = 5.0;

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Small shards of each kind in the streaming layout (schema 1), as the writers stage them.
void stage_tiles(const std::string& path, bool raw) {
  auto f = h5::File::create(path);
  shards::write_schema(f, shards::ShardKind::Tiles);
  std::vector<std::string> ids, captions;
  std::vector<h5::Blob> images;
  torch::manual_seed(1);
  for (int i = 0; i < 8; ++i) {
    ids.push_back("tile_" + std::to_string(i));
    captions.push_back("tile " + std::to_string(i) + " of tumour stroma");
    torch::Tensor rgb = torch::randint(0, 255, {12, 12, 3}, torch::kUInt8);
    images.push_back(i % 2 ? data::encode_png(rgb) : data::encode_jpeg(rgb, 90));
  }
  f.create_strings("ids").append_strings(ids);
  f.create_strings("captions").append_strings(captions);
  if (raw) {
    h5::DatasetOptions opt;
    opt.chunk = {1, 12, 12, 3};
    f.Group::create("images", torch::kUInt8, {12, 12, 3}, opt).append(torch::randint(0, 255, {8, 12, 12, 3}, torch::kUInt8));
  } else {
    f.create_blobs("images").append_blobs(images);
  }
  f.write("labels", torch::arange(8, torch::kInt32));
}

void stage_features(const std::string& path) {
  auto f = h5::File::create(path);
  shards::write_schema(f, shards::ShardKind::TileFeatures);
  std::vector<std::string> ids;
  for (int i = 0; i < 10; ++i) ids.push_back("tile_" + std::to_string(i));
  f.create_strings("ids").append_strings(ids);
  f.Group::create("features", torch::kFloat16, {4, 8}, {{1, 4, 8}, 0, false})
      .append(torch::randn({10, 4, 8}).to(torch::kFloat16));
  f.set_attr("encoder", "clip");
}

void stage_slides(const std::string& path) {
  auto f = h5::File::create(path);
  shards::write_schema(f, shards::ShardKind::Slides);
  std::vector<std::string> ids;
  for (int s = 0; s < 3; ++s) {
    const std::string id = "slide_" + std::to_string(s);
    ids.push_back(id);
    auto g = f.create_group("slides/" + id);
    g.write("features", torch::randn({6, 16}), {{6, 16}, 0, false});
    g.write("coords", torch::arange(12, torch::kInt64).reshape({6, 2}) * 256);
    g.set_attr("patch_size", 256);
    g.set_attr("patch_size_level0", 512);
    g.set_attr("mpp", 0.5);
    g.set_attr("magnification", 20.0);
    g.set_attr("encoder", "clip");
  }
  f.write_strings("reports/slide_id", ids);
  f.write_strings("reports/text", {"Tumour.", "Stroma.", "Normal."});
}

enum class Reader { Tiles, TileFeatures, Slides };

// What a training reader makes of `path`: opens it, then reads every record; pathvlm::Error is an answer.
// Returns 0 when every record read, 1 when something was refused, 3 for any other exception (a crash in training).
int read_like_training(const std::string& path, Reader reader) {
  try {
    int64_t refused = 0;
    if (reader == Reader::Tiles) {
      auto ds = data::TileDataset::open(path);
      for (int64_t i = 0; i < ds.size(); ++i) {
        try {
          ds.read(i);
        } catch (const pathvlm::Error&) {
          ++refused;
        }
      }
    } else if (reader == Reader::TileFeatures) {
      auto ds = data::TileFeatureDataset::open(path);
      for (int64_t i = 0; i < ds.size(); ++i) {
        try {
          ds.features(i);
        } catch (const pathvlm::Error&) {
          ++refused;
        }
      }
    } else {
      data::SlideBagOptions o;
      o.max_tiles = 0;
      auto ds = data::SlideBagDataset::open({path}, o);
      for (int64_t i = 0; i < ds.size(); ++i) {
        try {
          ds.read_tiles(i, ds.tile_rows(i, true, 0, 0));
        } catch (const pathvlm::Error&) {
          ++refused;
        }
      }
    }
    return refused ? 1 : 0;
  } catch (const pathvlm::Error&) {
    return 1;
  } catch (...) {
    return 3;
  }
}

struct ChildResult {
  bool signaled = false, hung = false;
  int code = 0;
  double seconds = 0;
};

// Runs read_like_training in a forked child with a time limit.
ChildResult read_in_child(const std::string& path, Reader reader) {
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(read_like_training(path, reader));
  ChildResult r;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() - start > std::chrono::duration<double>(kPerFileSeconds)) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      r.hung = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  r.signaled = !r.hung && WIFSIGNALED(status);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// One seeded mutation of `bytes`, always a change: bit flips, a truncation, or a block of random bytes.
std::string mutate(const std::string& bytes, std::mt19937_64& rng, int which) {
  std::string out = bytes;
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  switch (which % 3) {
    case 0:
      for (size_t k = 0, flips = 1 + pick(3); k < flips; ++k) out[pick(out.size())] ^= static_cast<char>(1 << pick(8));
      break;
    case 1: out.resize(pick(out.size())); break;
    default: {
      const size_t at = pick(out.size()), n = std::min(out.size() - at, 1 + pick(512));
      for (size_t k = 0; k < n; ++k) out[at + k] = static_cast<char>(rng());
      if (out == bytes) out[at] = static_cast<char>(out[at] ^ 0x55);
    }
  }
  return out;
}

// `pathvlm <verb> FILES...` with a time limit for the whole batch; returns the exit status (-1: signal or killed).
int run_batch(const std::string& verb, const std::vector<std::string>& files, double limit_s, std::string& output) {
  std::string command = "timeout -s KILL " + std::to_string(static_cast<int>(limit_s)) + " " + PATHVLM_BINARY + " " + verb;
  for (const auto& f : files) command += " " + f;
  const int code = pathvlm::testing::run_command(command, output);
  return code >= 128 ? -1 : code;  // the shell reports a signal as 128 + its number
}

}  // namespace

TEST(ShardFuzz, NoDamagedShardCrashesHangsOrPassesSilently) {
  ASSERT_TRUE(fs::exists(PATHVLM_BINARY)) << "the pathvlm program is not built (" << PATHVLM_BINARY << ")";
  pathvlm::testing::TempDir dir("shard_fuzz");
  struct Base {
    std::string name;
    Reader reader;
    bool sealed;
    int mutations;
  };
  const std::vector<Base> bases = {{"tiles", Reader::Tiles, true, 90},         {"raw", Reader::Tiles, true, 60},
                                   {"features", Reader::TileFeatures, true, 75}, {"slides", Reader::Slides, true, 75},
                                   {"old_tiles", Reader::Tiles, false, 75},    {"old_slides", Reader::Slides, false, 75}};
  std::mt19937_64 rng(pathvlm::testing::test_seed(20261204));
  int64_t files = 0, signals = 0, hangs = 0, unclear = 0, silent = 0;
  double slowest = 0;
  std::vector<std::string> sealed_files, old_files;
  const auto start = std::chrono::steady_clock::now();
  for (const auto& base : bases) {
    SCOPED_TRACE(base.name);
    const std::string path = dir / (base.name + ".h5");
    if (base.reader == Reader::Tiles) stage_tiles(path, base.name == "raw");
    if (base.reader == Reader::TileFeatures) stage_features(path);
    if (base.reader == Reader::Slides) stage_slides(path);
    if (base.sealed) {
      shards::seal_shard(path, path);
      ASSERT_EQ(read_like_training(path, base.reader), 0) << "the undamaged shard must read";
    }
    const std::string bytes = read_file(path);
    for (int m = 0; m < base.mutations; ++m) {
      const std::string mutated = dir / (base.name + "_" + std::to_string(m) + ".h5");
      write_file(mutated, mutate(bytes, rng, m));
      ++files;
      const ChildResult r = read_in_child(mutated, base.reader);
      slowest = std::max(slowest, r.seconds);
      if (r.signaled) ++signals, ADD_FAILURE() << mutated << ": the reader died of a signal";
      if (r.hung) ++hangs, ADD_FAILURE() << mutated << ": the reader did not answer within " << kPerFileSeconds << " s";
      if (!r.signaled && !r.hung && r.code == 3) ++unclear, ADD_FAILURE() << mutated << ": an exception other than pathvlm::Error";
      // Every byte of a sealed shard is covered by a checksum: damage is always reported. A schema-1 file is
      // refused outright (no integrity header).
      if (!r.signaled && !r.hung && r.code == 0) ++silent, ADD_FAILURE() << mutated << ": the damage went unnoticed";
      (base.sealed ? sealed_files : old_files).push_back(mutated);
    }
  }
  // The real command line, many files per process (starting the program costs about a second).
  std::string out;
  for (size_t begin = 0; begin < sealed_files.size(); begin += 100) {
    const std::vector<std::string> batch(sealed_files.begin() + begin,
                                         sealed_files.begin() + std::min(sealed_files.size(), begin + 100));
    const auto t0 = std::chrono::steady_clock::now();
    const int code = run_batch("shards validate --max-report 1", batch, 60, out);
    const double per_file = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / batch.size();
    slowest = std::max(slowest, per_file);
    EXPECT_EQ(code, 1) << "validate must exit 1 (bad shards), not die:\n" << out.substr(out.size() > 3000 ? out.size() - 3000 : 0);
    if (code < 0) ++signals;
    for (const auto& f : batch) {
      EXPECT_NE(out.find(f + ": "), std::string::npos) << f << " was not answered";
      EXPECT_EQ(out.find(f + ": ok"), std::string::npos) << f << " passed validation";
    }
  }
  // Schema-1 files: validate refuses them without reading; upgrade reads them in a time-limited child.
  const int code = run_batch("shards upgrade --timeout 3", old_files, 60 + 3.0 * old_files.size(), out);
  EXPECT_TRUE(code == 0 || code == 1) << "upgrade must answer, not die:\n" << out;
  if (code < 0) ++signals;
  int64_t upgraded = 0;
  for (const auto& f : old_files) {
    EXPECT_NE(out.find(f + ": "), std::string::npos) << f << " was not answered";
    if (out.find(f + ": upgraded") != std::string::npos) {
      ++upgraded;
      EXPECT_FALSE(fs::exists(f + ".upgraded"));
    }
  }
  // What libhdf5 did to the damaged schema-1 files inside upgrade's children (contained there).
  auto count = [&](const std::string& part) {
    int64_t n = 0;
    for (size_t at = out.find(part); at != std::string::npos; at = out.find(part, at + 1)) ++n;
    return n;
  };
  const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "[ fuzz ] " << files << " damaged files (" << sealed_files.size() << " sealed, " << old_files.size()
            << " schema 1, " << upgraded << " of them still upgradable; upgrade's reader child died of a signal on "
            << count("died of signal") << " and ran out of time on " << count("did not finish") << "): " << signals
            << " signals, " << hangs
            << " hangs, " << unclear << " unclear errors, " << silent << " unnoticed; slowest answer " << slowest
            << " s; " << total << " s in all\n";
  EXPECT_EQ(signals + hangs + unclear + silent, 0);
}
