// Synthetic pyramidal slides: see slide_synth.h.
#include "synth/slide_synth.h"
#include "synth/slide_instruct.h"
#include "synth/synth_tiles.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/parallel.h"
#include "core/progress.h"
#include "data/image.h"
#include "wsi/slide_batch.h"
#include "synth/tissue_texture.h"

#ifdef PATHVLM_HAVE_LIBTIFF
#include <tiffio.h>
#endif

namespace pathvlm::synth {

using wsi::commit_file;
using wsi::csv_field;
using wsi::make_dirs;
using wsi::temp_path;
using wsi::write_text_file_atomic;

bool slide_synth_built_in() {
#ifdef PATHVLM_HAVE_LIBTIFF
  return true;
#else
  return false;
#endif
}

namespace {

// splitmix64: a tiny deterministic generator, identical on every platform.
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }
  double uniform(double lo = 0, double hi = 1) { return lo + (hi - lo) * (next() >> 11) * (1.0 / 9007199254740992.0); }
  int integer(int lo, int hi) { return lo + static_cast<int>(next() % static_cast<uint64_t>(hi - lo + 1)); }
  template <class T>
  const T& pick(const std::vector<T>& v) { return v[next() % v.size()]; }

 private:
  uint64_t state_;
};

uint64_t mix(uint64_t a, uint64_t b) { return Rng(a * 0x100000001b3ULL ^ (b + 0x9e3779b97f4a7c15ULL)).next(); }

// A blob: an ellipse whose radius wobbles with a few low harmonics of the angle.
struct Blob {
  double cx, cy, rx, ry, angle;
  double amp[4], phase[4];
  double cos_angle = std::cos(angle), sin_angle = std::sin(angle);
  bool inside(double x, double y) const {
    const double dx = x - cx, dy = y - cy;
    const double c = cos_angle, s = sin_angle;
    const double u = (dx * c + dy * s) / rx, v = (-dx * s + dy * c) / ry;
    const double theta = std::atan2(v, u);
    double r = 1;
    for (int k = 0; k < 4; ++k) r += amp[k] * std::sin((k + 2) * theta + phase[k]);
    return u * u + v * v <= r * r;
  }
  double reach() const { return std::max(rx, ry) * 1.45; }  // bounds the wobble (sum of amplitudes <= 0.45)
};

Blob random_blob(Rng& rng, double cx, double cy, double radius) {
  Blob b{cx, cy, radius * rng.uniform(0.8, 1.2), radius * rng.uniform(0.55, 1.0), rng.uniform(0, M_PI), {}, {}};
  for (int k = 0; k < 4; ++k) b.amp[k] = rng.uniform(0.0, 0.1125), b.phase[k] = rng.uniform(0, 2 * M_PI);
  return b;
}

// 2x2 box average of uint8 [h,w,3] (odd edges replicate).
torch::Tensor halve(const torch::Tensor& img) {
  auto f = img.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat);
  auto pooled = torch::avg_pool2d(f, {2, 2}, {2, 2}, {0, 0}, /*ceil_mode=*/true, /*count_include_pad=*/false);
  return pooled.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8).contiguous();
}

#ifdef PATHVLM_HAVE_LIBTIFF

void write_pyramid_tiff(const std::string& path, const std::vector<torch::Tensor>& levels, const SynthSlidesConfig& c,
                        const std::string& description) {
  TIFFSetWarningHandler(nullptr);
  TIFF* tif = TIFFOpen(path.c_str(), "w8");  // BigTIFF: real slides outgrow 4 GB
  PATHVLM_CHECK(tif != nullptr, "synthetic slide '", path, "': cannot create the TIFF file");
  struct Closer {
    TIFF* t;
    ~Closer() { TIFFClose(t); }
  } closer{tif};
  const bool jpeg = c.compression == "jpeg";
  const int ts = c.tile_size;
  std::vector<uint8_t> tile(static_cast<size_t>(ts) * ts * 3);
  for (size_t li = 0; li < levels.size(); ++li) {
    const auto& img = levels[li];
    const int h = static_cast<int>(img.size(0)), w = static_cast<int>(img.size(1));
    const double downsample = static_cast<double>(c.width) / w;
    const double pixels_per_cm = 1e4 / (c.mpp * downsample);
    TIFFSetField(tif, TIFFTAG_SUBFILETYPE, li == 0 ? 0 : FILETYPE_REDUCEDIMAGE);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(w));
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(h));
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(ts));
    TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<uint32_t>(ts));
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
    TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
    TIFFSetField(tif, TIFFTAG_XRESOLUTION, static_cast<float>(pixels_per_cm));
    TIFFSetField(tif, TIFFTAG_YRESOLUTION, static_cast<float>(pixels_per_cm));
    TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_CENTIMETER);
    if (li == 0) TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, description.c_str());
    if (jpeg) {
      TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_JPEG);
      TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_YCBCR);
      TIFFSetField(tif, TIFFTAG_JPEGQUALITY, c.jpeg_quality);
      TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);  // libtiff converts RGB <-> YCbCr
    } else {
      TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
      TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
      TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL);
    }
    auto acc = img.accessor<uint8_t, 3>();
    for (int ty = 0; ty < h; ty += ts) {
      for (int tx = 0; tx < w; tx += ts) {
        std::fill(tile.begin(), tile.end(), 255);  // edge tiles are padded with white glass
        for (int y = 0; y < ts && ty + y < h; ++y) {
          const int n = std::min(ts, w - tx);
          std::memcpy(&tile[static_cast<size_t>(y) * ts * 3], &acc[ty + y][tx][0], static_cast<size_t>(n) * 3);
        }
        PATHVLM_CHECK(TIFFWriteTile(tif, tile.data(), tx, ty, 0, 0) >= 0, "synthetic slide '", path,
                      "': writing tile (", tx, ",", ty, ") of level ", li, " failed");
      }
    }
    PATHVLM_CHECK(TIFFWriteDirectory(tif), "synthetic slide '", path, "': writing level ", li, " failed");
  }
}

#endif

const std::vector<std::string>& phrases(synth::TissueClass c) {
  using synth::TissueClass;
  static const std::vector<std::vector<std::string>> table = {
      {"invasive adenocarcinoma", "malignant glandular epithelium", "carcinoma with large pleomorphic nuclei",
       "infiltrating tumour cells with hyperchromatic nuclei"},
      {"dense lymphocytic infiltrate", "lymphoid aggregates", "sheets of small round lymphocytes",
       "inflammatory infiltrate of lymphocytes"},
      {"fibrous stroma", "collagenous stroma with spindle cells", "desmoplastic stroma", "fibrocollagenous tissue"},
      {"mature adipose tissue", "lobules of fat", "adipocytes with thin septa", "fatty tissue"},
      {"pools of extracellular mucin", "mucinous material", "pale mucoid areas", "lakes of mucus"},
      {"coagulative necrosis", "necrotic debris with karyorrhexis", "areas of tumour necrosis",
       "eosinophilic necrotic material"},
      {"benign colonic mucosa", "normal glandular mucosa", "unremarkable crypts", "non-neoplastic mucosa"},
      {"background", "glass", "empty background", "no tissue"},
  };
  return table.at(static_cast<size_t>(c));
}

std::string amount(double fraction, Rng& rng) {
  if (fraction >= 0.5) return rng.pick<std::string>({"predominantly", "mostly", "largely"});
  if (fraction >= 0.2) return rng.pick<std::string>({"substantial", "considerable", "prominent"});
  return rng.pick<std::string>({"focal", "minor", "scattered"});
}

std::string capitalise(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

}  // namespace

std::vector<std::pair<double, int>> synth_class_shares(const std::vector<SynthRegion>& regions) {
  std::vector<std::pair<double, int>> shares;
  for (const auto& r : regions) {
    auto it = std::find_if(shares.begin(), shares.end(), [&](const auto& s) { return s.second == r.tissue_class; });
    if (it == shares.end()) {
      shares.push_back({r.area_fraction, r.tissue_class});
    } else {
      it->first += r.area_fraction;
    }
  }
  std::stable_sort(shares.begin(), shares.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return shares;
}

std::string synth_report(const std::vector<SynthRegion>& regions, uint64_t seed) {
  Rng rng(mix(seed, 0x7265706f7274ULL));
  const auto shares = synth_class_shares(regions);
  std::string text = rng.pick<std::string>({"Sections show ", "The slide shows ", "Microscopy reveals ",
                                            "Examination of the tissue demonstrates ", "Histology shows "});
  std::vector<std::string> parts;
  for (const auto& [share, cls] : shares) {
    const auto c = static_cast<synth::TissueClass>(cls);
    std::string part = rng.pick(phrases(c));
    if (rng.uniform() < 0.5) {
      part = amount(share, rng) + " " + part;
    } else {
      part += str(" (about ", static_cast<int>(std::lround(share * 20)) * 5, "% of the tissue)");
    }
    parts.push_back(part);
  }
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) text += i + 1 == parts.size() ? (parts.size() > 2 ? ", and " : " and ") : ", ";
    text += parts[i];
  }
  text += ". ";
  const int regions_n = static_cast<int>(regions.size());
  text += rng.pick<std::string>({str("The specimen consists of ", regions_n, " tissue fragment", regions_n > 1 ? "s" : "", ". "),
                                 str(capitalise(std::to_string(regions_n)), " fragment", regions_n > 1 ? "s are" : " is",
                                     " present on the slide. "),
                                 ""});
  bool tumour = false, necrosis = false;
  for (const auto& s : shares) {
    tumour |= s.second == static_cast<int>(synth::TissueClass::Tumor);
    necrosis |= s.second == static_cast<int>(synth::TissueClass::Necrosis);
  }
  if (tumour) {
    text += rng.pick<std::string>({"Diagnosis: adenocarcinoma", "Final diagnosis: invasive adenocarcinoma",
                                   "Impression: malignant epithelial neoplasm (adenocarcinoma)"});
    text += necrosis ? rng.pick<std::string>({", with tumour necrosis.", " with necrosis."}) : ".";
  } else {
    text += rng.pick<std::string>({"No malignancy is identified.", "Negative for carcinoma.",
                                   "Diagnosis: benign tissue, no evidence of malignancy."});
  }
  return text;
}

#ifdef PATHVLM_HAVE_LIBTIFF

namespace {
std::string slide_id(const std::string& prefix, int index) {
  return str(prefix, "_", index < 100 ? (index < 10 ? "00" : "0") : "", index);
}
}  // namespace

SynthSlide write_synthetic_slide(const std::string& tiff_path, int index, const SynthSlidesConfig& c,
                                 torch::Tensor* mask_out) {
  PATHVLM_CHECK(c.width >= 64 && c.height >= 64 && c.levels >= 1 && c.tile_size % 16 == 0,
                "synth slides: width/height must be >= 64, levels >= 1, tile_size a multiple of 16");
  PATHVLM_CHECK(int64_t(c.width) * c.height <= (int64_t(1) << 30), "synth slides: ", c.width, "x", c.height,
                " is too large to paint in memory (at most 2^30 pixels)");
  PATHVLM_CHECK(c.compression == "jpeg" || c.compression == "deflate", "synth slides: compression must be jpeg or "
                "deflate, got '", c.compression, "'");
  PATHVLM_CHECK(c.min_regions >= 1 && c.max_regions >= c.min_regions, "synth slides: need 1 <= min_regions <= max_regions");
  const uint64_t seed = mix(c.seed, static_cast<uint64_t>(index));
  Rng rng(seed);
  SynthSlide slide;
  slide.id = slide_id(c.id_prefix, index);
  slide.tiff_path = tiff_path;

  const int W = c.width, H = c.height;
  auto image = synth::draw_tissue(synth::TissueClass::Background, H, W, mix(seed, 1)).contiguous();
  auto label = torch::full({H, W}, static_cast<int8_t>(-1), torch::kInt8);  // -1 glass, else class
  auto img = image.accessor<uint8_t, 3>();
  auto lab = label.accessor<int8_t, 2>();

  // Regions on a jittered grid of cells so they rarely overlap and never touch the edge.
  const int n = rng.integer(c.min_regions, c.max_regions);
  const int cols = static_cast<int>(std::ceil(std::sqrt(n * static_cast<double>(W) / H)));
  const int rows = (n + cols - 1) / cols;
  const double cell_w = static_cast<double>(W) / cols, cell_h = static_cast<double>(H) / rows;
  const std::vector<synth::TissueClass> classes = {synth::TissueClass::Tumor,   synth::TissueClass::Lymphocytes,
                                                  synth::TissueClass::Stroma,  synth::TissueClass::Adipose,
                                                  synth::TissueClass::Mucus,   synth::TissueClass::Necrosis,
                                                  synth::TissueClass::NormalMucosa};
  for (int r = 0; r < n; ++r) {
    const int cx0 = r % cols, cy0 = r / cols;
    const double radius = 0.5 * std::min(cell_w, cell_h) * rng.uniform(0.7, 0.9);
    const double cx = (cx0 + 0.5) * cell_w + rng.uniform(-0.1, 0.1) * cell_w;
    const double cy = (cy0 + 0.5) * cell_h + rng.uniform(-0.1, 0.1) * cell_h;
    Blob blob = random_blob(rng, cx, cy, radius);
    const synth::TissueClass cls = rng.pick(classes);
    SynthRegion region;
    region.tissue_class = static_cast<int>(cls);
    region.class_key = synth::tissue_class_key(cls);
    region.has_hole = rng.uniform() < c.hole_probability;
    Blob hole = random_blob(rng, cx + rng.uniform(-0.2, 0.2) * radius, cy + rng.uniform(-0.2, 0.2) * radius,
                            radius * rng.uniform(0.18, 0.28));
    const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(cx - blob.reach()));
    const int64_t x1 = std::min<int64_t>(W, static_cast<int64_t>(cx + blob.reach()) + 1);
    const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(cy - blob.reach()));
    const int64_t y1 = std::min<int64_t>(H, static_cast<int64_t>(cy + blob.reach()) + 1);
    auto texture = synth::draw_tissue(cls, static_cast<int>(y1 - y0), static_cast<int>(x1 - x0), mix(seed, 100 + r));
    auto tex = texture.accessor<uint8_t, 3>();
    region.x0 = x1, region.y0 = y1, region.x1 = x0, region.y1 = y0;
    for (int64_t y = y0; y < y1; ++y) {
      for (int64_t x = x0; x < x1; ++x) {
        if (!blob.inside(x + 0.5, y + 0.5) || (region.has_hole && hole.inside(x + 0.5, y + 0.5))) continue;
        for (int ch = 0; ch < 3; ++ch) img[y][x][ch] = tex[y - y0][x - x0][ch];
        lab[y][x] = static_cast<int8_t>(region.tissue_class);
        region.x0 = std::min(region.x0, x), region.y0 = std::min(region.y0, y);
        region.x1 = std::max(region.x1, x + 1), region.y1 = std::max(region.y1, y + 1);
      }
    }
    slide.regions.push_back(region);
  }
  // Shares of the tissue per class, from the painted labels (later regions may cover earlier ones).
  auto counts = torch::bincount(label.to(torch::kLong).flatten() + 1, {}, synth::kNumTissueClasses + 1);
  const double tissue = static_cast<double>(W) * H - counts[0].item<double>();
  slide.tissue_fraction = tissue / (static_cast<double>(W) * H);
  double best = -1;
  for (auto& region : slide.regions) {
    region.area_fraction = tissue > 0 ? counts[region.tissue_class + 1].item<double>() / tissue : 0;
    if (region.area_fraction > best) best = region.area_fraction, slide.label = region.class_key;
  }
  // A class painted by two regions shares its count between them.
  for (auto& region : slide.regions) {
    int same = 0;
    for (const auto& other : slide.regions) same += other.tissue_class == region.tissue_class;
    region.area_fraction /= same;
  }
  slide.report = synth_report(slide.regions, seed);

  std::vector<torch::Tensor> levels{image};
  for (int l = 1; l < c.levels; ++l) levels.push_back(halve(levels.back()));
  write_pyramid_tiff(tiff_path, levels, c, str("pathvlm synthetic slide ", slide.id));

  if (mask_out) {
    // Ground truth at the coarsest level: a pixel is tissue when most of the level-0 pixels it covers are.
    auto fraction = torch::adaptive_avg_pool2d(label.ge(0).to(torch::kFloat).unsqueeze(0),
                                               {levels.back().size(0), levels.back().size(1)});
    *mask_out = fraction.squeeze(0).ge(0.5).to(torch::kUInt8).contiguous();
  }
  return slide;
}

namespace {

// Slide `index`'s TIFF, mask and regions JSON.
SynthSlide write_slide_files(const std::string& out_dir, int index, const SynthSlidesConfig& config) {
  const std::string id = slide_id(config.id_prefix, index);
  torch::Tensor mask;
  const std::string tiff = out_dir + "/" + id + ".tiff";
  SynthSlide s = write_synthetic_slide(temp_path(tiff), index, config, &mask);
  commit_file(temp_path(tiff), tiff);
  s.tiff_path = tiff;
  s.mask_path = out_dir + "/masks/" + id + ".png";
  data::write_image(s.mask_path, (mask * 255).unsqueeze(2).expand({-1, -1, 3}).contiguous());
  nlohmann::json regions = nlohmann::json::array();
  for (const auto& r : s.regions) {
    regions.push_back({{"class", r.class_key},
                       {"bbox_level0", {r.x0, r.y0, r.x1, r.y1}},
                       {"area_fraction", r.area_fraction},
                       {"has_hole", r.has_hole}});
  }
  nlohmann::json meta = {{"slide_id", s.id},        {"width", config.width}, {"height", config.height},
                         {"levels", config.levels}, {"mpp", config.mpp},     {"label", s.label},
                         {"tissue_fraction", s.tissue_fraction}, {"report", s.report}, {"regions", regions}};
  write_text_file_atomic(out_dir + "/regions/" + id + ".json", meta.dump(2) + "\n");
  return s;
}

}  // namespace

std::vector<SynthSlide> synth_slides(const std::string& out_dir, const SynthSlidesConfig& config) {
  make_dirs(out_dir + "/masks");
  make_dirs(out_dir + "/regions");
  // Each slide is drawn from its own seed: the threads change nothing in the files.
  std::vector<SynthSlide> slides(static_cast<size_t>(std::max(config.count, 0)));
  Progress bar("synth slides", config.count, "slides");
  for_each_index(slides.size(), config.threads, [&](size_t i) {
    slides[i] = write_slide_files(out_dir, static_cast<int>(i), config);
    bar.advance(1);
  });
  bar.finish();
  std::string reports = "slide_id,report\n", table = "slide_id,path,mpp,label,tissue_fraction,classes\n";
  for (const auto& s : slides) {
    std::set<std::string> keys;
    for (const auto& r : s.regions) keys.insert(r.class_key);
    std::string class_list;
    for (const auto& k : keys) class_list += (class_list.empty() ? "" : ";") + k;
    reports += csv_field(s.id) + "," + csv_field(s.report) + "\n";
    table += str(csv_field(s.id), ",", csv_field(s.id + ".tiff"), ",", config.mpp, ",", s.label, ",",
                 s.tissue_fraction, ",", class_list, "\n");
  }
  write_text_file_atomic(out_dir + "/reports.csv", reports);
  write_text_file_atomic(out_dir + "/slides.csv", table);
  std::vector<ZeroShotClassText> classes;
  for (auto c : synth::all_tissue_classes())
    if (c != synth::TissueClass::Background) classes.push_back({synth::tissue_class_key(c), phrases(c)});
  write_zeroshot_yaml(out_dir + "/zeroshot.yaml",
                      "Zero-shot classes of the synthetic slides: a slide's label (slides.csv) is the class covering "
                      "most of its tissue.",
                      {"Sections show predominantly {}.", "The slide shows mostly {}.", "Microscopy reveals largely {}."},
                      classes);
  write_slide_instruct(out_dir + "/instruct", slides, config.seed);
  return slides;
}

#else

SynthSlide write_synthetic_slide(const std::string& tiff_path, int, const SynthSlidesConfig&, torch::Tensor*) {
  throw Error(str("synthetic slide '", tiff_path, "': pathvlm was built without libtiff (install libtiff-dev)"));
}

std::vector<SynthSlide> synth_slides(const std::string& out_dir, const SynthSlidesConfig&) {
  throw Error(str("synth slides into '", out_dir, "': pathvlm was built without libtiff (install libtiff-dev)"));
}

#endif

}  // namespace pathvlm::synth
