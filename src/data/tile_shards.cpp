#include "data/tile_shards.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_set>

#include "core/error.h"
#include "core/progress.h"
#include "data/csv.h"
#include "data/data_files.h"
#include "data/image.h"
#include "data/shard_manifest.h"
#include "data/tile_validate.h"
#include "data/webdataset.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"

namespace fs = std::filesystem;

namespace pathvlm::data {
namespace {

constexpr const char* kManifestTag = "tiles/1";
constexpr int64_t kBlock = 64;  // records decoded in parallel before being appended in order

// One row of the records file or one WebDataset sample, before its image is looked at.
struct SourceRecord {
  int64_t line = 0;
  std::string file, caption, id;
  std::optional<int32_t> label;
  std::string problem;                      // set when the row itself is malformed
  std::optional<tar::Member> image_member;  // a sample's image, in the tar `archive`
  std::string archive;
};

std::optional<int32_t> parse_label(const std::string& text) {
  const std::string t = trim_space(text);
  if (t.empty() || t.size() > 9 || !std::all_of(t.begin(), t.end(), ::isdigit)) return std::nullopt;
  return static_cast<int32_t>(std::stol(t));
}

// The CSV columns (JSONL keys) a record's image and caption are under: the ones the user named, else the usual ones.
struct RecordKeys {
  std::string image, caption;
  int image_column(const std::vector<std::string>& header) const {
    return image.empty() ? find_csv_column(header, {"filepath", "image", "path"})
                         : find_csv_column(header, {image.c_str()});
  }
  int caption_column(const std::vector<std::string>& header) const {
    return caption.empty() ? find_csv_column(header, {"caption", "text", "title"})
                           : find_csv_column(header, {caption.c_str()});
  }
  std::string image_of(const nlohmann::json& obj) const;
  std::string caption_of(const nlohmann::json& obj) const;
  std::string names() const {
    return str("'", image.empty() ? "filepath" : image, "' and '", caption.empty() ? "caption" : caption, "'");
  }
};

std::vector<SourceRecord> read_csv_records(const std::string& path, char sep, const RecordKeys& keys,
                                           bool& has_labels) {
  auto rows = parse_csv(read_text_file(path, "records file"), sep, path, "records file");
  PATHVLM_CHECK(!rows.empty(), "records file '", path, "' is empty (expected a header with columns ", keys.names(),
                ")");
  const auto& header = rows[0].fields;
  const int file_col = keys.image_column(header), caption_col = keys.caption_column(header);
  const int label_col = find_csv_column(header, {"label"}), id_col = find_csv_column(header, {"id"});
  if (file_col < 0 || caption_col < 0) {
    std::string names;
    for (const auto& h : header) names += (names.empty() ? "'" : ", '") + h + "'";
    throw Error(str("records file '", path, "': the header needs columns ", keys.names(), " (found ", names,
                    sep == ',' ? "; for a tab-separated file use the .tsv extension or --separator tab" : "",
                    "; other names: --csv-img-key, --csv-caption-key)"));
  }
  has_labels = label_col >= 0;
  std::vector<SourceRecord> out;
  for (size_t r = 1; r < rows.size(); ++r) {
    const auto& [line, fields] = rows[r];
    SourceRecord rec;
    rec.line = line;
    if (fields.size() != header.size()) {
      rec.file = fields.size() > static_cast<size_t>(file_col) ? trim_space(fields[file_col]) : "";
      rec.problem = str(fields.size(), " fields, the header has ", header.size());
      out.push_back(rec);
      continue;
    }
    rec.file = trim_space(fields[file_col]);
    rec.caption = trim_space(fields[caption_col]);
    rec.id = id_col >= 0 ? trim_space(fields[id_col]) : rec.file;
    if (label_col >= 0) {
      rec.label = parse_label(fields[label_col]);
      if (!rec.label) rec.problem = str("label '", fields[label_col], "' is not a non-negative integer");
    }
    out.push_back(rec);
  }
  return out;
}

std::string json_text(const nlohmann::json& obj, std::initializer_list<const char*> keys) {
  for (const char* k : keys) {
    auto it = obj.find(k);
    if (it == obj.end() || it->is_null()) continue;
    return it->is_string() ? it->get<std::string>() : it->dump();
  }
  return "";
}

std::string RecordKeys::image_of(const nlohmann::json& obj) const {
  return image.empty() ? json_text(obj, {"filepath", "image", "path"}) : json_text(obj, {image.c_str()});
}
std::string RecordKeys::caption_of(const nlohmann::json& obj) const {
  return caption.empty() ? json_text(obj, {"caption", "text", "title"}) : json_text(obj, {caption.c_str()});
}

std::vector<SourceRecord> read_jsonl_records(const std::string& path, const RecordKeys& keys, bool& has_labels) {
  std::istringstream in(read_text_file(path, "records file"));
  std::vector<SourceRecord> out;
  std::string text;
  has_labels = false;
  for (int64_t line = 1; std::getline(in, text); ++line) {
    if (trim_space(text).empty()) continue;
    SourceRecord rec;
    rec.line = line;
    nlohmann::json obj;
    try {
      obj = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      rec.problem = str("invalid JSON (", e.what(), ")");
      out.push_back(rec);
      continue;
    }
    if (!obj.is_object()) {
      rec.problem = "not a JSON object";
      out.push_back(rec);
      continue;
    }
    rec.file = trim_space(keys.image_of(obj));
    rec.caption = trim_space(keys.caption_of(obj));
    rec.id = obj.contains("id") ? trim_space(json_text(obj, {"id"})) : rec.file;
    if (obj.contains("label")) {
      has_labels = true;
      const auto& l = obj["label"];
      rec.label = l.is_number_integer() && l.get<int64_t>() >= 0 && l.get<int64_t>() <= INT32_MAX
                      ? std::optional<int32_t>(static_cast<int32_t>(l.get<int64_t>()))
                      : (l.is_string() ? parse_label(l.get<std::string>()) : std::nullopt);
      if (!rec.label) rec.problem = str("label ", l.dump(), " is not a non-negative integer");
    }
    if (rec.file.empty() && rec.problem.empty())
      rec.problem = keys.image.empty() ? "no 'filepath' (or 'image') key" : str("no '", keys.image, "' key");
    out.push_back(rec);
  }
  if (has_labels)
    for (auto& rec : out)
      if (!rec.label && rec.problem.empty()) rec.problem = "no 'label' (other records have one)";
  return out;
}

// A WebDataset sample's image: the first of these fields it has (open_clip's "jpg;png;jpeg;webp", then TIFF).
constexpr const char* kWdsImageFields[] = {"jpg", "png", "jpeg", "webp", "tif", "tiff"};

std::string member_text(tar::Reader& archive, const tar::Member& member) {
  const auto bytes = archive.read(member);
  return std::string(bytes.begin(), bytes.end());
}

// The samples of WebDataset shards as records: the image field, the caption from `txt` (or a `json` member's
// caption, text or title), the label from `cls` (a class number, as webdataset writes it), the id
// "<shard name>/<key>". Damage in a tar ends its samples with one record naming the problem.
std::vector<SourceRecord> read_webdataset_records(const std::vector<std::string>& archives, bool progress,
                                                  bool& has_labels) {
  std::vector<SourceRecord> out;
  has_labels = false;
  Progress bar("listing", static_cast<int64_t>(archives.size()), "tars", [&] {
    Progress::Options opt;
    opt.enabled = progress && archives.size() > 1;
    return opt;
  }());
  for (const std::string& archive : archives) {
    const size_t before = out.size();
    const WdsShard shard = read_wds_shard(archive);
    tar::Reader reader(archive);
    const std::string stem = fs::path(archive).stem().string();
    for (const WdsSample& sample : shard.samples) {
      SourceRecord rec;
      rec.line = sample.number;
      rec.archive = archive;
      rec.file = str(archive, ":", sample.key);
      rec.id = stem + "/" + (sample.key.rfind("./", 0) == 0 ? sample.key.substr(2) : sample.key);  // `tar -C dir .`
      for (const char* field : kWdsImageFields)
        if (auto it = sample.fields.find(field); it != sample.fields.end()) {
          rec.image_member = it->second;
          rec.file = str(archive, ":", it->second.name);
          break;
        }
      try {
        if (auto txt = sample.fields.find("txt"); txt != sample.fields.end()) {
          rec.caption = trim_space(member_text(reader, txt->second));
        } else if (auto json = sample.fields.find("json"); json != sample.fields.end()) {
          const auto obj = nlohmann::json::parse(member_text(reader, json->second), nullptr, false);
          if (obj.is_object()) rec.caption = trim_space(RecordKeys().caption_of(obj));
        }
        if (auto cls = sample.fields.find("cls"); cls != sample.fields.end()) {
          has_labels = true;
          const std::string text = member_text(reader, cls->second);
          rec.label = parse_label(text);
          if (!rec.label && rec.problem.empty())
            rec.problem = str("cls '", trim_space(text), "' is not a non-negative integer");
        }
      } catch (const Error& e) {
        if (rec.problem.empty()) rec.problem = e.what();
      }
      if (rec.problem.empty() && !rec.image_member) rec.problem = "no image member (jpg, png, jpeg, webp, tif, tiff)";
      if (rec.problem.empty() && rec.caption.empty() && !sample.fields.count("txt"))
        rec.problem = "no caption member (txt, or json with a caption)";
      out.push_back(std::move(rec));
    }
    if (!shard.problem.empty()) {
      SourceRecord rest;
      rest.line = static_cast<int64_t>(shard.samples.size()) + 1;
      rest.file = archive;
      rest.problem = str("damaged tar, the samples from here on are lost: ", shard.problem);
      out.push_back(std::move(rest));
    }
    bar.advance(1, {{"samples", static_cast<int64_t>(out.size() - before)}});
  }
  bar.finish();
  if (has_labels)
    for (auto& rec : out)
      if (!rec.label && rec.problem.empty()) rec.problem = "no 'cls' label (other samples have one)";
  return out;
}

// What a worker thread makes of one record.
struct Prepared {
  std::string problem;
  Bytes bytes;           // encoded storage
  torch::Tensor pixels;  // raw storage
};

Prepared prepare(const SourceRecord& rec, const TileShardBuildOptions& o, const fs::path& base) {
  Prepared p;
  if (!rec.problem.empty()) return p.problem = rec.problem, p;
  if (rec.file.empty()) return p.problem = "empty file path", p;
  if (auto problem = caption_problem(rec.caption); !problem.empty()) return p.problem = problem, p;  // as training
  if (rec.id.empty()) return p.problem = "empty id", p;
  const fs::path file = rec.image_member || fs::path(rec.file).is_absolute() ? fs::path(rec.file) : base / rec.file;
  std::error_code ec;
  if (!rec.image_member && !fs::is_regular_file(file, ec))
    return p.problem = str("image file '", file.string(), "' not found"), p;
  try {
    Bytes bytes = rec.image_member ? tar::read(rec.archive, *rec.image_member) : read_file_bytes(file.string());
    const ImageFormat format = sniff_image_format(bytes.data(), bytes.size());
    torch::Tensor img = decode_image(bytes, str("image '", file.string(), "'"));
    const bool resized = o.size > 0;
    if (resized) img = resize_shortest_and_center_crop(img, o.size);
    if (o.storage == "raw") {
      p.pixels = img;
    } else {
      // Shards hold JPEG or PNG: a TIFF is kept losslessly as PNG.
      const ImageFormat want = o.storage == "jpeg"                              ? ImageFormat::Jpeg
                               : o.storage == "png" || format == ImageFormat::Tiff ? ImageFormat::Png
                                                                                   : format;
      if (!resized && want == format) p.bytes = std::move(bytes);  // no generation loss
      else p.bytes = want == ImageFormat::Jpeg ? encode_jpeg(img, o.jpeg_quality) : encode_png(img);
    }
  } catch (const Error& e) {
    p.problem = e.what();
  }
  return p;
}

// One shard being written: streamed into a staging file, sealed into `path` by close().
class ShardWriter {
 public:
  ShardWriter(const std::string& path, bool raw, int64_t height, int64_t width, bool labels)
      : path_(path), file_(h5::File::create(staging_path(path))) {
    shards::write_schema(*file_, shards::ShardKind::Tiles);
    file_->set_attr("created_by", "pathvlm shards build");
    if (raw) {
      h5::DatasetOptions opt;
      opt.chunk = {1, height, width, 3};
      images_.emplace(file_->Group::create("images", torch::kByte, {height, width, 3}, opt));
    } else {
      images_.emplace(file_->create_blobs("images"));
    }
    captions_.emplace(file_->create_strings("captions"));
    ids_.emplace(file_->create_strings("ids"));
    if (labels) labels_.emplace(file_->Group::create("labels", torch::kInt32, {}));
  }
  void append(const std::vector<const SourceRecord*>& recs, std::vector<Prepared*>& items) {
    if (recs.empty()) return;
    std::vector<std::string> captions, ids;
    std::vector<int32_t> labels;
    for (auto* r : recs) {
      captions.push_back(r->caption);
      ids.push_back(r->id);
      labels.push_back(r->label.value_or(-1));
    }
    if (items[0]->pixels.defined()) {
      std::vector<torch::Tensor> px;
      for (auto* it : items) px.push_back(it->pixels);
      images_->append(torch::stack(px));
    } else {
      std::vector<h5::Blob> blobs;
      for (auto* it : items) blobs.push_back(std::move(it->bytes));
      images_->append_blobs(blobs);
    }
    captions_->append_strings(captions);
    ids_->append_strings(ids);
    if (labels_) labels_->append(torch::tensor(labels, torch::kInt32));
    count_ += static_cast<int64_t>(recs.size());
  }
  int64_t count() const { return count_; }
  const std::string& path() const { return path_; }
  void close() {
    images_.reset(), captions_.reset(), ids_.reset(), labels_.reset();
    file_->close();
    file_.reset();
    shards::seal_shard(staging_path(path_), path_);
    fs::remove(staging_path(path_));
  }
  ~ShardWriter() {
    images_.reset(), captions_.reset(), ids_.reset(), labels_.reset(), file_.reset();
    std::error_code ec;
    fs::remove(staging_path(path_), ec);
  }

 private:
  static std::string staging_path(const std::string& path) { return path + ".staging"; }
  std::string path_;
  std::optional<h5::File> file_;
  std::optional<h5::Dataset> images_, captions_, ids_, labels_;
  int64_t count_ = 0;
};

std::string shard_name(const std::string& prefix, size_t n) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "-%05zu.h5", n);
  return prefix + buf;
}

std::string one_line(const std::string& s) {
  std::string out;
  for (char c : s) out += (c == '\n' || c == '\t' || c == '\r') ? ' ' : c;
  return out;
}

}  // namespace

TileShardBuildReport build_tile_shards(const TileShardBuildOptions& o) {
  PATHVLM_CHECK(o.records.empty() != o.webdataset.empty(),
                "shards build: give either a records file or WebDataset shards, not ",
                o.records.empty() ? "neither" : "both");
  PATHVLM_CHECK(!o.out_dir.empty(), "shards build: no output folder given");
  PATHVLM_CHECK(o.shard_size >= 1, "shards build: shard size must be >= 1, got ", o.shard_size);
  PATHVLM_CHECK(o.storage == "encoded" || o.storage == "jpeg" || o.storage == "png" || o.storage == "raw",
                "shards build: storage must be encoded, jpeg, png or raw, got '", o.storage, "'");
  PATHVLM_CHECK(o.size >= 0 && o.size <= 16384, "shards build: bad size ", o.size);
  PATHVLM_CHECK(o.jpeg_quality >= 1 && o.jpeg_quality <= 100, "shards build: JPEG quality must be in [1, 100], got ",
                o.jpeg_quality);
  for (const auto& archive : o.webdataset)  // a typo in a shard range is an error, not a smaller data set
    PATHVLM_CHECK(fs::is_regular_file(archive), "WebDataset shard '", archive, "' not found");
  if (o.webdataset.empty()) PATHVLM_CHECK(fs::is_regular_file(o.records), "records file '", o.records, "' not found");
  const std::string source = o.webdataset.empty() ? o.records : o.webdataset.front();
  // Where the records' relative image paths start (a tar's samples carry their images).
  const fs::path base = o.images_dir.empty() ? fs::path(o.records).parent_path() : fs::path(o.images_dir);
  PATHVLM_CHECK(base.empty() || fs::is_directory(base), "images folder '", base.string(), "' not found");

  std::string ext = fs::path(o.records).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  bool has_labels = false;
  const RecordKeys keys{o.image_key, o.caption_key};
  const std::vector<SourceRecord> recs =
      !o.webdataset.empty() ? read_webdataset_records(o.webdataset, o.progress, has_labels)
      : ext == ".jsonl" || ext == ".json"
          ? read_jsonl_records(o.records, keys, has_labels)
          : read_csv_records(o.records, o.separator ? o.separator : (ext == ".tsv" || ext == ".tab" ? '\t' : ','),
                             keys, has_labels);

  fs::create_directories(o.out_dir);
  TileShardBuildReport report;
  report.records = static_cast<int64_t>(recs.size());
  const bool raw = o.storage == "raw";
  int64_t raw_h = o.size, raw_w = o.size;
  std::unordered_set<std::string> seen_ids;
  std::unique_ptr<ShardWriter> writer;
  std::vector<std::pair<std::string, int64_t>> shard_counts;
  auto close_writer = [&] {
    if (!writer) return;
    writer->close();
    shard_counts.emplace_back(fs::path(writer->path()).filename().string(), writer->count());
    report.shards.push_back(writer->path());
    writer.reset();
  };

  Progress bar("sharding", report.records, "records", [&] {
    Progress::Options opt;
    opt.enabled = o.progress;
    return opt;
  }());
  const int threads = std::max(1, o.threads);
  std::vector<Prepared> prepared(kBlock);
  for (int64_t start = 0; start < report.records; start += kBlock) {
    const int64_t n = std::min<int64_t>(kBlock, report.records - start);
    // Decode in parallel, strided so each thread takes every `threads`-th record of the block.
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        for (int64_t k = t; k < n; k += threads) prepared[k] = prepare(recs[start + k], o, base);
      });
    for (auto& th : pool) th.join();

    // Append in record order; problems that depend on earlier records (ids, raw sizes) are found here.
    std::vector<const SourceRecord*> batch;
    std::vector<Prepared*> items;
    int64_t block_bad = 0;
    auto flush = [&] {
      if (writer) writer->append(batch, items);
      batch.clear();
      items.clear();
    };
    for (int64_t k = 0; k < n; ++k) {
      const SourceRecord& rec = recs[start + k];
      Prepared& p = prepared[k];
      if (p.problem.empty() && seen_ids.count(rec.id)) p.problem = str("duplicate id '", rec.id, "'");
      if (p.problem.empty() && raw) {
        if (raw_h == 0) raw_h = p.pixels.size(0), raw_w = p.pixels.size(1);
        if (p.pixels.size(0) != raw_h || p.pixels.size(1) != raw_w)
          p.problem = str("image is ", p.pixels.size(1), "x", p.pixels.size(0), ", raw shards hold ", raw_w, "x", raw_h,
                          " (pass a size to resize every image)");
      }
      if (!p.problem.empty()) {
        report.bad.push_back({rec.line, rec.file, one_line(p.problem)});
        ++block_bad;
        continue;
      }
      seen_ids.insert(rec.id);
      if (writer && writer->count() + static_cast<int64_t>(batch.size()) >= o.shard_size) {
        flush();
        close_writer();
      }
      if (!writer)
        writer = std::make_unique<ShardWriter>((fs::path(o.out_dir) / shard_name(o.prefix, report.shards.size())).string(),
                                               raw, raw_h, raw_w, has_labels);
      batch.push_back(&rec);
      items.push_back(&p);
      ++report.written;
    }
    flush();
    for (int64_t k = 0; k < n; ++k) prepared[k] = Prepared();
    bar.advance(n, {{"bad", block_bad}});
  }
  close_writer();
  bar.finish();

  report.bad_records_file = (fs::path(o.out_dir) / "bad_records.tsv").string();
  {
    std::ofstream bad(report.bad_records_file, std::ios::trunc);
    PATHVLM_CHECK(bad, "cannot write '", report.bad_records_file, "'");
    bad << "line\tfile\tproblem\n";
    for (const auto& b : report.bad) bad << b.line << "\t" << one_line(b.file) << "\t" << b.problem << "\n";
  }
  PATHVLM_CHECK(report.written > 0,
                o.webdataset.empty()
                    ? str("records file '", o.records, "': none of its ", report.records, " records")
                    : str("WebDataset shard '", source, "'",
                          o.webdataset.size() > 1 ? str(" and ", o.webdataset.size() - 1, " more") : "",
                          ": none of the ", report.records, " samples"),
                " is usable (see '", report.bad_records_file, "')");

  nlohmann::json manifest;
  manifest["pathvlm_manifest"] = kManifestTag;
  manifest["records"] = report.written;
  manifest["shards"] = nlohmann::json::array();
  for (const auto& [file, count] : shard_counts) manifest["shards"].push_back({{"file", file}, {"records", count}});
  manifest["images"] = raw ? "raw" : "encoded";
  if (raw) manifest["image_size"] = {raw_h, raw_w};
  manifest["labels"] = has_labels;
  manifest["source"] = fs::absolute(source).lexically_normal().string();
  if (o.webdataset.size() > 1) manifest["source_tars"] = o.webdataset.size();
  manifest["source_records"] = report.records;
  manifest["bad_records"] = static_cast<int64_t>(report.bad.size());
  manifest["bad_records_file"] = "bad_records.tsv";
  report.manifest = (fs::path(o.out_dir) / "manifest.json").string();
  const std::string tmp = report.manifest + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    PATHVLM_CHECK(out, "cannot write '", tmp, "'");
    out << manifest.dump(2) << "\n";
    PATHVLM_CHECK(out.flush(), "cannot write '", tmp, "'");
  }
  fs::rename(tmp, report.manifest);  // the manifest appears only once every shard is complete
  return report;
}

// ---- reading ---------------------------------------------------------------------------------------

TileDataset TileDataset::open(const std::string& path) {
  TileDataset ds;
  const auto sets = split_sources(path, "tiles data");
  for (const auto& set : sets) {
    const ShardManifest manifest = read_shard_manifest(set, kManifestTag, "tiles data");
    const int64_t before = ds.size();
    for (const auto& shard : manifest.shards) ds.add_shard(shard.path, shard.records, manifest.context());
    manifest.check_total(ds.size() - before);
    ds.source_ = sets.size() == 1 ? manifest.source : path;
  }
  return ds;
}

void TileDataset::add_shard(const std::string& path, int64_t expected, const std::string& context) {
  std::error_code ec;
  PATHVLM_CHECK(fs::is_regular_file(path, ec), context, "shard '", path, "' is missing");
  auto file = shards::open_shard(path);
  const auto kind = shards::check_schema(file);
  PATHVLM_CHECK(kind == shards::ShardKind::Tiles, context, "shard '", path, "' holds ", shards::kind_name(kind),
                ", not tiles");
  const int64_t n = shards::record_count(file, kind);
  PATHVLM_CHECK(expected < 0 || n == expected, context, "shard '", path, "' holds ", n, " records, the manifest says ",
                expected, " (rebuild the shards or fix the manifest)");
  const bool labels = file.has_dataset("labels");
  PATHVLM_CHECK(shards_.empty() || labels == has_labels_, context, "shard '", path, "' ",
                labels ? "has" : "has no", " /labels but shard '", shards_.front().path, "' ",
                has_labels_ ? "has" : "has no", " labels");
  has_labels_ = labels;
  Shard s;
  s.path = path;
  if (file.dataset("images").shape().size() == 1)
    s.encoded = std::make_shared<const shards::CheckedBytes>(file, "images");
  else
    s.raw = std::make_shared<const shards::CheckedRows>(file, "images");
  s.first = size();
  s.count = n;
  auto captions = file.read_strings("captions"), ids = file.read_strings("ids");
  captions_.insert(captions_.end(), captions.begin(), captions.end());
  ids_.insert(ids_.end(), ids.begin(), ids.end());
  if (labels) {
    auto l = file.read("labels", torch::kInt32);
    labels_.insert(labels_.end(), l.data_ptr<int32_t>(), l.data_ptr<int32_t>() + l.numel());
  }
  shards_.push_back(std::move(s));
  shard_paths_.push_back(path);
}

void TileDataset::check_index(int64_t i) const {
  PATHVLM_CHECK(i >= 0 && i < size(), "tiles '", source_, "': record ", i, " is out of range [0, ", size(), ")");
}

const TileDataset::Shard& TileDataset::shard_of(int64_t i, int64_t& local) const {
  check_index(i);
  auto it = std::upper_bound(shards_.begin(), shards_.end(), i, [](int64_t v, const Shard& s) { return v < s.first; });
  const Shard& s = *(it - 1);
  local = i - s.first;
  return s;
}

const std::string& TileDataset::caption(int64_t i) const {
  check_index(i);
  return captions_[static_cast<size_t>(i)];
}
const std::string& TileDataset::id(int64_t i) const {
  check_index(i);
  return ids_[static_cast<size_t>(i)];
}
int32_t TileDataset::label(int64_t i) const {
  check_index(i);
  return has_labels_ ? labels_[static_cast<size_t>(i)] : -1;
}

std::string TileDataset::where(int64_t i) const {
  int64_t local = 0;
  const Shard& s = shard_of(i, local);
  return str("shard '", s.path, "' record ", local, " (id '", ids_[static_cast<size_t>(i)], "')");
}

std::pair<std::string, int64_t> TileDataset::locate(int64_t i) const {
  int64_t local = 0;
  const Shard& s = shard_of(i, local);
  return {s.path, local};
}

torch::Tensor TileDataset::image(int64_t i) const {
  int64_t local = 0;
  const Shard& s = shard_of(i, local);
  if (s.raw) return s.raw->read_rows(local, 1).squeeze(0);
  return decode_image(s.encoded->read(local), where(i));
}

TileRecord TileDataset::read(int64_t i) const {
  TileRecord r;
  r.image = image(i);
  r.caption = caption(i);
  r.id = id(i);
  r.label = label(i);
  return r;
}

}  // namespace pathvlm::data
