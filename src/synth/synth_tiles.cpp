#include "synth/synth_tiles.h"
#include "core/random.h"

#include <cctype>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "core/replace_all.h"
#include "data/image.h"

namespace fs = std::filesystem;

namespace pathvlm::synth {

using data::write_image;
namespace {

struct Pick {
  uint64_t state;
  size_t operator()(size_t n) { return static_cast<size_t>((state = splitmix64(state)) % n); }
  bool chance(double p) { return static_cast<double>((state = splitmix64(state)) >> 11) / 9007199254740992.0 < p; }
};

// Caption vocabulary per class: how it may be named, and what may be seen in it.
struct ClassWords {
  std::vector<std::string> names, findings;
};

const ClassWords& words(TissueClass c) {
  static const ClassWords table[kNumTissueClasses] = {
      {{"adenocarcinoma", "tumor epithelium", "carcinoma", "malignant epithelium", "invasive adenocarcinoma"},
       {"with large pleomorphic nuclei", "with crowded hyperchromatic nuclei", "with prominent nucleoli",
        "with a high nuclear-to-cytoplasmic ratio", "forming irregular cribriform lumens"}},
      {{"lymphocytes", "a lymphoid aggregate", "a dense lymphocytic infiltrate", "lymphoid tissue"},
       {"of small round dark nuclei", "with densely packed small cells", "with scant cytoplasm",
        "with uniform round nuclei"}},
      {{"stroma", "fibrous stroma", "desmoplastic stroma", "collagenous connective tissue"},
       {"with wavy pink collagen fibres", "with spindle-shaped fibroblasts", "with sparse elongated nuclei",
        "with parallel eosinophilic fibres"}},
      {{"adipose tissue", "fat", "mature adipocytes", "fatty tissue"},
       {"with large empty vacuoles", "with thin cell membranes", "with flattened peripheral nuclei",
        "with a honeycomb pattern"}},
      {{"mucus", "extracellular mucin", "mucinous material", "a mucin pool"},
       {"with pale blue-grey wisps", "with few floating cells", "with a stringy appearance",
        "that is nearly acellular"}},
      {{"necrosis", "necrotic debris", "tumor necrosis", "necrotic tissue"},
       {"with karyorrhectic nuclear fragments", "with eosinophilic ghost cells", "with granular debris",
        "without viable cells"}},
      {{"normal colon mucosa", "benign colonic mucosa", "normal glands", "colonic crypts"},
       {"with regular round crypts", "with basal nuclei and goblet cells", "with preserved architecture",
        "with orderly glands in lamina propria"}},
      {{"background", "empty glass", "slide background", "an area without tissue"},
       {"with no tissue", "with only faint debris", "that is blank", "with a few specks of dust"}},
  };
  return table[static_cast<int>(c)];
}

const std::vector<std::string>& caption_templates() {
  // {N}: a class name; {F}: a finding.
  static const std::vector<std::string> t = {
      "{N} {F}.",
      "H&E stained section of {N} {F}.",
      "A histopathology image of {N}.",
      "Microscopic view of {N} {F}.",
      "{N}, H&E, 20x.",
      "This tile shows {N} {F}.",
      "Photomicrograph of {N} {F}.",
      "Colorectal specimen: {N}.",
      "High-power field of {N} {F}.",
      "Hematoxylin and eosin stain showing {N}.",
  };
  return t;
}

std::string csv_quote(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  return "\"" + replace_all(s, "\"", "\"\"") + "\"";
}

std::string yaml_quote(const std::string& s) { return "\"" + replace_all(replace_all(s, "\\", "\\\\"), "\"", "\\\"") + "\""; }

struct Split {
  const char* name;
  int64_t per_class;
  uint64_t salt;  // distinct tile seeds per split: held-out tiles never repeat training tiles
};

}  // namespace

std::string synth_caption(TissueClass c, uint64_t seed) {
  Pick pick{splitmix64(seed ^ 0xCAB7ull)};
  const auto& w = words(c);
  const auto& templates = caption_templates();
  std::string caption = templates[pick(templates.size())];
  caption = replace_all(caption, "{N}", w.names[pick(w.names.size())]);
  std::string finding = w.findings[pick(w.findings.size())];
  if (pick.chance(0.3)) {  // sometimes two findings: "with A and B"
    const std::string second = w.findings[pick(w.findings.size())];
    if (second != finding && finding.rfind("with ", 0) == 0 && second.rfind("with ", 0) == 0)
      finding += " and " + second.substr(5);
  }
  caption = replace_all(caption, "{F}", finding);
  caption[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(caption[0])));
  return caption;
}

std::vector<std::string> synth_zeroshot_templates() {
  return {"an H&E image of {}.", "a histopathology image of {}.", "a microscopic view of {}.", "{}, H&E stain."};
}

std::vector<std::string> synth_class_synonyms(TissueClass c) {
  const auto& names = words(c).names;
  return {names[0], names[1]};
}

std::vector<std::string> synth_class_names(TissueClass c) { return words(c).names; }

std::vector<std::string> synth_class_findings(TissueClass c) { return words(c).findings; }

void write_zeroshot_yaml(const std::string& path, const std::string& comment,
                         const std::vector<std::string>& templates, const std::vector<ZeroShotClassText>& classes) {
  std::ofstream yaml(path, std::ios::trunc);
  PATHVLM_CHECK(yaml, "cannot write '", path, "'");
  yaml << "# " << comment << "\n";
  yaml << "templates:\n";
  for (const auto& t : templates) yaml << "  - " << yaml_quote(t) << "\n";
  yaml << "classes:\n";
  for (const auto& c : classes) {
    yaml << "  - name: " << c.name << "\n    synonyms: [";
    for (size_t i = 0; i < c.synonyms.size(); ++i) yaml << (i ? ", " : "") << yaml_quote(c.synonyms[i]);
    yaml << "]\n";
  }
  PATHVLM_CHECK(yaml.flush(), "cannot write '", path, "'");
}

SynthTilesReport synth_tiles(const SynthTilesOptions& o) {
  PATHVLM_CHECK(!o.out_dir.empty(), "synth tiles: no output folder given");
  PATHVLM_CHECK(o.tile_size >= 16 && o.tile_size <= 4096, "synth tiles: tile size must be in [16, 4096], got ",
                o.tile_size);
  PATHVLM_CHECK(o.train_per_class >= 0 && o.val_per_class >= 0 && o.zeroshot_per_class >= 0,
                "synth tiles: tile counts must be >= 0");
  PATHVLM_CHECK(o.format == "png" || o.format == "jpg", "synth tiles: format must be png or jpg, got '", o.format,
                "'");
  const std::vector<Split> splits = {{"train", o.train_per_class, 1}, {"val", o.val_per_class, 2},
                                     {"zeroshot", o.zeroshot_per_class, 3}};
  const auto classes = all_tissue_classes();

  // Every tile to draw, in file order: split, then tile number, classes interleaved.
  struct Item {
    size_t split;
    TissueClass c;
    int64_t n;
    std::string rel;
  };
  std::vector<Item> items;
  for (size_t s = 0; s < splits.size(); ++s) {
    fs::create_directories(fs::path(o.out_dir) / "images" / splits[s].name);
    for (int64_t n = 0; n < splits[s].per_class; ++n)
      for (auto c : classes) {
        char name[96];
        std::snprintf(name, sizeof name, "images/%s/%s_%05lld.%s", splits[s].name, tissue_class_key(c),
                      static_cast<long long>(n), o.format.c_str());
        items.push_back({s, c, n, name});
      }
  }

  auto tile_seed = [&](const Item& it) {
    return splitmix64(splitmix64(splitmix64(o.seed) ^ splits[it.split].salt) ^ (static_cast<uint64_t>(it.n) << 4 | static_cast<uint64_t>(it.c)));
  };
  Progress::Options popt;
  popt.enabled = o.progress;
  Progress bar("synth tiles", static_cast<int64_t>(items.size()), "tiles", popt);
  try {
    for_each_index(items.size(), o.threads, [&](size_t i) {
      const Item& it = items[i];
      auto tile = draw_tissue(it.c, o.tile_size, o.tile_size, tile_seed(it));
      write_image((fs::path(o.out_dir) / it.rel).string(), tile, o.jpeg_quality);
      bar.advance(1);
    });
  } catch (const std::exception& e) {
    throw Error(str("synth tiles: ", e.what()));
  }
  bar.finish();

  SynthTilesReport report;
  for (size_t s = 0; s < splits.size(); ++s) {
    const std::string path = (fs::path(o.out_dir) / (std::string(splits[s].name) + ".csv")).string();
    std::ofstream csv(path, std::ios::trunc);
    PATHVLM_CHECK(csv, "synth tiles: cannot write '", path, "'");
    csv << "filepath,caption,label,class\n";
    int64_t count = 0;
    for (const auto& it : items) {
      if (it.split != s) continue;
      csv << it.rel << "," << csv_quote(synth_caption(it.c, tile_seed(it))) << "," << static_cast<int>(it.c) << ","
          << tissue_class_key(it.c) << "\n";
      ++count;
    }
    PATHVLM_CHECK(csv.flush(), "synth tiles: cannot write '", path, "'");
    if (s == 0) report.train = count, report.train_csv = path;
    if (s == 1) report.val = count, report.val_csv = path;
    if (s == 2) report.zeroshot = count, report.zeroshot_csv = path;
  }

  report.zeroshot_yaml = (fs::path(o.out_dir) / "zeroshot.yaml").string();
  std::vector<ZeroShotClassText> zeroshot;
  for (auto c : classes) zeroshot.push_back({tissue_class_key(c), synth_class_synonyms(c)});
  write_zeroshot_yaml(report.zeroshot_yaml, "Zero-shot classes of the synthetic tiles: a shard's label is the class position in this list.",
                      synth_zeroshot_templates(), zeroshot);
  return report;
}

}  // namespace pathvlm::synth
