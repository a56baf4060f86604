// Batches of slides for `tile` and `embed`: the slide list (a folder or a CSV), per-slide mpp overrides,
// slides processed in parallel with a progress bar, resumable atomic outputs, failures.csv and a summary.
//
//   auto slides = list_slides("wsis/");                    // or a CSV with columns slide[,mpp]
//   apply_mpp_csv(slides, "mpp.csv");
//   auto outcomes = run_slide_batch(slides, workers, "tiling", [&](const SlideEntry& s, SlideJob& job) {
//     job.stage = "open"; ...; job.stage = "segment"; ...; return SlideOutcome::done(n_tiles);
//   });
//   write_failures_csv(out + "/failures.csv", slides, outcomes);
//   std::cout << format_summary(slides, outcomes);
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "data/csv.h"

namespace pathvlm::wsi {

struct SlideEntry {
  std::string id;    // file name without its extension
  std::string path;
  double mpp = 0;    // > 0: overrides the slide's own microns per pixel
  std::string problem;  // why the entry cannot be read (dangling link, no permission, ...); "" when fine
};

// A folder: every entry with a whole-slide extension (svs, tif, tiff, ndpi, vms, vmu, scn, mrxs, svslide, bif,
// dcm), sorted by name. A .csv file: a header naming the path column (slide, wsi or path; relative paths are
// relative to the CSV) and optionally an mpp column. Either way the DICOM files of one series (a slide's levels,
// label, overview) are one entry, the first listed: the slide opens its series from any of them. Duplicate ids are
// an Error. Entries that cannot be read (input_problem) are listed with their `problem` set, so that the batch counts
// them as failures.
std::vector<SlideEntry> list_slides(const std::string& dir_or_csv);

// Why the input file `path` cannot be read: "" when it is a readable regular file, else e.g. "dangling symbolic
// link to 'x'", "no such file", "not readable (permission denied)", "a folder, not a file".
std::string input_problem(const std::string& path);

// Reads a CSV with a slide column (slide, wsi or path: id or file name) and an mpp column and sets the
// override of each slide it names; a name matching no slide is an Error naming it.
void apply_mpp_csv(std::vector<SlideEntry>& slides, const std::string& csv_path);

// A minimal RFC-4180 CSV reader (quoted fields, embedded commas and quotes); the first row is the header.
std::vector<std::vector<std::string>> read_csv(const std::string& path);
using data::csv_field;

struct SlideOutcome {
  enum class Status { Done, Skipped, Failed };
  Status status = Status::Done;
  int64_t tiles = 0;
  double mpp = 0, magnification = 0;
  double seconds = 0;
  std::string stage, reason;  // for failures
  std::string note;           // e.g. why a complete output was redone
  std::string warning;        // a finished slide that needs a look, e.g. why it gave 0 tiles

  static SlideOutcome done(int64_t tiles) { return with(Status::Done, tiles); }
  static SlideOutcome skipped(int64_t tiles) { return with(Status::Skipped, tiles); }
  static SlideOutcome with(Status status, int64_t tiles) {
    SlideOutcome o;
    o.status = status, o.tiles = tiles;
    return o;
  }
};

// What the per-slide function reports while it runs: the stage named in a failure.
struct SlideJob {
  std::string stage = "start";
};

// Runs `fn` on every slide with `workers` threads (each slide on one thread, in index order of pick-up). An
// exception from `fn` becomes a Failed outcome with the current stage and the message; the batch goes on. An
// entry with a `problem` fails at stage "list" without calling `fn`.
// A progress bar named `what` counts slides and the tiles of done slides.
std::vector<SlideOutcome> run_slide_batch(const std::vector<SlideEntry>& slides, int workers, const std::string& what,
                                          const std::function<SlideOutcome(const SlideEntry&, SlideJob&)>& fn);

// failures.csv (slide,stage,reason) in slide order, written atomically; an empty run writes the header only.
void write_failures_csv(const std::string& path, const std::vector<SlideEntry>& slides,
                        const std::vector<SlideOutcome>& outcomes);

// A table of every slide (status, tiles, mpp, magnification, seconds, failure or warning) and the totals with
// slides/s and tiles/s over `wall_seconds`; warnings (e.g. slides with 0 tiles) are counted and listed at the end.
std::string format_summary(const std::vector<SlideEntry>& slides, const std::vector<SlideOutcome>& outcomes,
                           double wall_seconds);

// Atomic outputs: write to temp_path(final), then commit_file() fsyncs and renames it over `final`.
std::string temp_path(const std::string& final_path);
void commit_file(const std::string& temp, const std::string& final_path);
bool file_exists(const std::string& path);
void make_dirs(const std::string& dir);
void write_text_file_atomic(const std::string& path, const std::string& text);

}  // namespace pathvlm::wsi
