// WebDataset shards: shard lists expanded as bash expands them (as does Python's braceexpand, which open_clip uses),
// members grouped into samples as the webdataset package groups them, and `shards build` on real tars (GNU tar) into
// tiles shards: captions, labels, ids, image bytes, bad samples listed, a damaged tar keeping what came before the
// damage.
#include "data/webdataset.h"

#include <gtest/gtest.h>
#include <pathvlm/build_info.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/image.h"
#include "data/tile_shards.h"
#include "synth/tissue_texture.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm::data;
using pathvlm::testing::error_of;
using pathvlm::testing::run_command;
using pathvlm::testing::TempDir;

namespace {

std::string command_output(const std::string& cmd) {
  std::string out;
  EXPECT_EQ(run_command(cmd, out), 0) << cmd << "\n" << out;
  return out;
}

// `tar` of the folder's files in name order, with the folder's paths relative to it ("./a.jpg").
void make_tar(const std::string& folder, const std::string& out) {
  command_output("tar --format=gnu --sort=name -cf '" + out + "' -C '" + folder + "' .");
}

void write_text(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

}  // namespace

TEST(WebDataset, ExpandsShardListsAsBashExpandsBraces) {
  for (const std::string pattern : {"data/{00000..00012}.tar", "s{0..3}-{a,b}.tar", "{9..11}", "{10..0..5}",
                                    "x{a,{b,c}d}y", "{007..7}", "plain.tar", "{1..2}{1..2}/f", "{a..e}",
                                    "{Z..X}-{0..20..7}", "{x}.tar", "a{,b}c", "{a,b}{}", "{00..10..3}", "{5..05}",
                                    "{0..3}..{a}", "{a..k..3}", "{z..a..10}"}) {
    std::vector<std::string> expected;
    std::string line, printed = command_output("bash -c 'printf \"%s\\n\" " + pattern + "'");
    for (std::istringstream in(printed); std::getline(in, line);) expected.push_back(line);
    EXPECT_EQ(expand_shard_list(pattern), expected) << pattern;
  }
  EXPECT_EQ(expand_shard_list("a/{0..1}.tar::b.tar"), (std::vector<std::string>{"a/0.tar", "a/1.tar", "b.tar"}));
  EXPECT_NE(error_of([] { expand_shard_list("data/{0..3.tar"); }).find("'data/{0..3.tar': unbalanced '{'"),
            std::string::npos);
  EXPECT_NE(error_of([] { expand_shard_list("a.tar::"); }).find("an empty source"), std::string::npos);
  EXPECT_NE(error_of([] { expand_shard_list("{0..99999999}"); }).find("names 100000000 paths"), std::string::npos);
}

// webdataset's rules: the key runs to the first dot of the file name, the field (lower-cased) is the rest, consecutive
// members with one key form a sample, names without a dot or a field and __meta__ files are left out; a field the
// sample already has starts the next one (open_clip's group_by_keys_nothrow).
TEST(WebDataset, GroupsConsecutiveMembersIntoSamples) {
  TempDir dir("wds_group");
  for (const auto& name : {"part/000001.jpg", "part/000001.txt", "part/000001.seg.png", "000002.JPG", "000002.txt",
                           "000002.", "__meta__", "README", "000003.txt"})
    write_text(fs::path(dir.path) / "src" / name, name);
  const std::string tar = dir / "s.tar";
  command_output("tar --format=gnu -cf '" + tar + "' -C '" + (dir / "src") +
                 "' part/000001.jpg part/000001.txt "
                 "part/000001.seg.png 000002.JPG 000002.txt 000002. __meta__ README 000003.txt");
  write_text(fs::path(dir.path) / "dup" / "000003.txt", "again");  // the same member name twice in a row
  command_output("tar -rf '" + tar + "' -C '" + (dir / "dup") + "' 000003.txt");

  const WdsShard shard = read_wds_shard(tar);
  EXPECT_EQ(shard.problem, "");
  ASSERT_EQ(shard.samples.size(), 4u);
  EXPECT_EQ(shard.samples[0].key, "part/000001");
  std::vector<std::string> fields;
  for (const auto& [field, member] : shard.samples[0].fields) fields.push_back(field);
  EXPECT_EQ(fields, (std::vector<std::string>{"jpg", "seg.png", "txt"}));
  EXPECT_EQ(shard.samples[1].key, "000002");
  EXPECT_TRUE(shard.samples[1].fields.count("jpg"));
  EXPECT_EQ(shard.samples[1].number, 2);
  EXPECT_EQ(shard.samples[2].key, "000003");
  EXPECT_EQ(shard.samples[3].key, "000003");
  EXPECT_EQ(shard.samples[3].number, 4);
  const auto again = pathvlm::tar::read(tar, shard.samples[3].fields.at("txt"));
  EXPECT_EQ(std::string(again.begin(), again.end()), "again");
}

// Two tars of img2dataset's layout (KEY.jpg|png|webp + KEY.txt + KEY.cls), the second cut short inside its last
// image: every good sample lands in the shards with its caption, label and the image bytes as stored; the bad ones
// (no caption, no image, an undecodable image, a label that is no number, the damaged tail) are listed by tar and
// sample number.
TEST(WebDataset, ShardsBuildTurnsTarsIntoTilesShards) {
  TempDir dir("wds_build");
  struct Expected {
    std::string id, caption;
    int label;
    Bytes bytes;
  };
  std::vector<Expected> good;
  auto add_sample = [&](int tar, int i, const std::string& ext, bool caption = true, bool image = true,
                        const std::string& cls = "") {
    const fs::path folder = fs::path(dir.path) / ("src" + std::to_string(tar));
    char key[16];
    std::snprintf(key, sizeof key, "%06d", tar * 100 + i);
    const auto tile = pathvlm::synth::draw_tissue(static_cast<pathvlm::synth::TissueClass>(i % 8), 24, 24, 40 + i);
    const Bytes bytes = ext == "png" ? encode_png(tile) : encode_jpeg(tile, 90);
    if (image) {
      fs::create_directories(folder);
      write_file_bytes((folder / (std::string(key) + "." + ext)).string(), bytes);
    }
    const std::string text = "tile " + std::to_string(tar) + "-" + std::to_string(i);
    if (caption) write_text(folder / (std::string(key) + ".txt"), text + "\n");
    write_text(folder / (std::string(key) + ".cls"), cls.empty() ? std::to_string(i % 8) : cls);
    if (caption && image && cls.empty()) good.push_back({std::to_string(tar) + "/" + key, text, i % 8, bytes});
  };
  for (int i = 0; i < 6; ++i) add_sample(0, i, i % 2 ? "png" : "jpg");
  add_sample(0, 6, "jpg", /*caption=*/false);
  add_sample(0, 7, "jpg", true, /*image=*/false);
  add_sample(0, 8, "jpg", true, true, "tumour");
  write_text(fs::path(dir.path) / "src0" / "000009.jpg", "not a JPEG at all");
  write_text(fs::path(dir.path) / "src0" / "000009.txt", "broken");
  write_text(fs::path(dir.path) / "src0" / "000009.cls", "1");
  // A caption in a json member only.
  const auto json_tile = pathvlm::synth::draw_tissue(pathvlm::synth::TissueClass::Mucus, 24, 24, 9);
  write_file_bytes(dir / "src0/000010.png", encode_png(json_tile));
  write_text(fs::path(dir.path) / "src0" / "000010.json", R"({"caption": "mucus, from json", "width": 24})");
  write_text(fs::path(dir.path) / "src0" / "000010.cls", "5");
  good.push_back({"0/000010", "mucus, from json", 5, encode_png(json_tile)});
  for (int i = 0; i < 4; ++i) add_sample(1, i, "jpg");
  make_tar(dir / "src0", dir / "0.tar");
  make_tar(dir / "src1", dir / "1.tar");
  // Cut the second tar inside its last image: that sample keeps only its .cls, .txt, then the archive ends.
  std::string tail;
  {
    std::ifstream in(dir / "1.tar", std::ios::binary);
    tail.assign(std::istreambuf_iterator<char>(in), {});
  }
  const size_t last_jpg = tail.rfind("000103.jpg");
  ASSERT_NE(last_jpg, std::string::npos);
  std::ofstream(dir / "1.tar", std::ios::binary | std::ios::trunc) << tail.substr(0, last_jpg + 512 + 100);
  good.pop_back();

  TileShardBuildOptions o;
  o.webdataset = expand_shard_list(dir / "{0..1}.tar");
  o.out_dir = dir / "shards";
  o.shard_size = 4;
  o.progress = false;
  const auto report = build_tile_shards(o);
  EXPECT_EQ(report.written, static_cast<int64_t>(good.size()));
  std::vector<std::string> bad;
  for (const auto& b : report.bad)
    bad.push_back(b.file.substr(dir.path.string().size() + 1) + " #" + std::to_string(b.line));
  EXPECT_EQ(bad, (std::vector<std::string>{"0.tar:./000006.jpg #7", "0.tar:./000007 #8", "0.tar:./000008.jpg #9",
                                           "0.tar:./000009.jpg #10", "1.tar:./000103 #4", "1.tar #5"}));
  ASSERT_EQ(report.bad.size(), 6u);
  EXPECT_EQ(report.bad[0].problem, "no caption member (txt, or json with a caption)");
  EXPECT_EQ(report.bad[1].problem, "no image member (jpg, png, jpeg, webp, tif, tiff)");
  EXPECT_EQ(report.bad[2].problem, "cls 'tumour' is not a non-negative integer");
  EXPECT_NE(report.bad[3].problem.find("not a JPEG, PNG, TIFF or WebP image"), std::string::npos);
  EXPECT_EQ(report.bad[4].problem, "no image member (jpg, png, jpeg, webp, tif, tiff)");
  EXPECT_NE(report.bad[5].problem.find("damaged tar, the samples from here on are lost: cut short"), std::string::npos);

  const auto ds = TileDataset::open(dir / "shards");
  ASSERT_EQ(ds.size(), static_cast<int64_t>(good.size()));
  EXPECT_TRUE(ds.has_labels());
  for (int64_t i = 0; i < ds.size(); ++i) {
    EXPECT_EQ(ds.id(i), good[i].id);
    EXPECT_EQ(ds.caption(i), good[i].caption);
    EXPECT_EQ(ds.label(i), good[i].label);
    EXPECT_TRUE(torch::equal(ds.image(i), decode_image(good[i].bytes, "source"))) << good[i].id;
  }
  const auto manifest = nlohmann::json::parse(std::ifstream(dir / "shards/manifest.json"));
  EXPECT_EQ(manifest["source_tars"], 2);
  EXPECT_EQ(manifest["records"], static_cast<int64_t>(good.size()));
}

// The command line: open_clip's brace and '::' syntax; a shard missing from the range, a tar mixed with a CSV and a
// compressed tar are errors before anything is written.
TEST(WebDataset, ShardsBuildCommandTakesOpenClipShardLists) {
  TempDir dir("wds_cli");
  for (int t = 0; t < 3; ++t) {
    const auto tile = pathvlm::synth::draw_tissue(pathvlm::synth::TissueClass::Stroma, 20, 20, t);
    fs::create_directories(dir / ("src" + std::to_string(t)));
    write_file_bytes(dir / ("src" + std::to_string(t) + "/a" + std::to_string(t) + ".png"), encode_png(tile));
    write_text(fs::path(dir / ("src" + std::to_string(t))) / ("a" + std::to_string(t) + ".txt"), "stroma");
    make_tar(dir / ("src" + std::to_string(t)), dir / ("part-" + std::to_string(t) + ".tar"));
  }
  const std::string bin = PATHVLM_BINARY;
  const std::string out =
      command_output(bin + " shards build '" + dir.path.string() + "/part-{0..1}.tar::" + dir.path.string() +
                     "/part-2.tar' --out " + (dir / "shards") + " --quiet");
  EXPECT_NE(out.find("wrote 3 of 3 records into 1 shard"), std::string::npos) << out;
  auto failure = [&](const std::string& inputs) {
    const std::string cmd = bin + " shards build " + inputs + " --out " + (dir / "none") + " --quiet";
    std::string text;
    EXPECT_NE(run_command(cmd, text), 0) << cmd;
    EXPECT_FALSE(fs::exists(dir / "none/manifest.json")) << cmd;
    return text;
  };
  std::string text = failure("'" + dir.path.string() + "/part-{0..3}.tar'");
  EXPECT_NE(text.find("WebDataset shard '" + (dir / "part-3.tar") + "' not found"), std::string::npos) << text;
  text = failure(dir / "part-0.tar" + " " + (dir / "records.csv"));
  EXPECT_NE(text.find("cannot be mixed (1 of the 2 inputs are no .tar)"), std::string::npos) << text;
  text = failure(dir / "part-0.tar.gz");
  EXPECT_NE(text.find("is a compressed tar; WebDataset shards are read as plain .tar"), std::string::npos) << text;
}
