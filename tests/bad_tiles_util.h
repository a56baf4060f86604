// Tiles shards holding records `shards build` refuses (corrupt, truncated and decompression-bomb images, empty and
// non-UTF-8 captions), written unchecked through the HDF5 layer in the tiles schema, for the tests of what
// `shards validate` and training do with them. The images start as real encoder output.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "data/image.h"
#include "io/hdf5.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"

namespace pathvlm::testing {

struct RawTile {
  data::Bytes image;
  std::string caption, id;
};

// A 32x32 tile whose pixels depend on `seed`, encoded.
inline torch::Tensor test_tile(int seed, int size = 32) {
  torch::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed) + 1);
  return torch::randint(0, 256, {size, size, 3}, gen, torch::kInt64).to(torch::kByte);
}
inline data::Bytes good_jpeg(int seed) { return data::encode_jpeg(test_tile(seed), 90); }
inline data::Bytes good_png(int seed) { return data::encode_png(test_tile(seed)); }

inline data::Bytes truncated(data::Bytes bytes) {
  bytes.resize(bytes.size() / 2);
  return bytes;
}

inline uint32_t crc32_of(const uint8_t* p, size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return ~c;
}
inline void put_be32(uint8_t* p, uint32_t v) {
  for (int k = 0; k < 4; ++k) p[k] = static_cast<uint8_t>(v >> (24 - 8 * k));
}

// A real PNG whose IHDR (checksum fixed) claims width x height: a decompression bomb's header.
inline data::Bytes png_claiming(uint32_t width, uint32_t height) {
  data::Bytes png = good_png(0);
  put_be32(png.data() + 16, width);
  put_be32(png.data() + 20, height);
  put_be32(png.data() + 29, crc32_of(png.data() + 12, 17));  // over "IHDR" and its 13 bytes
  return png;
}

// A real JPEG whose frame header (SOF0) claims width x height.
inline data::Bytes jpeg_claiming(uint16_t width, uint16_t height) {
  data::Bytes jpeg = good_jpeg(0);
  for (size_t i = 2; i + 9 < jpeg.size(); ++i)
    if (jpeg[i] == 0xFF && jpeg[i + 1] == 0xC0) {
      jpeg[i + 5] = static_cast<uint8_t>(height >> 8), jpeg[i + 6] = static_cast<uint8_t>(height);
      jpeg[i + 7] = static_cast<uint8_t>(width >> 8), jpeg[i + 8] = static_cast<uint8_t>(width);
      return jpeg;
    }
  throw std::runtime_error("jpeg_claiming: the encoder wrote no SOF0 marker");
}

// A real PNG with one byte of its pixel data (IDAT) flipped: the chunk checksum no longer matches.
inline data::Bytes png_with_flipped_byte(int seed) {
  data::Bytes png = good_png(seed);
  for (size_t i = 8; i + 8 < png.size(); ++i)
    if (png[i] == 'I' && png[i + 1] == 'D' && png[i + 2] == 'A' && png[i + 3] == 'T') {
      png[i + 20] ^= 0x5A;
      return png;
    }
  throw std::runtime_error("png_with_flipped_byte: no IDAT chunk");
}

// Writes a tiles shard holding `tiles` as given.
inline void write_raw_tiles(const std::string& path, const std::vector<RawTile>& tiles) {
  std::vector<std::string> ids, captions;
  std::vector<h5::Blob> images;
  for (const auto& t : tiles) {
    ids.push_back(t.id);
    captions.push_back(t.caption);
    images.push_back(t.image);
  }
  {
    auto f = h5::File::create(path);
    shards::write_schema(f, shards::ShardKind::Tiles);
    f.create_blobs("images").append_blobs(images);
    f.create_strings("captions").append_strings(captions);
    f.create_strings("ids").append_strings(ids);
  }
  shards::seal_shard(path, path);  // the checksummed layout training reads; the bad records are in its contents
}

// `n` good tiles (JPEG and PNG in turn) with captions naming one of two tissue classes, then the bad ones at
// the given positions: each kind of bad record in turn, in the order of kBadKinds.
inline const std::vector<std::string>& bad_kinds() {
  static const std::vector<std::string> kinds = {"truncated JPEG", "flipped PNG byte", "PNG bomb", "JPEG bomb",
                                                 "not an image",   "non-UTF-8 caption", "empty caption"};
  return kinds;
}
inline std::vector<RawTile> tiles_with_bad(int n, const std::vector<int>& bad) {
  std::vector<RawTile> tiles;
  for (int i = 0; i < n; ++i)
    tiles.push_back({i % 2 ? good_png(i) : good_jpeg(i),
                     i % 3 ? "H&E tile of tumor tissue, number " + std::to_string(i)
                           : "H&E tile of stroma, number " + std::to_string(i),
                     "tile_" + std::to_string(i)});
  for (size_t k = 0; k < bad.size(); ++k) {
    RawTile& t = tiles.at(static_cast<size_t>(bad[k]));
    switch (k % bad_kinds().size()) {
      case 0: t.image = truncated(good_jpeg(bad[k])); break;
      case 1: t.image = png_with_flipped_byte(bad[k]); break;
      case 2: t.image = png_claiming(100000, 100000); break;
      case 3: t.image = jpeg_claiming(60000, 60000); break;
      case 4: t.image = {'B', 'M', 0, 0, 1, 2, 3}; break;
      case 5: t.caption = "tumor \xff\xfe tissue"; break;
      default: t.caption = ""; break;
    }
  }
  return tiles;
}

}  // namespace pathvlm::testing
