#include "data/slide_bags.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <list>
#include <mutex>

#include "core/error.h"
#include "core/random.h"
#include "data/shard_manifest.h"
#include "data/slide_manifest.h"
#include "io/checked_rows.h"
#include "io/hdf5.h"
#include "io/shard_schema.h"

namespace fs = std::filesystem;

namespace pathvlm::data {

// A few recently read files kept open: reopening per batch is cheap, holding every slide's file open is not.
class SlideBagDataset::OpenFiles {
 public:
  // `shard`: a sealed slides shard (opened through its integrity check), else a per-slide features file.
  h5::File get(const std::string& path, bool shard) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = files_.begin(); it != files_.end(); ++it) {
      if (it->first == path) {
        files_.splice(files_.begin(), files_, it);
        return files_.front().second;
      }
    }
    files_.emplace_front(path, shard ? shards::open_shard(path) : h5::File::open(path));
    if (files_.size() > kKept) files_.pop_back();
    return files_.front().second;
  }

 private:
  static constexpr size_t kKept = 16;
  std::mutex mutex_;
  std::list<std::pair<std::string, h5::File>> files_;  // most recently used first
};

namespace {

constexpr const char* kManifestTag = "slides/1";

struct Problem {
  std::string kind, message;  // kind counts ("unreadable"), message says it ("unreadable: '<file>': ...")
};

// A slide that passed its own checks, before the feature widths of all slides are compared.
struct Candidate {
  SlideInfo info;
  std::string file, prefix, where;
  int64_t width = 0;
  size_t source = 0;
};

constexpr int64_t kMaxFeatureWidth = 1 << 16, kMaxTiles = 1 << 24;

// The level-0 tile size `object` records (TRIDENT's coords attribute; a `slides` shard's slide group), 0 when it
// records none; an Error when it is not a positive whole number.
int64_t recorded_patch_size_level0(const h5::Object& object) {
  constexpr const char* kName = "patch_size_level0";
  if (!object.has_attr(kName)) return 0;
  const double size = object.attr_double(kName);
  PATHVLM_CHECK(size >= 1 && size < 1e9 && size == std::round(size), "attribute '", kName, "' is ", size,
                ", not a positive whole number of level-0 pixels");
  return static_cast<int64_t>(size);
}

// Tiles, tile size and feature width from the metadata of `features` and `coords` in `g` (nothing is read), or the
// problem.
std::optional<Problem> check_bag(const h5::Group& g, SlideInfo& info, int64_t& width) {
  try {
    if (!g.has_dataset("features")) return Problem{"no features dataset", "no features dataset"};
    if (!g.has_dataset("coords")) return Problem{"no coords dataset", "no coords dataset"};
    const h5::Dataset features = g.dataset("features"), coords = g.dataset("coords");
    const auto fshape = features.shape(), cshape = coords.shape();
    const bool float_features = features.kind() == h5::Dataset::Kind::Numeric &&
                                (features.dtype() == torch::kFloat16 || features.dtype() == torch::kFloat32);
    if (!float_features || fshape.size() != 2 || fshape[1] == 0) {
      return Problem{"bad features", str("features ", features.dtype_name(), " ", c10::IntArrayRef(fshape),
                                         ": expected float16 or float32 [N,D]")};
    }
    const bool int_coords = coords.kind() == h5::Dataset::Kind::Numeric &&
                            (coords.dtype() == torch::kInt32 || coords.dtype() == torch::kInt64);
    if (!int_coords || cshape.size() != 2 || cshape[1] != 2) {
      return Problem{"bad coords",
                     str("coords ", coords.dtype_name(), " ", c10::IntArrayRef(cshape), ": expected int32 or int64 [N,2]")};
    }
    if (fshape[0] != cshape[0]) {
      return Problem{"features/coords rows differ",
                     str("features/coords rows differ (", fshape[0], " features, ", cshape[0], " coords)")};
    }
    if (fshape[0] == 0) return Problem{"0 tiles", "0 tiles"};
    // Sizes from a file bound what is allocated later: refuse the absurd ones a damaged header can give.
    if (fshape[1] > kMaxFeatureWidth || fshape[0] > kMaxTiles)
      return Problem{"bad features", str("features ", c10::IntArrayRef(fshape), " are too large (at most ",
                                         kMaxTiles, " tiles of width ", kMaxFeatureWidth, ")")};
    info.tiles = fshape[0];
    width = fshape[1];
    try {
      info.patch_size_level0 = recorded_patch_size_level0(coords);
      if (info.patch_size_level0 == 0) info.patch_size_level0 = recorded_patch_size_level0(g);
    } catch (const Error& e) {
      return Problem{"bad coords", str("coords: ", e.what())};
    }
    return std::nullopt;
  } catch (const Error& e) {
    return Problem{"unreadable", str("unreadable: ", e.what())};
  }
}

// Gathers every source's slides and counts.
class Gatherer {
 public:
  Gatherer(SlideBagDataset::Report& report, bool reports_required)
      : report_(report), reports_required_(reports_required) {}

  void add_csv(const std::string& path) {
    const size_t source = begin_source(path);
    for (const auto& row : read_slide_manifest(path, reports_required_)) {
      const std::string where = str("slide '", row.slide_id, "' (", path, " line ", row.line, ")");
      listed(source, row.slide_id, where);
      if (!row.problem.empty()) {
        bad(source, {row.problem_kind, row.problem}, where);
        continue;
      }
      std::error_code ec;
      if (!fs::is_regular_file(row.features, ec)) {
        bad(source, {"missing file", str("missing file '", row.features, "'")}, where);
        continue;
      }
      Candidate c;
      c.info = {row.slide_id, row.report, row.label, str("file '", row.features, "'"), 0};
      c.file = row.features;
      c.where = where;
      c.source = source;
      std::optional<Problem> problem;
      try {
        problem = check_bag(h5::File::open(row.features), c.info, c.width);
      } catch (const Error& e) {
        problem = Problem{"unreadable", str("unreadable: ", e.what())};
      }
      if (problem) bad(source, *problem, where);
      else candidates_.push_back(std::move(c));
    }
  }

  void add_shards(const std::string& path) {
    const ShardManifest manifest = read_shard_manifest(path, kManifestTag, "slides data");
    const size_t source = begin_source(manifest.source);
    for (const auto& shard : manifest.shards) add_shard(source, shard, manifest);
    manifest.check_total(report_.sources[source].listed);
  }

  // The feature width most slides have (ties: the first seen); the others are bad.
  int64_t settle_width() {
    std::map<int64_t, int64_t> count;
    int64_t most = 0, dim = 0;
    for (const auto& c : candidates_) most = std::max(most, ++count[c.width]);
    for (auto it = candidates_.rbegin(); it != candidates_.rend(); ++it)
      if (count[it->width] == most) dim = it->width;
    std::vector<Candidate> kept;
    for (auto& c : candidates_) {
      if (c.width == dim) {
        ++report_.sources[c.source].usable;
        kept.push_back(std::move(c));
      } else {
        bad(c.source, {"feature width", str("feature width ", c.width, " != ", dim, " (the width of most slides)")},
            c.where);
      }
    }
    candidates_ = std::move(kept);
    return dim;
  }

  std::vector<Candidate>& candidates() { return candidates_; }

 private:
  size_t begin_source(const std::string& path) {
    report_.sources.push_back({});
    report_.sources.back().source = path;
    return report_.sources.size() - 1;
  }

  void listed(size_t source, const std::string& id, const std::string& where) {
    ++report_.sources[source].listed;
    if (id.empty()) return;
    const auto [it, fresh] = listed_at_.emplace(id, where);
    PATHVLM_CHECK(fresh, "slides data: slide id '", id, "' is listed twice: ", it->second, " and ", where);
  }

  void bad(size_t source, const Problem& problem, const std::string& where) {
    auto& r = report_.sources[source];
    ++r.bad;
    ++r.problems[problem.kind];
    if (r.first_problems.size() < SlideBagDataset::SourceReport::kReportedProblems)
      r.first_problems.push_back(str(where, ": ", problem.message));
  }

  void add_shard(size_t source, const ShardManifestEntry& shard, const ShardManifest& manifest) {
    std::optional<h5::File> file;
    std::vector<std::string> ids;
    std::map<std::string, std::string> reports;
    std::string reports_problem;
    try {
      std::error_code ec;
      PATHVLM_CHECK(fs::is_regular_file(shard.path, ec), "missing file '", shard.path, "'");
      file = shards::open_shard(shard.path);
      ids = file->has_group("slides") ? file->group("slides").children() : std::vector<std::string>{};
    } catch (const Error& e) {
      // A shard that cannot be read: its slides, as many as the manifest lists, are all bad.
      PATHVLM_CHECK(shard.records >= 0, "slides shard '", shard.path, "': ", e.what());
      for (int64_t i = 0; i < shard.records; ++i) {
        const std::string where = str("shard '", shard.path, "'");
        ++report_.sources[source].listed;
        bad(source, {"unreadable shard", str("unreadable shard: ", e.what())}, where);
      }
      return;
    }
    const auto kind = shards::read_schema(*file);
    PATHVLM_CHECK(kind == shards::ShardKind::Slides, manifest.context(), "shard '", shard.path, "' holds ",
                  shards::kind_name(kind), ", not slides");
    PATHVLM_CHECK(shard.records < 0 || static_cast<int64_t>(ids.size()) == shard.records, manifest.context(),
                  "shard '", shard.path, "' holds ", ids.size(), " slides, the manifest says ", shard.records,
                  " (rewrite the shards or fix the manifest)");
    try {
      if (file->has("reports")) {
        const auto report_ids = file->read_strings("reports/slide_id"), texts = file->read_strings("reports/text");
        PATHVLM_CHECK(report_ids.size() == texts.size(), "/reports/slide_id holds ", report_ids.size(),
                      " ids, /reports/text ", texts.size(), " texts");
        for (size_t r = 0; r < report_ids.size(); ++r) reports[report_ids[r]] = texts[r];
      }
    } catch (const Error& e) {
      reports_problem = e.what();
    }
    if (ids.empty()) return;
    const h5::Group slides = file->group("slides");
    for (const auto& id : ids) {
      const std::string where = str("slide '", id, "' (shard '", shard.path, "')");
      listed(source, id, where);
      if (!reports_problem.empty() && reports_required_) {
        bad(source, {"unreadable reports", str("unreadable reports: ", reports_problem)}, where);
        continue;
      }
      Candidate c;
      c.file = shard.path;
      c.prefix = "slides/" + id + "/";
      c.where = where;
      c.source = source;
      std::optional<Problem> problem;
      try {
        if (!slides.has_group(id)) problem = Problem{"broken slide group", str("/slides/", id, " is not a group")};
        else problem = check_bag(slides.group(id), c.info, c.width);
      } catch (const Error& e) {
        problem = Problem{"unreadable", str("unreadable: ", e.what())};
      }
      const auto report = reports.find(id);
      if (reports_required_ && !problem && report == reports.end())
        problem = Problem{"no report", "no report in /reports"};
      if (reports_required_ && !problem && report->second.find_first_not_of(" \t\r\n") == std::string::npos)
        problem = Problem{"empty report", "empty report"};
      if (problem) {
        bad(source, *problem, where);
        continue;
      }
      c.info.id = id;
      c.info.report = report == reports.end() ? "" : report->second;
      c.info.source = str("shard '", shard.path, "' slide '", id, "'");
      candidates_.push_back(std::move(c));
    }
  }

  SlideBagDataset::Report& report_;
  bool reports_required_;
  std::vector<Candidate> candidates_;
  std::unordered_map<std::string, std::string> listed_at_;  // slide id -> where it was first listed
};

bool is_csv(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
  return ext == ".csv";
}

}  // namespace

std::string SlideBagDataset::SourceReport::summary() const {
  std::string out = str(source, ": ", listed, " slides listed, ", usable, " usable, ", bad, " bad");
  if (bad == 0) return out;
  std::string kinds;
  for (const auto& [kind, n] : problems) kinds += str(kinds.empty() ? "" : ", ", kind, ": ", n);
  out += " (" + kinds;
  for (const auto& p : first_problems) out += "; " + p;
  out += bad > static_cast<int64_t>(first_problems.size()) ? "; ...)" : ")";
  return out;
}

int64_t SlideBagDataset::Report::listed() const {
  int64_t n = 0;
  for (const auto& s : sources) n += s.listed;
  return n;
}

int64_t SlideBagDataset::Report::usable() const {
  int64_t n = 0;
  for (const auto& s : sources) n += s.usable;
  return n;
}

int64_t SlideBagDataset::Report::bad() const {
  int64_t n = 0;
  for (const auto& s : sources) n += s.bad;
  return n;
}

std::string SlideBagDataset::Report::summary() const {
  std::map<std::string, int64_t> kinds;
  for (const auto& s : sources)
    for (const auto& [kind, n] : s.problems) kinds[kind] += n;
  std::string out = str("slides: ", sources.size(), sources.size() == 1 ? " source, " : " sources, ", listed(),
                        " listed, ", usable(), " usable, ", bad(), " bad");
  if (kinds.empty()) return out;
  std::string list;
  for (const auto& [kind, n] : kinds) list += str(list.empty() ? "" : ", ", kind, ": ", n);
  return out + " (" + list + ")";
}

SlideBagDataset SlideBagDataset::open(const std::vector<std::string>& sources, const SlideBagOptions& options) {
  PATHVLM_CHECK(!sources.empty(), "slides data: no sources given (CSV manifests or slides shards)");
  PATHVLM_CHECK(options.max_tiles >= 0 && options.eval_max_tiles >= 0, "slides data: max_tiles (",
                options.max_tiles, ") and eval_max_tiles (", options.eval_max_tiles, ") must be >= 0");
  PATHVLM_CHECK(options.max_bad_fraction >= 0.0 && options.max_bad_fraction <= 1.0,
                "slides data: the allowed fraction of bad slides must be in [0, 1] (got ", options.max_bad_fraction,
                ")");
  auto contents = std::make_shared<Contents>();
  contents->options = options;
  Gatherer gather(contents->report, options.reports_required);
  for (const auto& source : sources) {
    if (is_csv(source)) gather.add_csv(source);
    else gather.add_shards(source);
  }
  contents->dim = gather.settle_width();
  for (const auto& s : contents->report.sources) {
    PATHVLM_CHECK(static_cast<double>(s.bad) <= options.max_bad_fraction * static_cast<double>(s.listed),
                  "slides data '", s.source, "': ", s.bad, " of ", s.listed,
                  " slides are bad, more than the allowed fraction ", options.max_bad_fraction, " (", s.summary(),
                  ")");
  }
  PATHVLM_CHECK(!gather.candidates().empty(), "slides data: no usable slides (", contents->report.summary(), ")");
  for (auto& c : gather.candidates()) {
    contents->index.emplace(c.info.id, static_cast<int64_t>(contents->slides.size()));
    contents->slides.push_back({std::move(c.info), std::move(c.file), std::move(c.prefix)});
  }
  SlideBagDataset ds;
  ds.contents_ = std::move(contents);
  ds.files_ = std::make_shared<OpenFiles>();
  return ds;
}

int64_t SlideBagDataset::size() const { return static_cast<int64_t>(contents_->slides.size()); }
int64_t SlideBagDataset::feature_dim() const { return contents_->dim; }
const SlideBagOptions& SlideBagDataset::options() const { return contents_->options; }
const SlideBagDataset::Report& SlideBagDataset::report() const { return contents_->report; }
const SlideInfo& SlideBagDataset::slide(int64_t i) const { return at(i).info; }

const SlideBagDataset::Slide& SlideBagDataset::at(int64_t i) const {
  PATHVLM_CHECK(i >= 0 && i < size(), "slides data: record ", i, " is out of range [0, ", size(), ")");
  return contents_->slides[static_cast<size_t>(i)];
}

std::optional<int64_t> SlideBagDataset::index_of(const std::string& slide_id) const {
  const auto it = contents_->index.find(slide_id);
  if (it == contents_->index.end()) return std::nullopt;
  return it->second;
}

std::vector<int64_t> SlideBagDataset::tile_rows(int64_t record, bool train, uint64_t seed, int64_t epoch) const {
  const int64_t n = at(record).info.tiles;
  const int64_t limit = train ? contents_->options.max_tiles : contents_->options.eval_max_tiles;
  const int64_t k = limit == 0 ? n : std::min(n, limit);
  std::vector<int64_t> rows;
  rows.reserve(static_cast<size_t>(k));
  if (k == n) {
    for (int64_t i = 0; i < n; ++i) rows.push_back(i);
  } else if (!train) {
    for (int64_t i = 0; i < k; ++i) rows.push_back(i * n / k);
  } else {
    // Floyd's sampling: k distinct rows in k draws, then in file order.
    SeededDraws draws{record_seed(seed, epoch, record)};
    std::vector<bool> picked(static_cast<size_t>(n), false);
    for (int64_t j = n - k; j < n; ++j) {
      const auto t = static_cast<int64_t>(draws.below(static_cast<uint64_t>(j + 1)));
      picked[static_cast<size_t>(picked[static_cast<size_t>(t)] ? j : t)] = true;
    }
    for (int64_t i = 0; i < n; ++i)
      if (picked[static_cast<size_t>(i)]) rows.push_back(i);
  }
  return rows;
}

std::pair<torch::Tensor, torch::Tensor> SlideBagDataset::read_tiles(int64_t record,
                                                                     const std::vector<int64_t>& rows) const {
  const Slide& s = at(record);
  try {
    const bool shard = !s.prefix.empty();
    const h5::File file = files_->get(s.file, shard);
    torch::Tensor features = (shard ? shards::CheckedRows(file.group(s.prefix), "features").read_row_list(rows)
                                    : file.dataset("features").read_row_list(rows))
                                 .to(torch::kFloat32);
    torch::Tensor coords = file.dataset(s.prefix + "coords").read_row_list(rows).to(torch::kInt64);
    PATHVLM_CHECK(features.size(1) == feature_dim(), "feature width ", features.size(1), " != ", feature_dim(),
                  " (the file changed after the data was opened?)");
    return {features, coords};
  } catch (const Error& e) {
    throw Error(str("slide '", s.info.id, "' (", s.info.source, "): ", e.what()));
  }
}

BatchBuilder SlideBagDataset::builder(bool train) const {
  return [self = *this, train](const BatchRequest& request) {
    const auto b = static_cast<int64_t>(request.records.size());
    std::vector<std::vector<int64_t>> rows(static_cast<size_t>(b));
    int64_t longest = 0, tiles = 0;
    for (int64_t i = 0; i < b; ++i) {
      rows[i] = self.tile_rows(request.records[i], train, request.seed, request.epoch);
      longest = std::max<int64_t>(longest, static_cast<int64_t>(rows[i].size()));
      tiles += static_cast<int64_t>(rows[i].size());
    }
    torch::Tensor features = torch::zeros({b, longest, self.feature_dim()}, request.host(torch::kFloat32));
    torch::Tensor coords = torch::zeros({b, longest, 2}, request.host(torch::kInt64));
    torch::Tensor mask = torch::zeros({b, longest}, request.host(torch::kBool));
    torch::Tensor slide_index = torch::empty({b}, request.host(torch::kInt64));
    request.for_each([&](int64_t row, int64_t record) {
      auto [f, c] = self.read_tiles(record, rows[row]);
      const int64_t k = f.size(0);
      features[row].narrow(0, 0, k).copy_(f);
      coords[row].narrow(0, 0, k).copy_(c);
      mask[row].narrow(0, 0, k).fill_(true);
      slide_index.data_ptr<int64_t>()[row] = record;
    });
    Batch batch;
    batch.tensors = {{"features", features}, {"coords", coords}, {"mask", mask}, {"slide_index", slide_index}};
    auto& ids = batch.strings["slide_id"];
    auto& reports = batch.strings["report"];
    auto& labels = batch.strings["label"];
    for (const int64_t record : request.records) {
      const SlideInfo& info = self.slide(record);
      ids.push_back(info.id);
      reports.push_back(info.report);
      labels.push_back(info.label);
    }
    batch.samples = b;
    batch.tokens = tiles;
    batch.epoch = request.epoch;
    return batch;
  };
}

}  // namespace pathvlm::data
