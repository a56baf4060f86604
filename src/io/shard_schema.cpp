// Shard schema checks (structure, dtypes, counts) and the record-by-record validation behind `shards validate`.
#include "io/shard_schema.h"

#include <cctype>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/error.h"
#include "io/checked_rows.h"
#include "io/shard_envelope.h"

namespace pathvlm::shards {
namespace {

constexpr int64_t kBatchRows = 256;

struct KindName {
  ShardKind kind;
  const char* name;
};
constexpr KindName kKinds[] = {
    {ShardKind::Tiles, "tiles"}, {ShardKind::TileFeatures, "tile_features"}, {ShardKind::Slides, "slides"}};

std::string file_name(const h5::File& file) { return str("shard '", file.file_path(), "'"); }

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

// The dataset at `path`, which must hold numbers of one of `dtypes` with `rank` dimensions.
h5::Dataset numeric(const h5::Group& group, const std::string& path, std::initializer_list<torch::ScalarType> dtypes,
                    size_t rank) {
  h5::Dataset ds = group.dataset(path);
  std::string allowed;
  bool ok = ds.kind() == h5::Dataset::Kind::Numeric;
  bool match = false;
  for (auto dt : dtypes) {
    allowed += (allowed.empty() ? "" : " or ") + h5::dtype_name(dt);
    match = match || (ok && ds.dtype() == dt);
  }
  PATHVLM_CHECK(match, ds.where(), ": dtype ", ds.dtype_name(), ", expected ", allowed);
  PATHVLM_CHECK(ds.shape().size() == rank, ds.where(), ": shape ", shape_text(ds.shape()), " has rank ",
                ds.shape().size(), ", expected ", rank);
  return ds;
}

h5::Dataset strings(const h5::Group& group, const std::string& path) {
  h5::Dataset ds = group.dataset(path);
  PATHVLM_CHECK(ds.kind() == h5::Dataset::Kind::String, ds.where(), ": dtype ", ds.dtype_name(),
                ", expected vlen UTF-8 strings");
  PATHVLM_CHECK(ds.shape().size() == 1, ds.where(), ": shape ", shape_text(ds.shape()), ", expected [N]");
  return ds;
}

void same_rows(const h5::Dataset& a, const h5::Dataset& b) {
  PATHVLM_CHECK(a.rows() == b.rows(), a.where(), " has ", a.rows(), " rows but ", b.path(), " has ", b.rows());
}

// The tiles' image dataset: uint8 [N,H,W,3] (raw), or encoded: vlen uint8 [N] (schema 1) / uint8 [bytes] with
// /images_offsets and /images_crc32 (schema 2).
h5::Dataset tile_images(const h5::File& file, int version) {
  h5::Dataset images = file.dataset("images");
  if (version == 1 && images.kind() == h5::Dataset::Kind::Blob) {
    PATHVLM_CHECK(images.shape().size() == 1, images.where(), ": encoded images must have shape [N], got ",
                  shape_text(images.shape()));
    return images;
  }
  if (version >= 2 && images.kind() == h5::Dataset::Kind::Numeric && images.shape().size() == 1) {
    numeric(file, "images", {torch::kUInt8}, 1);
    numeric(file, "images_offsets", {torch::kInt64}, 1);
    return images;
  }
  numeric(file, "images", {torch::kUInt8}, 4);
  PATHVLM_CHECK(images.shape()[3] == 3, images.where(), ": shape ", shape_text(images.shape()),
                ", expected [N,H,W,3] (RGB)");
  return images;
}

// Records in the tiles' image dataset (schema 2 encoded: offsets - 1).
int64_t image_count(const h5::File& file, const h5::Dataset& images, int version) {
  if (version >= 2 && images.shape().size() == 1) return file.dataset("images_offsets").rows() - 1;
  return images.rows();
}

// Schema 2: the record dataset `name` in `g` has a checksum per row.
void require_checksums(const h5::Group& g, const std::string& name, int64_t rows, int version) {
  if (version < 2) return;
  h5::Dataset crc = numeric(g, name + "_crc32", {torch::kInt64}, 1);
  PATHVLM_CHECK(crc.rows() == rows, crc.where(), " has ", crc.rows(), " rows, expected ", rows);
}

// "" when slide group `g` has well-formed features, coords and attributes; otherwise what is wrong.
std::string slide_structure_problem(const h5::Group& g, int version) {
  try {
    h5::Dataset features = numeric(g, "features", {torch::kFloat16, torch::kFloat32}, 2);
    require_checksums(g, "features", features.rows(), version);
    h5::Dataset coords = numeric(g, "coords", {torch::kInt64}, 2);
    PATHVLM_CHECK(coords.shape()[1] == 2, coords.where(), ": shape ", shape_text(coords.shape()), ", expected [n,2]");
    same_rows(features, coords);
    for (const char* name : {"patch_size", "patch_size_level0"})
      PATHVLM_CHECK(g.attr_int(name) > 0, g.where(), ": attribute '", name, "' must be positive");
    for (const char* name : {"mpp", "magnification"})
      PATHVLM_CHECK(g.attr_double(name) > 0, g.where(), ": attribute '", name, "' must be positive");
    PATHVLM_CHECK(!g.attr_string("encoder").empty(), g.where(), ": attribute 'encoder' is empty");
    return "";
  } catch (const Error& e) {
    return e.what();
  }
}

bool blank(const std::string& s) {
  for (unsigned char c : s)
    if (!std::isspace(c)) return false;
  return true;
}

std::string image_signature_problem(const h5::Blob& bytes) {
  static const uint8_t jpeg[] = {0xFF, 0xD8, 0xFF};
  static const uint8_t png[] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (bytes.empty()) return "empty image";
  if (bytes.size() >= sizeof jpeg && std::memcmp(bytes.data(), jpeg, sizeof jpeg) == 0) return "";
  if (bytes.size() >= sizeof png && std::memcmp(bytes.data(), png, sizeof png) == 0) return "";
  return str("image of ", bytes.size(), " bytes has neither a JPEG nor a PNG signature");
}

// Collects bad records, keeping at most `limit` of them (0 = all) while counting every one.
struct Collector {
  ValidateReport& report;
  int64_t limit;
  std::set<int64_t> bad_indices;
  void add(int64_t index, std::string id, std::string problem) {
    if (index < 0 || bad_indices.insert(index).second) ++report.bad_records;
    if (limit == 0 || static_cast<int64_t>(report.bad.size()) < limit)
      report.bad.push_back({index, std::move(id), std::move(problem)});
  }
};

// Reads rows [0, n) of a numeric dataset in batches; `inspect(begin, batch)` checks each batch. A batch that fails
// to read is retried row by row so the broken records are named.
template <class Inspect>
void scan_rows(const CheckedRows& ds, const std::vector<std::string>& ids, Collector& bad, Inspect&& inspect) {
  int64_t n = ds.rows();
  for (int64_t begin = 0; begin < n; begin += kBatchRows) {
    int64_t count = std::min(kBatchRows, n - begin);
    try {
      inspect(begin, ds.read_rows(begin, count));
    } catch (const Error&) {
      for (int64_t i = begin; i < begin + count; ++i) {
        try {
          inspect(i, ds.read_rows(i, 1));
        } catch (const Error& e) {
          bad.add(i, i < static_cast<int64_t>(ids.size()) ? ids[i] : "", e.what());
        }
      }
    }
  }
}

// Marks the rows of `batch` (starting at `begin`) that hold NaN or infinity.
void report_non_finite(const torch::Tensor& batch, int64_t begin, const std::vector<std::string>& ids,
                       const std::string& what, Collector& bad) {
  torch::Tensor bad_rows = torch::isfinite(batch.to(torch::kFloat32)).logical_not().flatten(1).any(1);
  if (!bad_rows.any().item<bool>()) return;
  torch::Tensor rows = bad_rows.nonzero().flatten();
  for (int64_t k = 0; k < rows.numel(); ++k) {
    int64_t i = begin + rows[k].item<int64_t>();
    bad.add(i, i < static_cast<int64_t>(ids.size()) ? ids[i] : "", str(what, " holds NaN or infinity"));
  }
}

void check_ids_and_text(const std::vector<std::string>& ids, const std::vector<std::string>* captions,
                        Collector& bad) {
  std::map<std::string, int64_t> first_seen;
  for (int64_t i = 0; i < static_cast<int64_t>(ids.size()); ++i) {
    if (ids[i].empty()) bad.add(i, "", "empty id");
    auto [it, fresh] = first_seen.emplace(ids[i], i);
    if (!fresh && !ids[i].empty()) bad.add(i, ids[i], str("duplicate id (first at record ", it->second, ")"));
    if (captions && blank((*captions)[i])) bad.add(i, ids[i], "empty caption");
  }
}

void validate_tiles(const h5::File& file, const ValidateOptions& options, Collector& bad) {
  auto ids = file.dataset("ids").read_strings();
  auto captions = file.dataset("captions").read_strings();
  check_ids_and_text(ids, &captions, bad);
  if (file.dataset("images").shape().size() == 1) {
    const CheckedBytes images(file, "images");
    for (int64_t i = 0; i < images.size(); ++i) {
      try {
        const h5::Blob blob = images.read(i);
        std::string problem = image_signature_problem(blob);
        if (problem.empty() && options.check_image) problem = options.check_image(blob);
        if (!problem.empty()) bad.add(i, ids[i], problem);
      } catch (const Error& e) {
        bad.add(i, ids[i], e.what());
      }
    }
  } else {
    scan_rows(CheckedRows(file, "images"), ids, bad, [](int64_t, const torch::Tensor&) {});
  }
  if (file.has("labels")) numeric(file, "labels", {torch::kInt32}, 1).read();
}

void validate_tile_features(const h5::File& file, Collector& bad) {
  auto ids = file.dataset("ids").read_strings();
  check_ids_and_text(ids, nullptr, bad);
  scan_rows(CheckedRows(file, "features"), ids, bad, [&](int64_t begin, const torch::Tensor& batch) {
    report_non_finite(batch, begin, ids, "features", bad);
  });
}

void validate_slides(const h5::File& file, Collector& bad) {
  h5::Group slides = file.group("slides");
  auto names = slides.children();
  std::set<std::string> known(names.begin(), names.end());
  for (int64_t i = 0; i < static_cast<int64_t>(names.size()); ++i) {
    const std::string& id = names[i];
    try {
      PATHVLM_CHECK(slides.has_group(id), "'", file.file_path(), "': /slides/", id, " is not a group");
      h5::Group g = slides.group(id);
      std::string problem = slide_structure_problem(g, kSchemaVersion);
      if (!problem.empty()) {
        bad.add(i, id, problem);
        continue;
      }
      const CheckedRows rows(g, "features");
      torch::Tensor features = rows.read_rows(0, rows.rows());
      torch::Tensor coords = g.dataset("coords").read();
      if (features.size(0) == 0) bad.add(i, id, "slide has no tiles");
      if (!torch::isfinite(features.to(torch::kFloat32)).all().item<bool>())
        bad.add(i, id, "features hold NaN or infinity");
      if (coords.numel() > 0 && coords.min().item<int64_t>() < 0) bad.add(i, id, "coords hold negative values");
    } catch (const Error& e) {
      bad.add(i, id, e.what());
    }
  }
  if (file.has("reports")) {
    auto slide_ids = file.dataset("reports/slide_id").read_strings();
    auto texts = file.dataset("reports/text").read_strings();
    for (size_t r = 0; r < slide_ids.size(); ++r) {
      if (!known.count(slide_ids[r]))
        bad.add(-1, slide_ids[r], str("report ", r, " names slide '", slide_ids[r], "', which is not in /slides"));
      if (blank(texts[r])) bad.add(-1, slide_ids[r], str("report ", r, " is empty"));
    }
  }
}

}  // namespace

std::string kind_name(ShardKind kind) {
  for (const auto& k : kKinds)
    if (k.kind == kind) return k.name;
  throw Error("unknown shard kind");
}

ShardKind kind_from_name(const std::string& name) {
  for (const auto& k : kKinds)
    if (name == k.name) return k.kind;
  throw Error(str("unknown shard kind '", name, "' (known: tiles, tile_features, slides)"));
}

namespace {
std::pair<ShardKind, int> parse_schema(const h5::File& file) {
  const std::string what = file_name(file);
  PATHVLM_CHECK(file.has_attr(kSchemaAttr), what, ": not a pathvlm shard: the root attribute '", kSchemaAttr,
                "' is missing (expected e.g. \"tiles/", kSchemaVersion, "\")");
  std::string value = file.attr_string(kSchemaAttr);
  size_t slash = value.find('/');
  PATHVLM_CHECK(slash != std::string::npos, what, ": ", kSchemaAttr, " = \"", value,
                "\" is not of the form \"<kind>/<version>\"");
  std::string version_text = value.substr(slash + 1);
  PATHVLM_CHECK(!version_text.empty() && version_text.size() < 9 &&
                    version_text.find_first_not_of("0123456789") == std::string::npos,
                what, ": ", kSchemaAttr, " = \"", value, "\": version '", version_text, "' is not a number");
  int version = std::stoi(version_text);
  ShardKind kind;
  try {
    kind = kind_from_name(value.substr(0, slash));
  } catch (const Error& e) {
    throw Error(str(what, ": ", e.what()));
  }
  PATHVLM_CHECK(version >= 1, what, ": schema version ", version, " is not valid");
  PATHVLM_CHECK(version <= kSchemaVersion, what, ": schema version ", version,
                " was written by a newer pathvlm (this build reads up to ", kSchemaVersion, ")");
  return {kind, version};
}
}  // namespace

ShardKind read_schema(const h5::File& file) { return parse_schema(file).first; }
int read_schema_version(const h5::File& file) { return parse_schema(file).second; }

void write_schema(h5::File& file, ShardKind kind) {
  file.set_attr(kSchemaAttr, str(kind_name(kind), "/", kStreamingVersion));
}

h5::File open_shard(const std::string& path) {
  std::error_code ec;
  PATHVLM_CHECK(std::filesystem::is_regular_file(path, ec), "shard '", path, "': no such file");
  PATHVLM_CHECK(has_envelope(path), "shard '", path, "' has no integrity header: it was written by an older pathvlm",
                " (schema 1) or is not a pathvlm shard; if pathvlm wrote it, run `pathvlm shards upgrade ", path, "`");
  check_envelope(path);
  h5::File file = h5::File::open(path);
  PATHVLM_CHECK(read_schema_version(file) == kSchemaVersion, "shard '", path, "': schema version ",
                read_schema_version(file), " inside an integrity envelope (expected ", kSchemaVersion, ")");
  return file;
}

ShardKind check_schema(const h5::File& file, bool each_slide) {
  const auto [kind, version] = parse_schema(file);
  switch (kind) {
    case ShardKind::Tiles: {
      h5::Dataset images = tile_images(file, version);
      h5::Dataset captions = strings(file, "captions");
      h5::Dataset ids = strings(file, "ids");
      const int64_t n = image_count(file, images, version);
      PATHVLM_CHECK(n == ids.rows(), images.where(), " holds ", n, " images but ", ids.path(), " has ", ids.rows(),
                    " rows");
      require_checksums(file, "images", n, version);
      same_rows(ids, captions);
      if (file.has("labels")) same_rows(ids, numeric(file, "labels", {torch::kInt32}, 1));
      break;
    }
    case ShardKind::TileFeatures: {
      h5::Dataset features = numeric(file, "features", {torch::kFloat16, torch::kFloat32}, 3);
      same_rows(strings(file, "ids"), features);
      require_checksums(file, "features", features.rows(), version);
      break;
    }
    case ShardKind::Slides: {
      h5::Group slides = file.group("slides");
      for (const auto& id : each_slide ? slides.children() : std::vector<std::string>{}) {
        PATHVLM_CHECK(slides.has_group(id), file_name(file), ": /slides/", id, " is not a group");
        std::string problem = slide_structure_problem(slides.group(id), version);
        PATHVLM_CHECK(problem.empty(), problem);
      }
      if (file.has("reports")) same_rows(strings(file, "reports/slide_id"), strings(file, "reports/text"));
      break;
    }
  }
  return kind;
}

int64_t record_count(const h5::File& file, ShardKind kind) {
  if (kind == ShardKind::Slides) return static_cast<int64_t>(file.group("slides").children().size());
  return file.dataset("ids").rows();
}

ValidateReport validate(const h5::File& file, const ValidateOptions& options) {
  ValidateReport report;
  report.kind = check_schema(file, false);
  report.records = record_count(file, report.kind);
  Collector bad{report, options.max_reported, {}};
  switch (report.kind) {
    case ShardKind::Tiles: validate_tiles(file, options, bad); break;
    case ShardKind::TileFeatures: validate_tile_features(file, bad); break;
    case ShardKind::Slides: validate_slides(file, bad); break;
  }
  return report;
}

}  // namespace pathvlm::shards
