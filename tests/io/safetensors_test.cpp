// safetensors: round trips for every dtype, sharded checkpoints, and hostile or corrupted files.
#include <gtest/gtest.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <random>

#include "io_test_util.h"
#include "test_util.h"
#include "io/safetensors.h"

namespace st = pathvlm::safetensors;
using pathvlm::testing::read_bytes;
using pathvlm::testing::ScratchDir;
using pathvlm::testing::write_bytes;

namespace {

// A raw safetensors file: the 8-byte length (or `length_override`), the header text, then `data`.
std::string raw_file(const std::string& header, const std::string& data, int64_t length_override = -1) {
  uint64_t n = length_override >= 0 ? static_cast<uint64_t>(length_override) : header.size();
  std::string bytes(8, '\0');
  std::memcpy(bytes.data(), &n, 8);
  return bytes + header + data;
}

st::NamedTensors every_dtype() {
  torch::manual_seed(3);
  return {
      {"f64", torch::randn({3, 2}, torch::kFloat64)},
      {"f32", torch::randn({4, 5})},
      {"f16", torch::randn({7}).to(torch::kFloat16)},
      {"bf16", torch::randn({2, 3, 2}).to(torch::kBFloat16)},
      {"i64", torch::arange(-5, 6, torch::kInt64)},
      {"i32", torch::randint(-1000, 1000, {3, 3}, torch::kInt32)},
      {"i16", torch::randint(-300, 300, {5}, torch::kInt16)},
      {"i8", torch::randint(-128, 127, {9}, torch::kInt8)},
      {"u8", torch::randint(0, 255, {2, 2, 3}, torch::kUInt8)},
      {"bool", torch::rand({5}) > 0.5},
      {"scalar", torch::tensor(2.5)},
      {"empty", torch::zeros({0, 3})},
      {"strided", torch::randn({3, 4}).t()},  // non-contiguous input
  };
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtype) {
  ScratchDir dir;
  auto tensors = every_dtype();
  st::save(dir / "a.safetensors", tensors, {{"note", "round trip"}});
  auto f = st::File::open(dir / "a.safetensors");
  EXPECT_EQ(f.tensors().size(), tensors.size());
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_EQ(f.metadata().at("note"), "round trip");
  for (const auto& [name, expected] : tensors) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(f.contains(name));
    torch::Tensor got = f.get(name);
    EXPECT_EQ(got.scalar_type(), expected.scalar_type());
    EXPECT_EQ(got.sizes(), expected.sizes());
    EXPECT_TRUE(torch::equal(got, expected));
    EXPECT_EQ(st::checksum(got), st::checksum(expected));
    EXPECT_EQ(reinterpret_cast<uintptr_t>(got.data_ptr()) % got.element_size(), 0u);
  }
  EXPECT_EQ(st::dtype_name(f.info("bf16").dtype), "BF16");
  EXPECT_EQ(f.info("f32").nbytes(), 4u * 4 * 5);
  EXPECT_FALSE(f.contains("nope"));
  EXPECT_ERROR_HAS(f.get("nope"), "a.safetensors", "no tensor 'nope'");
}

TEST(Safetensors, TensorsOutliveTheFileAndWritesStayPrivate) {
  ScratchDir dir;
  st::save(dir / "w.safetensors", {{"w", torch::ones({4})}});
  torch::Tensor w;
  {
    auto f = st::File::open(dir / "w.safetensors");
    w = f.get("w");
  }
  EXPECT_EQ(w.sum().item<float>(), 4.0f);  // the mapping lives as long as the tensor
  w.mul_(3);                               // copy-on-write: the file is untouched
  EXPECT_EQ(st::File::open(dir / "w.safetensors").get("w").sum().item<float>(), 4.0f);
}

TEST(Safetensors, ChecksumIsZlibCrc32) {
  const char* text = "123456789";
  torch::Tensor bytes = torch::from_blob(const_cast<char*>(text), {9}, torch::kUInt8);
  EXPECT_EQ(st::checksum(bytes), 0xCBF43926u);  // the standard CRC-32 check value
  EXPECT_EQ(st::checksum(torch::zeros({0})), 0u);
}

TEST(Safetensors, SaveRejectsBadInput) {
  ScratchDir dir;
  EXPECT_ERROR_HAS(st::save(dir / "x.safetensors", {{"a", torch::ones(1)}, {"a", torch::ones(1)}}), "'a' given twice");
  EXPECT_ERROR_HAS(st::save(dir / "x.safetensors", {{"__metadata__", torch::ones(1)}}), "invalid tensor name");
  EXPECT_ERROR_HAS(st::save(dir / "x.safetensors", {{"c", torch::ones(2, torch::kComplexFloat)}}), "tensor 'c'",
                   "cannot be stored");
  EXPECT_FALSE(std::filesystem::exists(dir / "x.safetensors"));
}

TEST(Safetensors, ShardedCheckpointWithIndex) {
  ScratchDir dir;
  st::NamedTensors tensors;
  for (int i = 0; i < 10; ++i) tensors.emplace_back("layer." + std::to_string(i) + ".weight", torch::randn({1000}));
  tensors.emplace_back("tiny.bias", torch::arange(3, torch::kInt64));
  auto written = st::save_sharded(dir.str(), tensors, 10000);  // 4000-byte tensors: two per shard
  ASSERT_EQ(written.size(), 5u + 1);
  EXPECT_EQ(std::filesystem::path(written.back()).filename(), "model.safetensors.index.json");
  EXPECT_EQ(std::filesystem::path(written[0]).filename(), "model-00001-of-00005.safetensors");

  for (const std::string& path : {dir.str(), dir / "model.safetensors.index.json"}) {
    auto ckpt = st::Checkpoint::open(path);
    EXPECT_EQ(ckpt.names().size(), tensors.size());
    EXPECT_EQ(ckpt.files().size(), 5u);
    for (const auto& [name, expected] : tensors) EXPECT_TRUE(torch::equal(ckpt.get(name), expected)) << name;
    EXPECT_NE(ckpt.file_of("layer.0.weight"), ckpt.file_of("layer.9.weight"));
    EXPECT_EQ(ckpt.metadata().at("format"), "pt");
  }
  auto index = nlohmann::json::parse(read_bytes(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), 10u * 4000 + 24);
  EXPECT_EQ(index["weight_map"]["tiny.bias"], "model-00005-of-00005.safetensors");

  // Everything fitting in one shard gives model.safetensors and removes the stale index.
  st::save_sharded(dir.str(), tensors, 1ull << 30);
  EXPECT_FALSE(std::filesystem::exists(dir / "model.safetensors.index.json"));
  auto single = st::Checkpoint::open(dir.str());
  EXPECT_EQ(single.files().size(), 1u);
  EXPECT_TRUE(torch::equal(single.get("layer.3.weight"), tensors[3].second));
}

TEST(Safetensors, CheckpointIndexErrors) {
  ScratchDir dir;
  const std::string root = dir.str();
  EXPECT_ERROR_HAS(st::Checkpoint::open(root), root.c_str(), "neither model.safetensors nor");
  st::save(dir / "s1.safetensors", {{"a", torch::ones(2)}});
  auto index_with = [&](const std::string& weight_map) {
    write_bytes(dir / "model.safetensors.index.json", "{\"metadata\": {}, \"weight_map\": " + weight_map + "}");
  };
  index_with(R"({"a": "s1.safetensors", "b": "s1.safetensors"})");
  EXPECT_ERROR_HAS(st::Checkpoint::open(dir.str()), "tensor 'b'", "s1.safetensors", "does not contain it");
  index_with(R"({"a": "missing.safetensors"})");
  EXPECT_ERROR_HAS(st::Checkpoint::open(dir.str()), "missing.safetensors", "cannot open");
  index_with(R"({"a": "../s1.safetensors"})");
  EXPECT_ERROR_HAS(st::Checkpoint::open(dir.str()), "must be a file beside the index");
  index_with(R"({"a": "s1.safetensors", "a": "s1.safetensors"})");
  EXPECT_ERROR_HAS(st::Checkpoint::open(dir.str()), "'a' is listed twice");
  index_with(R"({"a": 3})");
  EXPECT_ERROR_HAS(st::Checkpoint::open(dir.str()), "tensor 'a' maps to 3");
  write_bytes(dir / "model.safetensors.index.json", "{\"weight_map\": {");
  EXPECT_ERROR_HAS(st::Checkpoint::open(dir.str()), "model.safetensors.index.json", "invalid JSON");
  index_with(R"({"a": "s1.safetensors"})");
  EXPECT_EQ(st::Checkpoint::open(dir.str()).get("a").sum().item<float>(), 2.0f);
}

// PyTorch pickles (LLaVA-1.5's pytorch_model-*.bin shards, .pt checkpoints) are refused before a byte is read, with
// the command that converts them.
TEST(Safetensors, PicklesAreRefusedWithTheConversionCommand) {
  ScratchDir dir;
  const std::string root = dir.str();
  write_bytes(dir / "pytorch_model-00001-of-00002.bin", "not read");
  const std::string named = "checkpoint directory '" + root + "'";
  const std::string command = "python3 scripts/convert_to_safetensors.py " + root;
  EXPECT_ERROR_HAS(st::Checkpoint::open(root), named.c_str(), "pytorch_model-00001-of-00002.bin",
                   "holds PyTorch pickles", command.c_str());
  EXPECT_ERROR_HAS(st::File::open(dir / "model.pt"), "model.pt' holds PyTorch pickles", "convert_to_safetensors.py");
  EXPECT_TRUE(st::is_pickle_file("a/b.ckpt") && st::is_pickle_file("x.pth") && !st::is_pickle_file("x.safetensors"));
  st::save(dir / "model.safetensors", {{"a", torch::ones(2)}});  // safetensors beside pickles are read
  EXPECT_EQ(st::Checkpoint::open(root).get("a").sum().item<float>(), 2.0f);
}

// Each hostile header is rejected with a message naming the file and, where there is one, the tensor.
TEST(Safetensors, CorruptHeadersAreClearErrors) {
  ScratchDir dir;
  const std::string path = dir / "bad.safetensors";
  auto expect_bad = [&](const std::string& bytes, std::initializer_list<const char*> parts) {
    write_bytes(path, bytes);
    std::string message = pathvlm::testing::error_of([&] { st::File::open(path); });
    EXPECT_NE(message.find("bad.safetensors"), std::string::npos) << message;
    for (const char* part : parts) EXPECT_NE(message.find(part), std::string::npos) << part << " | " << message;
  };
  const std::string data16(16, '\0');
  auto f32 = [](const char* name, int n, int begin, int end) {
    return pathvlm::str("\"", name, "\":{\"dtype\":\"F32\",\"shape\":[", n, "],\"data_offsets\":[", begin, ",", end,
                        "]}");
  };

  expect_bad("abc", {"truncated", "3 bytes"});
  expect_bad(raw_file("{}", "", 5000), {"header length 5000", "past the end"});
  expect_bad(raw_file("{}", "", 200ll * 1000 * 1000), {"exceeds the limit"});
  expect_bad(raw_file("{\"a\": ", data16), {"invalid JSON"});
  expect_bad(raw_file("[1, 2]", ""), {"expected an object"});
  expect_bad(raw_file("{" + f32("a", 4, 0, 400) + "}", data16), {"tensor 'a'", "outside the data buffer"});
  expect_bad(raw_file("{" + f32("a", 2, 0, 8) + "," + f32("b", 2, 4, 12) + "}", std::string(12, '\0')),
             {"tensor 'b'", "overlaps tensor 'a'"});
  expect_bad(raw_file("{" + f32("a", 2, 0, 8) + "," + f32("b", 2, 12, 20) + "}", std::string(20, '\0')),
             {"gap of 4 bytes", "tensor 'b'"});
  expect_bad(raw_file("{" + f32("a", 2, 8, 16) + "}", data16), {"gap of 8 bytes", "tensor 'a'"});
  expect_bad(raw_file("{" + f32("a", 2, 0, 8) + "}", data16), {"8 bytes after the last tensor"});
  expect_bad(raw_file("{" + f32("a", 3, 0, 8) + "}", std::string(8, '\0')), {"tensor 'a'", "needs 12 bytes", "give 8"});
  expect_bad(raw_file("{" + f32("a", 2, 8, 0) + "}", data16), {"tensor 'a'", "end before they begin"});
  expect_bad(raw_file("{" + f32("a", 2, 0, 8) + "," + f32("a", 2, 8, 16) + "}", data16),
             {"tensor 'a' is listed twice"});
  expect_bad(raw_file(R"({"a":{"dtype":"F17","shape":[2],"data_offsets":[0,8]}})", std::string(8, '\0')),
             {"tensor 'a'", "unknown dtype 'F17'"});
  expect_bad(raw_file(R"({"a":{"dtype":"U16","shape":[4],"data_offsets":[0,8]}})", std::string(8, '\0')),
             {"tensor 'a'", "'U16'", "not supported"});
  expect_bad(raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", std::string(8, '\0')),
             {"tensor 'a'", "shape entry -2 is negative"});
  // Huge entries are too large, whichever way JSON stores them (unsigned, beyond 64 bits, or a float).
  for (const char* huge : {"9223372036854775808", "18446744073709551615", "1e300", "99999999999999999999999"})
    expect_bad(raw_file(pathvlm::str(R"({"a":{"dtype":"F32","shape":[)", huge, R"(],"data_offsets":[0,8]}})"),
                        std::string(8, '\0')),
               {"tensor 'a'", "shape entry", "is too large"});
  expect_bad(raw_file(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", std::string(8, '\0')),
             {"tensor 'a'", "shape entry 2.5 is not an integer"});
  expect_bad(raw_file(R"({"a":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}})", std::string(8, '\0')),
             {"tensor 'a'", "shape entry \"2\" is not a number"});
  expect_bad(raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0.5,8]}})", std::string(8, '\0')),
             {"tensor 'a'", "non-negative integers"});
  expect_bad(raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", std::string(8, '\0')), {"tensor 'a'", "data_offsets"});
  expect_bad(raw_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,8]}})",
                      std::string(8, '\0')),
             {"tensor 'a'", "shape [4294967296, 4294967296, 4294967296] is too large"});
  expect_bad(raw_file(R"({"__metadata__":{"k":1}})", ""), {"__metadata__ 'k'"});

  // A valid file cut short loses its last tensor's bytes.
  st::save(dir / "good.safetensors", {{"x", torch::randn({16})}, {"y", torch::randn({16})}});
  std::string good = read_bytes(dir / "good.safetensors");
  expect_bad(good.substr(0, good.size() - 4), {"outside the data buffer"});
  expect_bad(good.substr(0, 20), {"past the end"});
}

TEST(Safetensors, BoolBytesMustBeZeroOrOne) {
  ScratchDir dir;
  write_bytes(dir / "b.safetensors", raw_file(R"({"m":{"dtype":"BOOL","shape":[3],"data_offsets":[0,3]}})",
                                              std::string("\x01\x02\x00", 3)));
  auto f = st::File::open(dir / "b.safetensors");
  EXPECT_ERROR_HAS(f.get("m"), "tensor 'm'", "BOOL byte 1 is 2");
}

// Single-bit flips in the length and header: each either gives a clean error or a file that still reads
// consistently; flips in the length prefix are always caught.
TEST(Safetensors, BitFlipsNeverCrash) {
  ScratchDir dir;
  st::save(dir / "orig.safetensors", {{"alpha", torch::randn({5, 3})}, {"beta", torch::arange(6, torch::kInt32)}});
  const std::string original = read_bytes(dir / "orig.safetensors");
  uint64_t header = 0;
  std::memcpy(&header, original.data(), 8);
  const std::string path = dir / "flip.safetensors";
  int rejected = 0, accepted = 0;
  for (size_t byte = 0; byte < 8 + header; ++byte) {
    for (int bit = 0; bit < 8; ++bit) {
      // Every bit of the length, two bits of each header byte.
      if (byte >= 8 && static_cast<size_t>(bit) % 4 != byte % 4) continue;
      std::string bytes = original;
      bytes[byte] = static_cast<char>(bytes[byte] ^ (1 << bit));
      write_bytes(path, bytes);
      try {
        auto f = st::File::open(path);
        uint64_t covered = 0;
        for (const auto& t : f.tensors()) {
          torch::Tensor x = f.get(t.name);
          EXPECT_EQ(static_cast<uint64_t>(x.numel()) * x.element_size(), t.nbytes());
          covered += t.nbytes();
        }
        EXPECT_EQ(8 + header + covered, bytes.size()) << "byte " << byte << " bit " << bit;
        EXPECT_GE(byte, 8u) << "a flipped length prefix was accepted (bit " << bit << ")";
        ++accepted;
      } catch (const pathvlm::Error&) {
        ++rejected;
      }
    }
  }
  EXPECT_GT(rejected, accepted);  // most flips break the JSON, a dtype, a shape or an offset
  std::mt19937 rng(pathvlm::testing::test_seed(7));           // random flips in the data leave a readable file (no checksum in the format)
  for (int k = 0; k < 20; ++k) {
    std::string bytes = original;
    size_t at = 8 + header + rng() % (original.size() - 8 - header);
    bytes[at] = static_cast<char>(bytes[at] ^ (1 << (rng() % 8)));
    write_bytes(path, bytes);
    EXPECT_EQ(st::File::open(path).tensors().size(), 2u);
  }
}
