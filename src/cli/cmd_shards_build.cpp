// `pathvlm shards build`: tiles shards + manifest from images listed in a CSV/TSV/JSONL, or from WebDataset tars.
#include <algorithm>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "data/tile_shards.h"
#include "data/webdataset.h"

namespace pathvlm::cli {

int cmd_shards_build(const Args& args) {
  ArgParser p("pathvlm shards build",
              "Build `tiles` HDF5 shards and their manifest.json from image files listed in a CSV/TSV\n"
              "(header with filepath, caption and optional label, id) or a JSONL file (same keys), or from\n"
              "WebDataset .tar shards (open_clip / img2dataset: KEY.jpg|png|webp + KEY.txt, optional KEY.cls;\n"
              "braces and '::' expand as in open_clip's --train-data: 'data/{00000..00099}.tar'). Records\n"
              "whose image is missing or does not decode, or whose caption is empty, are listed in\n"
              "OUT/bad_records.tsv and skipped.");
  p.positional("records", "a CSV, TSV or JSONL file listing the images and captions, or WebDataset .tar shards", true);
  p.option("out", "output folder for the shards, manifest.json and bad_records.tsv", true);
  p.option("images", "folder that relative file paths start from (default: the records file's folder)");
  p.option("storage", "encoded (keep JPEG/PNG bytes; TIFF becomes PNG), jpeg or png (re-encode), raw (uint8 pixels)",
           false, "encoded");
  p.option("size", "resize the shortest side to SIZE and center-crop SIZE x SIZE (0: keep)", false, "0");
  p.option("shard-size", "records per shard", false, "10000");
  p.option("prefix", "shard file name prefix (PREFIX-00000.h5)", false, "tiles");
  p.option("jpeg-quality", "quality when encoding JPEG", false, "95");
  p.option("separator", "CSV separator: comma, tab, or one character (default: tab for .tsv, else comma)");
  p.option("csv-img-key", "the CSV column (JSONL key) of the image paths (default: filepath, image or path)");
  p.option("csv-caption-key", "the CSV column (JSONL key) of the captions (default: caption, text or title)");
  p.option("threads", "image decoding threads", false, "2");
  p.flag("quiet", "no progress bar");
  if (!p.parse(args)) return 0;

  data::TileShardBuildOptions o;
  std::vector<std::string> sources;
  for (const auto& arg : p.positionals())
    for (auto& path : data::expand_shard_list(arg)) sources.push_back(std::move(path));
  auto ends_with = [](const std::string& path, const std::string& end) {
    return path.size() > end.size() && path.compare(path.size() - end.size(), end.size(), end) == 0;
  };
  for (const auto& path : sources)
    PATHVLM_CHECK(!ends_with(path, ".tar.gz") && !ends_with(path, ".tgz"), "shards build: '", path,
                  "' is a compressed tar; WebDataset shards are read as plain .tar (gunzip them first)");
  const auto tars = std::count_if(sources.begin(), sources.end(), [&](auto& path) { return ends_with(path, ".tar"); });
  if (tars > 0) {
    PATHVLM_CHECK(tars == static_cast<int64_t>(sources.size()), "shards build: WebDataset .tar shards and a records "
                  "file cannot be mixed (", sources.size() - tars, " of the ", sources.size(), " inputs are no .tar)");
    o.webdataset = sources;
  } else {
    PATHVLM_CHECK(sources.size() == 1, "shards build: one records file (CSV, TSV or JSONL) or .tar shards, got ",
                  sources.size(), " files");
    o.records = sources.front();
  }
  o.out_dir = p.get("out");
  o.images_dir = p.get("images");
  o.image_key = p.get("csv-img-key");
  o.caption_key = p.get("csv-caption-key");
  o.storage = p.get("storage");
  o.size = static_cast<int>(p.get_int("size"));
  o.shard_size = p.get_int("shard-size");
  o.prefix = p.get("prefix");
  o.jpeg_quality = static_cast<int>(p.get_int("jpeg-quality"));
  o.threads = static_cast<int>(p.get_int("threads"));
  o.progress = !p.get_flag("quiet");
  if (p.has("separator")) {
    const std::string s = p.get("separator");
    PATHVLM_CHECK(s == "comma" || s == "tab" || s.size() == 1, "--separator must be comma, tab or one character, got '",
                  s, "'");
    o.separator = s == "comma" ? ',' : s == "tab" ? '\t' : s[0];
  }
  auto r = data::build_tile_shards(o);
  std::cout << "wrote " << r.written << " of " << r.records << " records into " << r.shards.size() << " shard"
            << (r.shards.size() == 1 ? "" : "s") << "; manifest " << r.manifest << "\n";
  if (!r.bad.empty()) {
    std::cout << r.bad.size() << " bad record" << (r.bad.size() == 1 ? "" : "s") << " skipped (all in "
              << r.bad_records_file << "):\n";
    const size_t shown = std::min<size_t>(r.bad.size(), 10);
    for (size_t i = 0; i < shown; ++i)
      std::cout << "  line " << r.bad[i].line << " '" << r.bad[i].file << "': " << r.bad[i].problem << "\n";
    if (shown < r.bad.size()) std::cout << "  ... and " << r.bad.size() - shown << " more\n";
  }
  return 0;
}

}  // namespace pathvlm::cli
