// Batches of slides: see slide_batch.h.
#include "wsi/slide_batch.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/ascii.h"
#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "io/dicom.h"
#include "wsi/dicom_slide.h"

namespace fs = std::filesystem;

namespace pathvlm::wsi {

namespace {

std::string trim(const std::string& s) {
  const auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1);
}

// Index of the first header column named one of `names` (case-insensitive), or -1.
int find_column(const std::vector<std::string>& header, std::initializer_list<const char*> names) {
  for (size_t i = 0; i < header.size(); ++i) {
    for (const char* n : names) {
      if (ascii_lower(trim(header[i])) == n) return static_cast<int>(i);
    }
  }
  return -1;
}

double parse_mpp(const std::string& text, const std::string& where) {
  try {
    size_t used = 0;
    double v = std::stod(trim(text), &used);
    if (used == trim(text).size() && v > 0 && std::isfinite(v)) return v;
  } catch (const std::exception&) {
  }
  throw Error(str(where, ": mpp '", text, "' is not a positive number"));
}

}  // namespace

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  PATHVLM_CHECK(in, "CSV '", path, "': cannot open it");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  std::vector<std::vector<std::string>> rows;
  std::vector<std::string> row;
  std::string field;
  bool quoted = false, any = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quoted) {
      if (c == '"' && i + 1 < text.size() && text[i + 1] == '"') {
        field += '"', ++i;
      } else if (c == '"') {
        quoted = false;
      } else {
        field += c;
      }
    } else if (c == '"') {
      quoted = true, any = true;
    } else if (c == ',') {
      row.push_back(field), field.clear(), any = true;
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
      if (any || !field.empty()) row.push_back(field), rows.push_back(row);
      row.clear(), field.clear(), any = false;
    } else {
      field += c, any = true;
    }
  }
  PATHVLM_CHECK(!quoted, "CSV '", path, "': a quoted field is not closed");
  if (any || !field.empty()) row.push_back(field), rows.push_back(row);
  return rows;
}

std::vector<SlideEntry> list_slides(const std::string& dir_or_csv) {
  std::vector<SlideEntry> slides;
  PATHVLM_CHECK(fs::exists(dir_or_csv), "slides '", dir_or_csv, "': no such file or folder");
  if (fs::is_directory(dir_or_csv)) {
    static const std::set<std::string> extensions = {".svs", ".tif",  ".tiff",    ".ndpi", ".vms", ".vmu",
                                                     ".scn", ".mrxs", ".svslide", ".bif",  ".dcm"};
    std::error_code ec;
    fs::directory_iterator it(dir_or_csv, ec), end;
    for (; !ec && it != end; it.increment(ec)) {
      // Every entry named like a slide is listed, readable or not: a broken one is a counted failure, never
      // silently left out.
      const fs::path& p = it->path();
      if (!extensions.count(ascii_lower(p.extension().string()))) continue;
      slides.push_back({p.stem().string(), p.string(), 0, input_problem(p.string())});
    }
    PATHVLM_CHECK(!ec, "slides folder '", dir_or_csv, "': cannot list it: ", ec.message());
    std::sort(slides.begin(), slides.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
  } else {
    auto rows = read_csv(dir_or_csv);
    PATHVLM_CHECK(!rows.empty(), "slides CSV '", dir_or_csv, "': empty (a header with a slide column is needed)");
    const int col = find_column(rows[0], {"slide", "wsi", "path", "slide_path"});
    PATHVLM_CHECK(col >= 0, "slides CSV '", dir_or_csv, "': no column named slide, wsi or path in the header");
    const int mpp_col = find_column(rows[0], {"mpp"});
    const fs::path base = fs::path(dir_or_csv).parent_path();
    for (size_t i = 1; i < rows.size(); ++i) {
      const auto& r = rows[i];
      PATHVLM_CHECK(static_cast<int>(r.size()) > col && !trim(r[col]).empty(), "slides CSV '", dir_or_csv,
                    "' line ", i + 1, ": no slide path");
      fs::path p = trim(r[col]);
      if (p.is_relative()) p = base / p;
      SlideEntry e{p.stem().string(), p.string(), 0, input_problem(p.string())};
      if (mpp_col >= 0 && static_cast<int>(r.size()) > mpp_col && !trim(r[mpp_col]).empty()) {
        e.mpp = parse_mpp(r[mpp_col], str("slides CSV '", dir_or_csv, "' line ", i + 1));
      }
      slides.push_back(e);
    }
  }
  // A DICOM slide is a series of files (its levels, label, overview): one entry per series, the first listed (a CSV
  // made with `find -name '*.dcm'` names every file of every series).
  std::set<std::string> series;
  std::vector<SlideEntry> kept;
  for (SlideEntry& s : slides) {
    const bool dicom_file =
        s.problem.empty() && (ascii_lower(fs::path(s.path).extension().string()) == ".dcm" || dicom::is_dicom(s.path));
    if (dicom_file) {
      try {
        if (!series.insert(dicom_image_info(s.path).series).second) continue;
      } catch (const Error& e) {
        s.problem = e.what();
      }
    }
    kept.push_back(std::move(s));
  }
  slides = std::move(kept);
  std::map<std::string, std::string> seen;
  for (const auto& s : slides) {
    auto [it, fresh] = seen.emplace(s.id, s.path);
    PATHVLM_CHECK(fresh, "slides '", dir_or_csv, "': two slides have the id '", s.id, "' ('", it->second, "' and '",
                  s.path, "'); slide ids are file names without extension and must be unique");
  }
  return slides;
}

std::string input_problem(const std::string& path) {
  std::error_code ec;
  const auto link = fs::symlink_status(path, ec);
  if (ec || !fs::exists(link)) return "no such file";
  const auto target = fs::status(path, ec);
  if (fs::is_symlink(link) && (ec || !fs::exists(target))) {
    std::error_code read_ec;
    const auto to = fs::read_symlink(path, read_ec);
    return ec && ec.value() == ELOOP ? "a loop of symbolic links"
                                     : str("dangling symbolic link to '", to.string(), "' (the target does not exist)");
  }
  if (ec) return str("cannot inspect it: ", ec.message());
  if (fs::is_directory(target)) return "a folder, not a slide file";
  if (!fs::is_regular_file(target)) return "not a regular file";
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return str("not readable (", std::strerror(errno), ")");
  ::close(fd);
  return "";
}

void apply_mpp_csv(std::vector<SlideEntry>& slides, const std::string& csv_path) {
  auto rows = read_csv(csv_path);
  PATHVLM_CHECK(!rows.empty(), "mpp CSV '", csv_path, "': empty");
  const int col = find_column(rows[0], {"slide", "wsi", "path", "slide_id"});
  const int mpp_col = find_column(rows[0], {"mpp"});
  PATHVLM_CHECK(col >= 0 && mpp_col >= 0, "mpp CSV '", csv_path, "': the header needs a slide (or wsi) and an mpp column");
  for (size_t i = 1; i < rows.size(); ++i) {
    const auto& r = rows[i];
    const std::string where = str("mpp CSV '", csv_path, "' line ", i + 1);
    PATHVLM_CHECK(static_cast<int>(r.size()) > std::max(col, mpp_col), where, ": too few fields");
    const std::string name = trim(r[col]);
    const double mpp = parse_mpp(r[mpp_col], where);
    bool matched = false;
    for (auto& s : slides) {
      if (s.id == name || fs::path(s.path).filename().string() == fs::path(name).filename().string()) {
        s.mpp = mpp, matched = true;
      }
    }
    PATHVLM_CHECK(matched, where, ": slide '", name, "' is not in the slide list");
  }
}

std::vector<SlideOutcome> run_slide_batch(const std::vector<SlideEntry>& slides, int workers, const std::string& what,
                                          const std::function<SlideOutcome(const SlideEntry&, SlideJob&)>& fn) {
  std::vector<SlideOutcome> outcomes(slides.size());
  Progress bar(what, static_cast<int64_t>(slides.size()), "slides");
  // Each slide's failure is its outcome: nothing escapes fn's try, so every slide is attempted.
  for_each_index(slides.size(), workers, [&](size_t i) {
    SlideJob job;
    const auto start = std::chrono::steady_clock::now();
    SlideOutcome outcome;
    try {
      if (!slides[i].problem.empty()) {
        job.stage = "list";
        throw Error(str("slide '", slides[i].path, "': ", slides[i].problem));
      }
      outcome = fn(slides[i], job);
    } catch (const std::exception& e) {
      outcome.status = SlideOutcome::Status::Failed;
      outcome.stage = job.stage;
      outcome.reason = e.what();
    }
    outcome.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    outcomes[i] = outcome;
    bar.advance(1, {{"tiles", outcome.status == SlideOutcome::Status::Failed ? 0 : outcome.tiles},
                    {"failed", outcome.status == SlideOutcome::Status::Failed ? 1 : 0}});
  });
  bar.finish();
  return outcomes;
}

void write_failures_csv(const std::string& path, const std::vector<SlideEntry>& slides,
                        const std::vector<SlideOutcome>& outcomes) {
  std::string text = "slide,stage,reason\n";
  for (size_t i = 0; i < slides.size(); ++i) {
    if (outcomes[i].status != SlideOutcome::Status::Failed) continue;
    text += csv_field(slides[i].path) + "," + csv_field(outcomes[i].stage) + "," + csv_field(outcomes[i].reason) + "\n";
  }
  write_text_file_atomic(path, text);
}

std::string format_summary(const std::vector<SlideEntry>& slides, const std::vector<SlideOutcome>& outcomes,
                           double wall_seconds) {
  size_t width = 5;
  for (const auto& s : slides) width = std::max(width, s.id.size());
  width = std::min<size_t>(width, 40);
  std::ostringstream out;
  char line[512];
  std::snprintf(line, sizeof line, "%-*s  %-7s %8s %8s %6s %8s  %s\n", static_cast<int>(width), "slide", "status",
                "tiles", "mpp", "mag", "seconds", "note");
  out << line;
  int64_t tiles = 0, done = 0, skipped = 0, failed = 0;
  std::string warnings;
  int64_t warned = 0;
  for (size_t i = 0; i < slides.size(); ++i) {
    const auto& o = outcomes[i];
    const char* status = o.status == SlideOutcome::Status::Done      ? "done"
                         : o.status == SlideOutcome::Status::Skipped ? "skipped"
                                                                      : "FAILED";
    std::string note = o.status == SlideOutcome::Status::Failed ? o.stage + ": " + o.reason : o.note;
    if (o.status != SlideOutcome::Status::Failed && !o.warning.empty()) {
      note = "WARNING " + o.warning + (note.empty() ? "" : "; " + note);
      warnings += str("  ", slides[i].id, ": ", o.warning, "\n");
      ++warned;
    }
    if (note.size() > 100) note = note.substr(0, 97) + "...";
    std::snprintf(line, sizeof line, "%-*s  %-7s %8lld %8.4f %5.0fx %8.2f  %s\n", static_cast<int>(width),
                  slides[i].id.substr(0, width).c_str(), status, static_cast<long long>(o.tiles), o.mpp,
                  o.magnification, o.seconds, note.c_str());
    out << line;
    if (o.status == SlideOutcome::Status::Failed) {
      ++failed;
    } else {
      tiles += o.tiles;
      (o.status == SlideOutcome::Status::Done ? done : skipped)++;
    }
  }
  const double secs = std::max(wall_seconds, 1e-9);
  out << str(slides.size(), " slides: ", done, " done, ", skipped, " skipped (complete earlier), ", failed,
             " failed; ", tiles, " tiles; ", wall_seconds, " s (", slides.size() / secs, " slides/s, ", tiles / secs,
             " tiles/s)\n");
  if (warned) out << warned << " slide(s) with a warning:\n" << warnings;
  return out.str();
}

std::string temp_path(const std::string& final_path) { return final_path + ".tmp"; }

void commit_file(const std::string& temp, const std::string& final_path) {
  const int fd = ::open(temp.c_str(), O_RDONLY);
  PATHVLM_CHECK(fd >= 0, "'", temp, "': cannot open the finished temporary file to sync it");
  const int synced = ::fsync(fd);
  ::close(fd);
  PATHVLM_CHECK(synced == 0, "'", temp, "': fsync failed");
  std::error_code ec;
  fs::rename(temp, final_path, ec);
  PATHVLM_CHECK(!ec, "cannot rename '", temp, "' to '", final_path, "': ", ec.message());
}

bool file_exists(const std::string& path) { return fs::exists(path); }

void make_dirs(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  PATHVLM_CHECK(!ec, "cannot create the folder '", dir, "': ", ec.message());
}

void write_text_file_atomic(const std::string& path, const std::string& text) {
  const std::string temp = temp_path(path);
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    PATHVLM_CHECK(out, "cannot write '", temp, "'");
    out << text;
    PATHVLM_CHECK(out.good(), "writing '", temp, "' failed");
  }
  commit_file(temp, path);
}

}  // namespace pathvlm::wsi
