// Writes DICOM whole-slide image files for tests, byte by byte from PS3.5/PS3.10: explicit VR little endian,
// JPEG baseline or uncompressed RGB frames, TILED_FULL or TILED_SPARSE, concatenations, offset tables, sequences
// of defined or undefined length. Also gives the pixels a reader must return for what it wrote.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/image.h"

#ifdef PATHVLM_HAVE_OPENJPEG
#include <openjpeg.h>
#endif

namespace pathvlm::testing {

struct DicomLevelSpec {
  torch::Tensor rgb;  // the level's total pixel matrix, uint8 [H,W,3]
  int tile_width = 64, tile_height = 64;
  std::string series = "1.2.826.0.1.3680043.10.1";
  std::string flavor = "VOLUME";
  std::string transfer_syntax;  // empty: JPEG baseline or explicit VR little endian, by `jpeg`
  bool jpeg = false;
  bool jpeg2000 = false;          // lossless JPEG 2000 with the reversible colour transform (YBR_RCT)
  bool sparse = false;            // TILED_SPARSE: frames placed by per-frame positions
  std::set<int64_t> omitted;      // tiles (row-major) written as no frame (sparse only)
  int parts = 1;                  // files of one concatenation
  bool offset_table = false;      // a basic offset table
  bool split_fragments = false;   // each JPEG frame in two fragments (needs the offset table)
  bool undefined_lengths = true;  // sequences and items of undefined length, else defined
  double spacing_mm = 0.00025;
  std::map<uint32_t, std::string> extra;  // more encoded elements by tag (group << 16 | element)
};

namespace dicom_writer {

inline std::string le16(uint16_t v) { return {static_cast<char>(v & 0xFF), static_cast<char>(v >> 8)}; }
inline std::string le32(uint32_t v) {
  return le16(static_cast<uint16_t>(v & 0xFFFF)) + le16(static_cast<uint16_t>(v >> 16));
}

inline bool long_vr(const std::string& vr) {
  for (const char* v : {"OB", "OW", "SQ", "UN", "UT", "UC", "UR", "OD", "OF", "OL", "OV", "SV", "UV"})
    if (vr == v) return true;
  return false;
}

inline std::string element(uint16_t group, uint16_t number, const std::string& vr, std::string value) {
  if (value.size() % 2) value += (vr == "UI" || vr == "OB") ? '\0' : ' ';
  std::string out = le16(group) + le16(number) + vr;
  if (long_vr(vr)) return out + le16(0) + le32(static_cast<uint32_t>(value.size())) + value;
  return out + le16(static_cast<uint16_t>(value.size())) + value;
}

inline std::string sequence(uint16_t group, uint16_t number, const std::vector<std::string>& items, bool undefined) {
  std::string body;
  for (const std::string& item : items) {
    body += le16(0xFFFE) + le16(0xE000) + le32(undefined ? 0xFFFFFFFF : static_cast<uint32_t>(item.size())) + item;
    if (undefined) body += le16(0xFFFE) + le16(0xE00D) + le32(0);
  }
  if (undefined) body += le16(0xFFFE) + le16(0xE0DD) + le32(0);
  std::string out = le16(group) + le16(number) + "SQ" + le16(0);
  return out + le32(undefined ? 0xFFFFFFFF : static_cast<uint32_t>(body.size())) + body;
}

// The frame of tile (column, row): the level's pixels, padded with black past its edge (a reader clips them).
inline torch::Tensor tile_pixels(const DicomLevelSpec& s, int64_t column, int64_t row) {
  auto tile = torch::zeros({s.tile_height, s.tile_width, 3}, torch::kUInt8);
  const int64_t x = column * s.tile_width, y = row * s.tile_height;
  const int64_t w = std::min<int64_t>(s.tile_width, s.rgb.size(1) - x),
                h = std::min<int64_t>(s.tile_height, s.rgb.size(0) - y);
  tile.slice(0, 0, h).slice(1, 0, w).copy_(s.rgb.slice(0, y, y + h).slice(1, x, x + w));
  return tile;
}

#ifdef PATHVLM_HAVE_OPENJPEG
// A lossless JPEG 2000 codestream of `rgb` with the reversible colour transform, through OpenJPEG's encoder.
inline std::string encode_jpeg2000(const torch::Tensor& rgb) {
  const auto height = static_cast<OPJ_UINT32>(rgb.size(0)), width = static_cast<OPJ_UINT32>(rgb.size(1));
  opj_image_cmptparm_t components[3] = {};
  for (auto& c : components) c.dx = 1, c.dy = 1, c.w = width, c.h = height, c.prec = 8, c.sgnd = 0;
  opj_image_t* image = opj_image_create(3, components, OPJ_CLRSPC_SRGB);
  image->x1 = width, image->y1 = height;
  const uint8_t* p = rgb.data_ptr<uint8_t>();
  for (size_t i = 0; i < size_t{width} * height; ++i)
    for (int c = 0; c < 3; ++c) image->comps[c].data[i] = p[3 * i + c];
  opj_cparameters_t parameters;
  opj_set_default_encoder_parameters(&parameters);
  parameters.tcp_numlayers = 1, parameters.tcp_rates[0] = 0, parameters.cp_disto_alloc = 1;
  parameters.irreversible = 0, parameters.tcp_mct = 1, parameters.numresolution = 3;
  struct Output {
    std::string bytes;
    size_t at = 0;
  } out;
  opj_codec_t* codec = opj_create_compress(OPJ_CODEC_J2K);
  opj_setup_encoder(codec, &parameters, image);
  opj_stream_t* stream = opj_stream_create(size_t{1} << 16, OPJ_FALSE);
  opj_stream_set_user_data(stream, &out, nullptr);
  opj_stream_set_write_function(stream, [](void* data, OPJ_SIZE_T n, void* user) -> OPJ_SIZE_T {
    auto* o = static_cast<Output*>(user);
    if (o->bytes.size() < o->at + n) o->bytes.resize(o->at + n);
    std::memcpy(o->bytes.data() + o->at, data, n);
    o->at += n;
    return n;
  });
  opj_stream_set_skip_function(stream, [](OPJ_OFF_T n, void* user) -> OPJ_OFF_T {
    static_cast<Output*>(user)->at += static_cast<size_t>(n);
    return n;
  });
  opj_stream_set_seek_function(stream, [](OPJ_OFF_T to, void* user) -> OPJ_BOOL {
    static_cast<Output*>(user)->at = static_cast<size_t>(to);
    return OPJ_TRUE;
  });
  const bool ok =
      opj_start_compress(codec, image, stream) && opj_encode(codec, stream) && opj_end_compress(codec, stream);
  opj_stream_destroy(stream);
  opj_destroy_codec(codec);
  opj_image_destroy(image);
  if (!ok) throw std::runtime_error("OpenJPEG could not encode a test frame");
  return out.bytes;
}
#endif

inline std::string frame_bytes(const DicomLevelSpec& s, int64_t column, int64_t row) {
  auto tile = tile_pixels(s, column, row);
#ifdef PATHVLM_HAVE_OPENJPEG
  if (s.jpeg2000) return encode_jpeg2000(tile);
#endif
  if (!s.jpeg) return std::string(reinterpret_cast<const char*>(tile.data_ptr<uint8_t>()), tile.numel());
  const data::Bytes jpeg = data::encode_jpeg(tile, 90);
  return std::string(jpeg.begin(), jpeg.end());
}

}  // namespace dicom_writer

// Writes the level as `spec.parts` files `<stem>.dcm` (one part) or `<stem>_<k>.dcm`; returns their paths.
inline std::vector<std::string> write_dicom_level(const std::string& stem, const DicomLevelSpec& s) {
  using namespace dicom_writer;
  const int64_t height = s.rgb.size(0), width = s.rgb.size(1);
  const int64_t across = (width + s.tile_width - 1) / s.tile_width, down = (height + s.tile_height - 1) / s.tile_height;
  std::vector<int64_t> tiles;
  for (int64_t t = 0; t < across * down; ++t)
    if (!s.sparse || !s.omitted.count(t)) tiles.push_back(t);
  const std::string sop_class = "1.2.840.10008.5.1.4.1.1.77.1.6";
  const bool encapsulated = s.jpeg || s.jpeg2000;
  const std::string syntax = !s.transfer_syntax.empty() ? s.transfer_syntax
                             : s.jpeg2000               ? "1.2.840.10008.1.2.4.90"
                             : s.jpeg                   ? "1.2.840.10008.1.2.4.50"
                                                        : "1.2.840.10008.1.2.1";
  const bool undefined = s.undefined_lengths;
  std::vector<std::string> paths;
  for (int part = 0; part < s.parts; ++part) {
    const size_t first = tiles.size() * part / s.parts, last = tiles.size() * (part + 1) / s.parts;
    const std::string instance = s.series + "." + std::to_string(width) + "." + std::to_string(part + 1);
    std::map<uint32_t, std::string> data;
    auto put = [&](uint16_t g, uint16_t e, const std::string& bytes) { data[uint32_t{g} << 16 | e] = bytes; };
    put(0x0008, 0x0008, element(0x0008, 0x0008, "CS", "DERIVED\\PRIMARY\\" + s.flavor + "\\NONE"));
    put(0x0008, 0x0016, element(0x0008, 0x0016, "UI", sop_class));
    put(0x0008, 0x0018, element(0x0008, 0x0018, "UI", instance));
    put(0x0008, 0x0070, element(0x0008, 0x0070, "LO", "pathvlm tests"));
    put(0x0020, 0x000E, element(0x0020, 0x000E, "UI", s.series));
    if (s.parts > 1) {
      put(0x0020, 0x9161, element(0x0020, 0x9161, "UI", s.series + ".9." + std::to_string(width)));
      put(0x0020, 0x9162, element(0x0020, 0x9162, "US", le16(static_cast<uint16_t>(part + 1))));
      put(0x0020, 0x9163, element(0x0020, 0x9163, "US", le16(static_cast<uint16_t>(s.parts))));
      put(0x0020, 0x9228, element(0x0020, 0x9228, "UL", le32(static_cast<uint32_t>(first))));
    }
    put(0x0020, 0x9311, element(0x0020, 0x9311, "CS", s.sparse ? "TILED_SPARSE" : "TILED_FULL"));
    put(0x0028, 0x0002, element(0x0028, 0x0002, "US", le16(3)));
    put(0x0028, 0x0004, element(0x0028, 0x0004, "CS", s.jpeg2000 ? "YBR_RCT" : s.jpeg ? "YBR_FULL_422" : "RGB"));
    put(0x0028, 0x0006, element(0x0028, 0x0006, "US", le16(0)));
    put(0x0028, 0x0008, element(0x0028, 0x0008, "IS", std::to_string(last - first)));
    put(0x0028, 0x0010, element(0x0028, 0x0010, "US", le16(static_cast<uint16_t>(s.tile_height))));
    put(0x0028, 0x0011, element(0x0028, 0x0011, "US", le16(static_cast<uint16_t>(s.tile_width))));
    put(0x0028, 0x0100, element(0x0028, 0x0100, "US", le16(8)));
    put(0x0028, 0x0101, element(0x0028, 0x0101, "US", le16(8)));
    put(0x0028, 0x0102, element(0x0028, 0x0102, "US", le16(7)));
    put(0x0028, 0x0103, element(0x0028, 0x0103, "US", le16(0)));
    put(0x0048, 0x0006, element(0x0048, 0x0006, "UL", le32(static_cast<uint32_t>(width))));
    put(0x0048, 0x0007, element(0x0048, 0x0007, "UL", le32(static_cast<uint32_t>(height))));
    put(0x0048, 0x0105, sequence(0x0048, 0x0105, {element(0x0048, 0x0112, "DS", "20")}, undefined));
    char spacing[64];
    std::snprintf(spacing, sizeof(spacing), "%.9g\\%.9g", s.spacing_mm, s.spacing_mm);
    const std::string measures = sequence(0x0028, 0x9110, {element(0x0028, 0x0030, "DS", spacing)}, undefined);
    put(0x5200, 0x9229, sequence(0x5200, 0x9229, {measures}, undefined));
    if (s.sparse) {
      std::vector<std::string> frames;
      for (size_t i = first; i < last; ++i) {
        const int64_t column = tiles[i] % across, row = tiles[i] / across;
        const std::string position =
            element(0x0048, 0x021E, "SL", le32(static_cast<uint32_t>(column * s.tile_width + 1))) +
            element(0x0048, 0x021F, "SL", le32(static_cast<uint32_t>(row * s.tile_height + 1)));
        frames.push_back(sequence(0x0048, 0x021A, {position}, undefined));
      }
      put(0x5200, 0x9230, sequence(0x5200, 0x9230, frames, undefined));
    }
    for (const auto& [tag, bytes] : s.extra) data[tag] = bytes;
    std::string pixels;
    if (encapsulated) {
      std::string fragments;
      std::string table;
      for (size_t i = first; i < last; ++i) {
        table += le32(static_cast<uint32_t>(fragments.size()));
        std::string frame = frame_bytes(s, tiles[i] % across, tiles[i] / across);
        if (frame.size() % 2) frame += '\0';  // fragments have even lengths: only a frame's end is padded
        std::vector<std::string> pieces = {frame};
        const size_t half = frame.size() / 4 * 2;
        if (s.split_fragments) pieces = {frame.substr(0, half), frame.substr(half)};
        for (const std::string& piece : pieces)
          fragments += le16(0xFFFE) + le16(0xE000) + le32(static_cast<uint32_t>(piece.size())) + piece;
      }
      if (!s.offset_table) table.clear();
      pixels = le16(0x7FE0) + le16(0x0010) + "OB" + le16(0) + le32(0xFFFFFFFF) + le16(0xFFFE) + le16(0xE000) +
               le32(static_cast<uint32_t>(table.size())) + table + fragments + le16(0xFFFE) + le16(0xE0DD) + le32(0);
    } else {
      std::string raw;
      for (size_t i = first; i < last; ++i) raw += frame_bytes(s, tiles[i] % across, tiles[i] / across);
      pixels = element(0x7FE0, 0x0010, "OB", raw);
    }
    std::string meta = element(0x0002, 0x0001, "OB", std::string("\0\1", 2)) +
                       element(0x0002, 0x0002, "UI", sop_class) + element(0x0002, 0x0003, "UI", instance) +
                       element(0x0002, 0x0010, "UI", syntax);
    meta = element(0x0002, 0x0000, "UL", le32(static_cast<uint32_t>(meta.size()))) + meta;
    std::string file = std::string(128, '\0') + "DICM" + meta;
    for (const auto& [tag, bytes] : data) file += bytes;
    file += pixels;
    const std::string path = s.parts == 1 ? stem + ".dcm" : stem + "_" + std::to_string(part + 1) + ".dcm";
    std::filesystem::create_directories(std::filesystem::path(path).parent_path());
    std::ofstream(path, std::ios::binary).write(file.data(), static_cast<std::streamsize>(file.size()));
    paths.push_back(path);
  }
  return paths;
}

// What a reader must return for the level: each written frame as decoded, clipped to the level; white where no
// frame was written.
inline torch::Tensor expected_dicom_pixels(const DicomLevelSpec& s) {
  const int64_t height = s.rgb.size(0), width = s.rgb.size(1);
  const int64_t across = (width + s.tile_width - 1) / s.tile_width, down = (height + s.tile_height - 1) / s.tile_height;
  auto out = torch::full({height, width, 3}, 255, torch::kUInt8);
  for (int64_t t = 0; t < across * down; ++t) {
    if (s.sparse && s.omitted.count(t)) continue;
    const int64_t column = t % across, row = t / across;
    torch::Tensor tile = dicom_writer::tile_pixels(s, column, row);
    if (s.jpeg) tile = data::decode_image(data::encode_jpeg(tile, 90), "expected tile");
    const int64_t x = column * s.tile_width, y = row * s.tile_height;
    const int64_t w = std::min<int64_t>(s.tile_width, width - x), h = std::min<int64_t>(s.tile_height, height - y);
    out.slice(0, y, y + h).slice(1, x, x + w).copy_(tile.slice(0, 0, h).slice(1, 0, w));
  }
  return out;
}

}  // namespace pathvlm::testing
