// `pathvlm shards inspect|validate|upgrade FILE...`: what an HDF5 shard holds, which of its records are broken, and
// rewriting shards of an older pathvlm in the checksummed layout.
#include <cctype>
#include <cstdio>
#include <iostream>
#include <map>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "data/image.h"
#include "data/tile_validate.h"
#include "io/hdf5.h"
#include "io/checked_rows.h"
#include "io/shard_envelope.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"

namespace pathvlm::cli {
namespace {

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

// A string shortened for one line of output, quoted.
std::string excerpt(const std::string& text, size_t limit = 100) {
  std::string s;
  for (char c : text) s += (c == '\n' || c == '\t') ? ' ' : c;
  if (s.size() > limit) s = s.substr(0, limit) + "...";
  return "\"" + s + "\"";
}

std::string image_format(const h5::Blob& bytes) {  // "JPEG", "PNG", "TIFF", "WEBP"
  const auto format = data::sniff_image_format(bytes.data(), bytes.size());
  if (format == data::ImageFormat::Unknown) return "unknown format";
  std::string name = data::image_format_name(format);
  for (auto& c : name) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

std::string attr_value(const h5::Object& object, const std::string& name) {
  try {
    return excerpt(object.attr_string(name), 60);
  } catch (const Error&) {
  }
  try {
    return std::to_string(object.attr_int(name));
  } catch (const Error&) {
  }
  try {
    return str(object.attr_double(name));
  } catch (const Error&) {
  }
  return "(array or compound)";
}

void print_dataset_line(const h5::Dataset& ds, const std::string& indent) {
  std::cout << indent << ds.path() << "  " << ds.dtype_name() << " " << shape_text(ds.shape());
  auto chunk = ds.chunk();
  if (!chunk.empty()) std::cout << "  chunk " << shape_text(chunk);
  if (int level = ds.gzip_level()) std::cout << "  gzip " << level;
  std::cout << "\n";
}

// Every dataset under `group`; of /slides only the first slide group is expanded.
void print_tree(const h5::Group& group, const std::string& indent) {
  auto names = group.children();
  size_t shown = 0;
  for (const auto& name : names) {
    if (group.path() == "/slides" && shown == 1) {
      std::cout << indent << "... and " << names.size() - 1 << " more slide groups like the one above\n";
      break;
    }
    ++shown;
    if (group.has_dataset(name)) {
      print_dataset_line(group.dataset(name), indent);
    } else if (group.has_group(name)) {
      h5::Group child = group.group(name);
      std::cout << indent << child.path() << "/\n";
      for (const auto& attr : child.attr_names())
        std::cout << indent << "  @" << attr << " = " << attr_value(child, attr) << "\n";
      print_tree(child, indent + "  ");
    }
  }
}

void print_sample(const h5::File& file, shards::ShardKind kind) {
  using shards::ShardKind;
  if (kind == ShardKind::Slides) {
    h5::Group slides = file.group("slides");
    auto names = slides.children();
    int64_t tiles = 0;
    for (const auto& id : names) tiles += slides.group(id).dataset("features").rows();
    std::cout << "  slides        " << names.size() << " (" << tiles << " tiles in all)\n";
    if (file.has("reports")) std::cout << "  reports       " << file.dataset("reports/text").rows() << "\n";
    if (names.empty()) return;
    h5::Group first = slides.group(names[0]);
    h5::Dataset features = first.dataset("features");
    std::cout << "  sample slide  " << names[0] << ": " << features.rows() << " tiles, features "
              << features.dtype_name() << " " << shape_text(features.shape()) << "\n";
    if (features.rows() > 0) {
      auto xy = first.dataset("coords").read_rows(0, 1).flatten().to(torch::kInt64);
      std::cout << "                first coords x " << xy[0].item<int64_t>() << ", y " << xy[1].item<int64_t>()
                << "\n";
    }
    if (file.has("reports") && file.dataset("reports/text").rows() > 0)
      std::cout << "  sample report " << file.dataset("reports/slide_id").read_string(0) << ": "
                << excerpt(file.dataset("reports/text").read_string(0)) << "\n";
    return;
  }
  h5::Dataset ids = file.dataset("ids");
  std::cout << "  records       " << ids.rows() << "\n";
  if (ids.rows() == 0) return;
  std::cout << "  sample record 0\n    id          " << excerpt(ids.read_string(0)) << "\n";
  if (kind == ShardKind::TileFeatures) {
    h5::Dataset features = file.dataset("features");
    torch::Tensor row = features.read_rows(0, 1).to(torch::kFloat32);
    std::cout << "    features    " << features.dtype_name() << " " << shape_text(features.shape())
              << ", record 0 mean " << row.mean().item<double>() << " std " << row.std().item<double>() << "\n";
    return;
  }
  std::cout << "    caption     " << excerpt(file.dataset("captions").read_string(0)) << "\n";
  h5::Dataset images = file.dataset("images");
  if (images.kind() == h5::Dataset::Kind::Blob || images.shape().size() == 1) {
    h5::Blob blob = images.kind() == h5::Dataset::Kind::Blob ? images.read_blob(0)
                                                               : shards::CheckedBytes(file, "images").read(0);
    std::cout << "    image       " << image_format(blob) << ", " << blob.size() << " bytes\n";
  } else {
    auto shape = images.shape();
    std::cout << "    image       uint8 " << shape[1] << "x" << shape[2] << "x" << shape[3] << "\n";
  }
  if (file.has("labels")) std::cout << "    label       " << file.dataset("labels").read_rows(0, 1)[0].item<int64_t>() << "\n";
}

int shards_inspect(const Args& args) {
  ArgParser parser("pathvlm shards inspect",
                   "Print each shard's kind, schema version, record counts, datasets (shape, dtype, chunking) and "
                   "a sample record. Files without a pathvlm schema (or of an unknown one) are listed as plain HDF5. "
                   "Exits 1 if a file is missing, unreadable, without a known schema or invalid.");
  parser.positional("FILE", "HDF5 shard files", /*many=*/true);
  if (!parser.parse(args)) return 0;
  int status = 0;
  for (const auto& path : parser.positionals()) {
    std::cout << path << "\n";
    try {
      // Sealed shards only after their integrity check; other HDF5 files as they are.
      h5::File file = shards::has_envelope(path) ? shards::open_shard(path) : h5::File::open(path);
      std::optional<shards::ShardKind> kind;
      try {
        kind = shards::read_schema(file);
        std::cout << "  schema        " << shards::kind_name(*kind) << " version "
                  << shards::read_schema_version(file) << "\n";
      } catch (const Error& e) {
        std::cout << "  schema        none (" << e.what() << ")\n";
        status = 1;
      }
      for (const auto& attr : file.attr_names())
        if (attr != shards::kSchemaAttr) std::cout << "  @" << attr << " = " << attr_value(file, attr) << "\n";
      std::cout << "  datasets\n";
      print_tree(file, "    ");
      if (kind) {
        try {
          shards::check_schema(file);
          print_sample(file, *kind);
        } catch (const Error& e) {
          std::cout << "  INVALID       " << e.what() << "\n";
          status = 1;
        }
      }
    } catch (const Error& e) {
      std::cout << "  error: " << e.what() << "\n";
      status = 1;
    }
  }
  return status;
}

// Every record of a tiles shard decoded as training decodes it (data/tile_validate.h), merged into `report`:
// one line per record; a record the structural check flagged keeps its reasons (the decoder would repeat them in
// its own words).
void add_decode_problems(const std::string& path, int threads, shards::ValidateReport& report) {
  std::map<int64_t, shards::BadRecord> by_record;
  std::vector<shards::BadRecord> unplaced;
  for (auto& b : report.bad) {
    if (b.index < 0) {
      unplaced.push_back(std::move(b));
      continue;
    }
    auto [it, fresh] = by_record.try_emplace(b.index, b);
    if (!fresh) it->second.problem += "; " + b.problem;  // one line per record
  }
  try {
    const auto dataset = data::TileDataset::open(path);
    for (auto& [i, problem] : data::validate_tiles(dataset, threads).bad)
      by_record.try_emplace(i, shards::BadRecord{i, dataset.id(i), problem});
  } catch (const Error& e) {
    unplaced.push_back({-1, "", str("records not decoded: ", e.what())});
  }
  report.bad = std::move(unplaced);
  for (auto& [i, b] : by_record) report.bad.push_back(std::move(b));
  report.bad_records = static_cast<int64_t>(report.bad.size());
}

int shards_validate(const Args& args) {
  ArgParser parser("pathvlm shards validate",
                   "Check each shard's schema and read every record as training does: tiles images are decoded "
                   "(corrupt, truncated or too large images), captions must be non-empty UTF-8. Prints the bad "
                   "records (record, id, reason). Exits 1 if any shard has a bad record or cannot be read.");
  parser.positional("FILE", "HDF5 shard files", /*many=*/true);
  parser.option("max-report", "bad records printed per file (0 = all)", false, "20");
  parser.option("max-pixels", "largest image (width x height) accepted, as clip.data.max_image_pixels", false,
                std::to_string(data::kDefaultMaxImagePixels));
  parser.option("threads", "image decoding threads", false, "2");
  if (!parser.parse(args)) return 0;
  const int64_t max_report = parser.get_int("max-report");
  data::set_max_image_pixels(parser.get_int("max-pixels"));
  const int threads = static_cast<int>(parser.get_int("threads"));
  int64_t bad_files = 0;
  for (const auto& path : parser.positionals()) {
    try {
      h5::File file = shards::open_shard(path);  // a damaged or schema-1 file is an error here, before libhdf5
      shards::ValidateReport report = shards::validate(file, {});  // every bad record, merged below
      if (report.kind == shards::ShardKind::Tiles) add_decode_problems(path, threads, report);
      if (report.bad_records == 0) {
        std::cout << path << ": ok (" << shards::kind_name(report.kind) << ", " << report.records << " records)\n";
        continue;
      }
      ++bad_files;
      std::cout << path << ": " << report.bad_records << " bad of " << report.records << " records ("
                << shards::kind_name(report.kind) << ")\n";
      const int64_t shown = max_report > 0 ? std::min(max_report, report.bad_records) : report.bad_records;
      for (int64_t k = 0; k < shown; ++k) {
        const auto& b = report.bad[static_cast<size_t>(k)];
        std::cout << "  ";
        if (b.index >= 0) std::cout << "record " << b.index << " ";
        if (!b.id.empty()) std::cout << "id " << excerpt(b.id, 60) << " ";
        std::cout << ": " << b.problem << "\n";
      }
      if (shown < report.bad_records)
        std::cout << "  ... " << report.bad_records - shown << " more (see --max-report)\n";
    } catch (const Error& e) {
      ++bad_files;
      std::cout << path << ": invalid: " << e.what() << "\n";
    }
  }
  if (parser.positionals().size() > 1)
    std::cout << parser.positionals().size() - bad_files << " of " << parser.positionals().size() << " shards ok\n";
  return bad_files ? 1 : 0;
}

int shards_upgrade(const Args& args) {
  ArgParser parser("pathvlm shards upgrade",
                   "Rewrite shards written by an older pathvlm (schema 1: no checksums) in the checksummed layout "
                   "(schema 2), in place: the new file replaces the old one under the same name only once it is "
                   "complete. The old file is read in a child process with a time limit, so a damaged one is "
                   "reported instead of crashing. Shards already of schema 2 are checked and left as they are. "
                   "Exits 1 if any file fails.");
  parser.positional("FILE", "HDF5 shard files", /*many=*/true);
  parser.option("timeout", "seconds allowed per file (0 = 60 plus 1 per 20 MB)", false, "0");
  if (!parser.parse(args)) return 0;
  int64_t failed = 0;
  for (const auto& path : parser.positionals()) {
    try {
      const auto result = shards::upgrade_shard(path, parser.get_double("timeout"));
      std::cout << path << (result == shards::UpgradeResult::Upgraded ? ": upgraded to schema " : ": already schema ")
                << shards::kSchemaVersion << "\n";
    } catch (const Error& e) {
      ++failed;
      std::cout << path << ": not upgraded: " << e.what() << "\n";
    }
  }
  return failed ? 1 : 0;
}

// One line per verb; `pathvlm shards` with no verb lists them.
const std::vector<Verb> kVerbs = {
    {"inspect", "kind, schema version, counts, shapes, dtypes and a sample record of each shard", shards_inspect},
    {"build", "tiles shards + manifest from images and a CSV/TSV/JSONL of captions", cmd_shards_build},
    {"validate", "read every record of each shard and report the bad ones (exit 1 if any)", shards_validate},
    {"upgrade", "rewrite shards of an older pathvlm (schema 1) with checksums (schema 2), in place", shards_upgrade},
};

}  // namespace

int cmd_shards(const Args& args) {
  return run_verb("shards", "FILE...", "HDF5 shards (tiles, tile_features, slides).", kVerbs, args);
}

}  // namespace pathvlm::cli
