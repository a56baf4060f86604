// tar archives as GNU tar writes them (gnu, pax and ustar formats: long names three ways), the headers it writes only
// for huge members (base-256 and pax sizes), and damage: reported after the intact members, never a crash.
#include "io/tar.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <random>

#include "io/io_test_util.h"

namespace fs = std::filesystem;
using pathvlm::testing::read_bytes;
using pathvlm::testing::ScratchDir;
using pathvlm::testing::write_bytes;

namespace {

// A folder of files with names short and long (a 130-character file name, and a path that only fits ustar split
// into prefix and name), sizes 0, 1, 511, 512 and 513 bytes, plus a directory and a symlink tar lists but we skip.
std::map<std::string, std::string> make_tree(const std::string& root) {
  std::map<std::string, std::string> files;
  const std::string deep = std::string(70, 'd') + "/" + std::string(60, 'e');
  fs::create_directories(fs::path(root) / deep);
  fs::create_directories(fs::path(root) / "empty_dir");
  std::mt19937 rng(5);
  auto add = [&](const std::string& name, size_t size) {
    std::string bytes(size, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    write_bytes((fs::path(root) / name).string(), bytes);
    files[name] = bytes;
  };
  add("000001.jpg", 513);
  add("000001.txt", 1);
  add("000002.jpg", 512);
  add("000002.txt", 0);
  add(std::string(126, 'n') + ".txt", 511);
  add(deep + "/" + std::string(90, 'f') + ".png", 2000);
  fs::create_symlink("000001.jpg", fs::path(root) / "link.jpg");
  return files;
}

std::string run_tar(const std::string& format, const std::string& root, const std::string& out,
                    const std::string& exclude = "") {
  const std::string cmd = "tar --format=" + format + " --sort=name " +
                          (exclude.empty() ? "" : "--exclude='" + exclude + "' ") + "-cf '" + out + "' -C '" + root +
                          "' . 2>&1";
  EXPECT_EQ(std::system(cmd.c_str()), 0) << cmd;
  return out;
}

void expect_members(const pathvlm::tar::Listing& l, const std::map<std::string, std::string>& files) {
  ASSERT_EQ(l.members.size(), files.size());
  for (const auto& m : l.members) {
    const std::string name = m.name.substr(0, 2) == "./" ? m.name.substr(2) : m.name;
    ASSERT_TRUE(files.count(name)) << "unexpected member " << m.name;
    const auto bytes = pathvlm::tar::read(l.path, m);
    EXPECT_EQ(std::string(bytes.begin(), bytes.end()), files.at(name)) << m.name;
  }
}

// A ustar header block for `name` with `size` in octal, or in GNU's base-256 form; checksum filled in.
std::string header(const std::string& name, uint64_t size, char type, bool base256) {
  std::string h(512, '\0');
  std::memcpy(&h[0], name.data(), name.size());
  std::memcpy(&h[100], "0000644", 7);
  if (base256) {
    h[124] = static_cast<char>(0x80);
    for (int i = 0; i < 8; ++i) h[135 - i] = static_cast<char>((size >> (8 * i)) & 0xFF);
  } else {
    std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  }
  h[156] = type;
  std::memcpy(&h[257],
              "ustar\0"
              "00",
              8);
  std::memset(&h[148], ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : h) sum += c;
  std::snprintf(&h[148], 8, "%06o", sum);
  return h;
}

std::string padded(std::string data) { return data + std::string((512 - data.size() % 512) % 512, '\0'); }

}  // namespace

TEST(Tar, ListsEveryRegularFileGnuTarWritesInEachFormat) {
  ScratchDir dir;
  const auto all_files = make_tree(dir / "tree");
  for (const std::string format : {"gnu", "pax", "ustar"}) {
    SCOPED_TRACE(format);
    // ustar has no room for a file name over 100 characters (a longer path splits at a folder).
    auto files = all_files;
    const std::string exclude = format == "ustar" ? "nnnn*" : "";
    if (!exclude.empty()) files.erase(std::string(126, 'n') + ".txt");
    const auto l = pathvlm::tar::list(run_tar(format, dir / "tree", dir / (format + ".tar"), exclude));
    EXPECT_EQ(l.problem, "");
    expect_members(l, files);
    EXPECT_EQ(l.members.front().name, "./000001.jpg");  // archive order (sorted by name)
  }
}

TEST(Tar, ReadsBase256AndPaxSizesAndStopsWithoutEndBlocks) {
  ScratchDir dir;
  const std::string a(700, 'a'), b(5, 'b');
  // Base-256 size; then a pax header whose size and path override the next header's (which claims 0 bytes).
  const std::string pax_records =
      "10 size=5\n"
      "19 path=long/b.txt\n";
  std::string tar = header("a.bin", a.size(), '0', true) + padded(a) +
                    header("PaxHeaders/b", pax_records.size(), 'x', false) + padded(pax_records) +
                    header("b.txt", 0, '0', false) + padded(b);  // no end-of-archive blocks, as some writers leave it
  write_bytes(dir / "t.tar", tar);
  const auto l = pathvlm::tar::list(dir / "t.tar");
  EXPECT_EQ(l.problem, "");
  ASSERT_EQ(l.members.size(), 2u);
  EXPECT_EQ(l.members[0].name, "a.bin");
  EXPECT_EQ(l.members[1].name, "long/b.txt");
  const auto bytes = pathvlm::tar::read(l.path, l.members[1]);
  EXPECT_EQ(std::string(bytes.begin(), bytes.end()), b);
}

TEST(Tar, DamageIsReportedAfterTheIntactMembers) {
  ScratchDir dir;
  const auto files = make_tree(dir / "tree");
  const std::string whole = read_bytes(run_tar("gnu", dir / "tree", dir / "whole.tar"));
  const auto intact = pathvlm::tar::list(dir / "whole.tar");
  ASSERT_GE(intact.members.size(), 3u);

  // Cut inside the third member's data: the first two are listed, the problem names the cut.
  const auto& third = intact.members[2];
  write_bytes(dir / "cut.tar", whole.substr(0, third.offset + third.size / 2));
  auto l = pathvlm::tar::list(dir / "cut.tar");
  EXPECT_EQ(l.members.size(), 2u);
  EXPECT_NE(l.problem.find("cut short"), std::string::npos) << l.problem;
  EXPECT_NE(l.problem.find("at byte " + std::to_string(third.offset - 512)), std::string::npos) << l.problem;

  // A damaged header (its checksum no longer matches).
  std::string damaged = whole;
  damaged[intact.members[1].offset - 512 + 3] ^= 0x20;
  write_bytes(dir / "damaged.tar", damaged);
  l = pathvlm::tar::list(dir / "damaged.tar");
  EXPECT_EQ(l.members.size(), 1u);
  EXPECT_NE(l.problem.find("damaged header"), std::string::npos) << l.problem;

  write_bytes(dir / "gz.tar", std::string("\x1f\x8b\x08\x00", 4) + std::string(600, 'z'));
  EXPECT_NE(pathvlm::tar::list(dir / "gz.tar").problem.find("gzip-compressed"), std::string::npos);
  write_bytes(dir / "text.tar", std::string(2000, 'x'));
  EXPECT_NE(pathvlm::tar::list(dir / "text.tar").problem.find("not a tar archive"), std::string::npos);
  write_bytes(dir / "empty.tar", "");
  EXPECT_NE(pathvlm::tar::list(dir / "empty.tar").problem.find("empty file"), std::string::npos);
  EXPECT_NE(
      pathvlm::testing::error_of([&] { pathvlm::tar::list(dir / "absent.tar"); }).find("absent.tar': cannot open"),
      std::string::npos);
  EXPECT_NE(pathvlm::testing::error_of([&] { pathvlm::tar::read(dir / "cut.tar", third); }).find("cannot read member"),
            std::string::npos);
}

// Random damage (bytes changed, the file cut anywhere): the listing never throws, and what it lists lies in the file.
TEST(Tar, RandomDamageNeverCrashes) {
  ScratchDir dir;
  make_tree(dir / "tree");
  const std::string whole = read_bytes(run_tar("pax", dir / "tree", dir / "whole.tar"));
  std::mt19937_64 rng(pathvlm::testing::test_seed(11));
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes = whole;
    for (int k = rng() % 6; k > 0; --k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    if (rng() % 2) bytes.resize(rng() % bytes.size());
    write_bytes(dir / "t.tar", bytes);
    pathvlm::tar::Listing l;
    ASSERT_NO_THROW(l = pathvlm::tar::list(dir / "t.tar")) << "trial " << trial;
    for (const auto& m : l.members) {
      ASSERT_LE(m.offset + m.size, bytes.size()) << "trial " << trial << " member " << m.name;
      EXPECT_EQ(pathvlm::tar::read(l.path, m).size(), m.size);
    }
  }
}
