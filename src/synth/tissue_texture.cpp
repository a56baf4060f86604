#include "synth/tissue_texture.h"

#include <algorithm>
#include <array>
#include <cmath>

#include "core/error.h"

namespace pathvlm::synth {
namespace {

constexpr double kPi = 3.14159265358979323846;

// splitmix64: portable, so the same seed paints the same tile on every machine and libtorch version.
struct Rng {
  uint64_t state;
  explicit Rng(uint64_t seed) : state(seed * 0x9E3779B97F4A7C15ull + 0x1234567ull) { next(); }
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  double uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  double normal(double mean, double sd) {
    const double u1 = std::max(uniform(), 1e-12), u2 = uniform();
    return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(2 * kPi * u2);
  }
  int64_t below(int64_t n) { return static_cast<int64_t>(uniform() * static_cast<double>(n)); }
};

uint64_t hash3(uint64_t a, uint64_t b, uint64_t c) {
  Rng r(a * 0x100000001B3ull ^ (b + 0x51ED27ull) * 0xC2B2AE3D27D4EB4Full ^ (c + 0x9Full) * 0x165667B19E3779F9ull);
  return r.next();
}

// Smooth value noise in [0, 1] at a given feature size (pixels), bilinear with a smoothstep fade. The corners of
// the last cell are kept: neighbouring pixels share a cell, and hashing its corners anew dominated the painting.
struct ValueNoise {
  uint64_t seed;
  double cell;
  double lattice(int64_t ix, int64_t iy) const {
    return static_cast<double>(hash3(seed, static_cast<uint64_t>(ix), static_cast<uint64_t>(iy)) >> 11) /
           9007199254740992.0;
  }
  double operator()(double x, double y) const {
    const double fx = x / cell, fy = y / cell;
    const double x0 = std::floor(fx), y0 = std::floor(fy);
    double tx = fx - x0, ty = fy - y0;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    const auto ix = static_cast<int64_t>(x0), iy = static_cast<int64_t>(y0);
    if (!cached_ || ix != cached_ix_ || iy != cached_iy_) {
      corners_[0] = lattice(ix, iy), corners_[1] = lattice(ix + 1, iy);
      corners_[2] = lattice(ix, iy + 1), corners_[3] = lattice(ix + 1, iy + 1);
      cached_ = true, cached_ix_ = ix, cached_iy_ = iy;
    }
    const auto [a, b, c, d] = corners_;
    return (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
  }

  mutable bool cached_ = false;
  mutable int64_t cached_ix_ = 0, cached_iy_ = 0;
  mutable std::array<double, 4> corners_{};
};

// Two octaves of value noise, in [0, 1].
double fractal(const ValueNoise& coarse, const ValueNoise& fine, double x, double y) {
  return 0.65 * coarse(x, y) + 0.35 * fine(x, y);
}

// Stain concentrations per pixel: hematoxylin (nuclei), eosin (cytoplasm, collagen), mucin (blue-grey).
// Colour comes from Beer-Lambert optical densities at the end, as in real brightfield images.
struct Canvas {
  int h, w;
  std::vector<float> hem, eos, muc;
  Canvas(int height, int width)
      : h(height), w(width), hem(size_t(height) * width), eos(size_t(height) * width), muc(size_t(height) * width) {}
  size_t at(int y, int x) const { return size_t(y) * w + x; }
};

// Fills eosin with a smooth field around `base` (+- amp) and adds faint hematoxylin and mucin backgrounds.
void fill_background(Canvas& cv, Rng& rng, double base, double amp, double feature, double hem_bg = 0.02,
                     double muc_bg = 0.0) {
  ValueNoise coarse{rng.next(), feature}, fine{rng.next(), feature / 4};
  for (int y = 0; y < cv.h; ++y)
    for (int x = 0; x < cv.w; ++x) {
      const double n = fractal(coarse, fine, x, y);
      const size_t i = cv.at(y, x);
      cv.eos[i] = static_cast<float>(std::max(0.0, base + amp * (2 * n - 1)));
      cv.hem[i] = static_cast<float>(hem_bg * (0.5 + n));
      cv.muc[i] = static_cast<float>(muc_bg);
    }
}

struct NucleusStyle {
  double radius_lo, radius_hi;  // mean radius range (px)
  double elongation_lo, elongation_hi;  // major / minor axis ratio
  double intensity_lo, intensity_hi;    // hematoxylin concentration
  double irregularity;                  // boundary wobble amplitude (fraction of the radius)
  double chromatin;                     // texture inside the nucleus (0 = flat)
  double nucleolus_prob;                // chance of a dark nucleolus
};

// Paints one nucleus: an ellipse with a wobbly boundary, soft edge and clumped chromatin.
void stamp_nucleus(Canvas& cv, Rng& rng, double cx, double cy, double angle, const NucleusStyle& s,
                   double radius_scale = 1.0) {
  const double r = rng.uniform(s.radius_lo, s.radius_hi) * radius_scale;
  const double elong = rng.uniform(s.elongation_lo, s.elongation_hi);
  const double ra = r * std::sqrt(elong), rb = r / std::sqrt(elong);
  const double intensity = rng.uniform(s.intensity_lo, s.intensity_hi);
  const double wobble_phase = rng.uniform(0, 2 * kPi), wobble2_phase = rng.uniform(0, 2 * kPi);
  const int lobes = 2 + static_cast<int>(rng.below(4));
  ValueNoise grain{rng.next(), std::max(1.2, r / 2.5)};
  const bool nucleolus = rng.uniform() < s.nucleolus_prob;
  const double nx = cx + rng.normal(0, r * 0.2), ny = cy + rng.normal(0, r * 0.2), nr = std::max(0.8, r * 0.22);
  const double ca = std::cos(angle), sa = std::sin(angle);
  const double reach = ra * (1 + s.irregularity) + 1.5;
  const int y0 = std::max(0, static_cast<int>(cy - reach)), y1 = std::min(cv.h - 1, static_cast<int>(cy + reach));
  const int x0 = std::max(0, static_cast<int>(cx - reach)), x1 = std::min(cv.w - 1, static_cast<int>(cx + reach));
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x) {
      const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
      const double u = (dx * ca + dy * sa) / ra, v = (-dx * sa + dy * ca) / rb;
      const double phi = std::atan2(v, u);
      const double edge = 1 + s.irregularity * (0.6 * std::sin(lobes * phi + wobble_phase) +
                                                0.4 * std::sin((lobes + 3) * phi + wobble2_phase));
      const double d = std::sqrt(u * u + v * v) / edge;  // 1 at the boundary
      if (d >= 1.15) continue;
      const double cover = std::clamp((1.15 - d) / 0.3, 0.0, 1.0);  // soft, slightly darker rim
      double value = intensity * (1 - s.chromatin * 0.5 + s.chromatin * grain(x, y)) * (d > 0.8 ? 1.08 : 1.0);
      if (nucleolus && std::hypot(x + 0.5 - nx, y + 0.5 - ny) < nr) value *= 1.45;
      const size_t i = cv.at(y, x);
      cv.hem[i] = static_cast<float>(std::max<double>(cv.hem[i], value * cover));
      cv.eos[i] *= static_cast<float>(1 - 0.5 * cover);
    }
}

// Scatters nuclei with a minimum spacing (dart throwing on a grid of candidate cells).
void scatter_nuclei(Canvas& cv, Rng& rng, double per_10k_px, double min_gap, const NucleusStyle& s,
                    double angle_mean = 0, double angle_spread = kPi) {
  const auto count = static_cast<int64_t>(per_10k_px * cv.h * cv.w / 1e4 + 0.5);
  std::vector<std::pair<double, double>> placed;
  const double cell = std::max(min_gap, 1.0);
  const int gw = static_cast<int>(cv.w / cell) + 1, gh = static_cast<int>(cv.h / cell) + 1;
  std::vector<std::vector<int>> grid(size_t(gw) * gh);
  for (int64_t k = 0, tries = 0; k < count && tries < count * 8; ++tries) {
    const double x = rng.uniform(-3, cv.w + 3), y = rng.uniform(-3, cv.h + 3);
    const int gx = std::clamp(static_cast<int>(x / cell), 0, gw - 1), gy = std::clamp(static_cast<int>(y / cell), 0, gh - 1);
    bool ok = true;
    for (int yy = std::max(0, gy - 1); ok && yy <= std::min(gh - 1, gy + 1); ++yy)
      for (int xx = std::max(0, gx - 1); ok && xx <= std::min(gw - 1, gx + 1); ++xx)
        for (int j : grid[size_t(yy) * gw + xx])
          if (std::hypot(placed[j].first - x, placed[j].second - y) < min_gap) ok = false;
    if (!ok) continue;
    grid[size_t(gy) * gw + gx].push_back(static_cast<int>(placed.size()));
    placed.emplace_back(x, y);
    stamp_nucleus(cv, rng, x, y, angle_mean + rng.uniform(-angle_spread, angle_spread), s);
    ++k;
  }
}

// A wavy eosinophilic fibre (collagen) from (x, y) along `angle`.
void draw_fibre(Canvas& cv, Rng& rng, double x, double y, double angle, double length, double width, double amount) {
  const double wave_len = rng.uniform(25, 70), wave_amp = rng.uniform(1, 5), phase = rng.uniform(0, 2 * kPi);
  const double ca = std::cos(angle), sa = std::sin(angle);
  for (double t = 0; t < length; t += 0.7) {
    const double off = wave_amp * std::sin(2 * kPi * t / wave_len + phase);
    const double px = x + t * ca - off * sa, py = y + t * sa + off * ca;
    const int r = static_cast<int>(std::ceil(width));
    for (int dy = -r; dy <= r; ++dy)
      for (int dx = -r; dx <= r; ++dx) {
        const int xi = static_cast<int>(px) + dx, yi = static_cast<int>(py) + dy;
        if (xi < 0 || yi < 0 || xi >= cv.w || yi >= cv.h) continue;
        const double d = std::hypot(xi + 0.5 - px, yi + 0.5 - py);
        if (d > width) continue;
        const size_t i = cv.at(yi, xi);
        cv.eos[i] = static_cast<float>(std::max<double>(cv.eos[i], amount * (1 - 0.5 * d / width)));
      }
  }
}

// ---- classes --------------------------------------------------------------------------------------

const NucleusStyle kTumorNucleus{5.0, 9.0, 1.0, 1.8, 1.05, 1.6, 0.22, 0.55, 0.45};
const NucleusStyle kLymphocyte{2.4, 3.4, 1.0, 1.15, 1.5, 1.9, 0.05, 0.2, 0.0};
const NucleusStyle kFibroblast{1.6, 2.4, 3.5, 6.0, 0.9, 1.3, 0.05, 0.2, 0.0};
const NucleusStyle kFlatNucleus{1.5, 2.2, 3.0, 4.5, 0.8, 1.1, 0.05, 0.2, 0.0};
const NucleusStyle kFragment{0.7, 1.8, 1.0, 2.0, 1.2, 2.0, 0.4, 0.3, 0.0};
const NucleusStyle kColumnar{2.2, 3.0, 1.8, 2.6, 0.9, 1.2, 0.08, 0.3, 0.05};

void paint_tumor(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.42, 0.12, 40, 0.12);  // purple-pink cytoplasm
  // Occasional irregular lumens (cribriform pattern).
  const int lumens = static_cast<int>(rng.uniform(0, 2.5) * cv.h * cv.w / 50176.0);
  for (int k = 0; k < lumens; ++k) {
    const double cx = rng.uniform(0, cv.w), cy = rng.uniform(0, cv.h), r = rng.uniform(6, 14);
    for (int y = std::max(0, int(cy - r)); y < std::min(cv.h, int(cy + r) + 1); ++y)
      for (int x = std::max(0, int(cx - r)); x < std::min(cv.w, int(cx + r) + 1); ++x)
        if (std::hypot(x - cx, y - cy) < r) cv.eos[cv.at(y, x)] *= 0.15f, cv.hem[cv.at(y, x)] *= 0.2f;
  }
  scatter_nuclei(cv, rng, 40, 10.5, kTumorNucleus);
}

void paint_lymphocytes(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.30, 0.08, 30, 0.08);
  scatter_nuclei(cv, rng, 150, 6.2, kLymphocyte);
}

void paint_stroma(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.38, 0.10, 50, 0.02);
  const double main_angle = rng.uniform(0, kPi);
  const auto fibres = static_cast<int>(0.9 * cv.h * cv.w / 1000.0);
  for (int k = 0; k < fibres; ++k) {
    const double a = main_angle + rng.normal(0, 0.18), len = rng.uniform(60, 180);
    draw_fibre(cv, rng, rng.uniform(-40, cv.w + 40) - 0.5 * len * std::cos(a),
               rng.uniform(-40, cv.h + 40) - 0.5 * len * std::sin(a), a, len, rng.uniform(1.0, 2.4),
               rng.uniform(0.75, 1.05));
  }
  scatter_nuclei(cv, rng, 5, 12, kFibroblast, main_angle, 0.2);
}

void paint_adipose(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.04, 0.02, 60, 0.0);
  // Voronoi cells on a jittered grid: thin membranes where the two nearest seeds are equidistant.
  const double cell = rng.uniform(38, 55);
  const int gw = static_cast<int>(cv.w / cell) + 3, gh = static_cast<int>(cv.h / cell) + 3;
  std::vector<std::pair<double, double>> seeds(size_t(gw) * gh);
  for (int gy = 0; gy < gh; ++gy)
    for (int gx = 0; gx < gw; ++gx)
      seeds[size_t(gy) * gw + gx] = {(gx - 1 + rng.uniform(0.15, 0.85)) * cell, (gy - 1 + rng.uniform(0.15, 0.85)) * cell};
  const double membrane = rng.uniform(1.0, 1.8);
  for (int y = 0; y < cv.h; ++y)
    for (int x = 0; x < cv.w; ++x) {
      const int gx = static_cast<int>(x / cell) + 1, gy = static_cast<int>(y / cell) + 1;
      double d1 = 1e9, d2 = 1e9;
      for (int yy = gy - 1; yy <= gy + 1; ++yy)
        for (int xx = gx - 1; xx <= gx + 1; ++xx) {
          const auto& s = seeds[size_t(std::clamp(yy, 0, gh - 1)) * gw + std::clamp(xx, 0, gw - 1)];
          const double d = std::hypot(x + 0.5 - s.first, y + 0.5 - s.second);
          if (d < d1) d2 = d1, d1 = d;
          else if (d < d2) d2 = d;
        }
      const double gap = (d2 - d1) / 2;
      if (gap < membrane) {
        const size_t i = cv.at(y, x);
        cv.eos[i] = static_cast<float>(std::max<double>(cv.eos[i], 0.55 * (1 - gap / membrane) + 0.1));
      }
    }
  // A few flattened nuclei sit on the membranes.
  const auto nuclei = static_cast<int>(cv.h * cv.w / 8000.0);
  for (int k = 0; k < nuclei; ++k) {
    const auto& s = seeds[size_t(rng.below(static_cast<int64_t>(seeds.size())))];
    const double a = rng.uniform(0, 2 * kPi), r = cell * 0.45;
    stamp_nucleus(cv, rng, s.first + r * std::cos(a), s.second + r * std::sin(a), a + kPi / 2, kFlatNucleus);
  }
}

void paint_mucus(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.06, 0.03, 60, 0.01, 0.0);
  // Stretched, ridged noise: wisps of mucin along a flow direction.
  const double flow = rng.uniform(0, kPi), ca = std::cos(flow), sa = std::sin(flow);
  ValueNoise along{rng.next(), 70}, across{rng.next(), 9}, patch{rng.next(), 90};
  for (int y = 0; y < cv.h; ++y)
    for (int x = 0; x < cv.w; ++x) {
      const double u = x * ca + y * sa, v = -x * sa + y * ca;
      const double ridge = 1 - std::abs(2 * across(u * 0.25, v) - 1);  // stretched along the flow
      const double wisp = std::pow(ridge, 2.5) * (0.4 + 0.6 * along(u, v)) * (0.5 + patch(x, y));
      const size_t i = cv.at(y, x);
      cv.muc[i] = static_cast<float>(0.12 + 0.55 * wisp);
      cv.eos[i] += static_cast<float>(0.05 * wisp);
    }
  scatter_nuclei(cv, rng, 1.0, 15, kLymphocyte);  // rare floating cells
}

void paint_necrosis(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.62, 0.18, 25, 0.18);  // strongly eosinophilic, blotchy, dirty
  // Ghost cells: pale outlines without nuclei.
  const auto ghosts = static_cast<int>(cv.h * cv.w / 900.0);
  for (int k = 0; k < ghosts; ++k) {
    const double cx = rng.uniform(0, cv.w), cy = rng.uniform(0, cv.h), r = rng.uniform(4, 8);
    for (int y = std::max(0, int(cy - r - 1)); y < std::min(cv.h, int(cy + r) + 2); ++y)
      for (int x = std::max(0, int(cx - r - 1)); x < std::min(cv.w, int(cx + r) + 2); ++x) {
        const double d = std::hypot(x - cx, y - cy);
        if (d < r) cv.eos[cv.at(y, x)] *= d > r - 1.2 ? 1.25f : 0.8f;
      }
  }
  // Karyorrhectic debris: many small, irregular, dark fragments in clusters.
  const auto clusters = static_cast<int>(cv.h * cv.w / 1500.0);
  for (int k = 0; k < clusters; ++k) {
    const double cx = rng.uniform(0, cv.w), cy = rng.uniform(0, cv.h);
    const int n = 2 + static_cast<int>(rng.below(6));
    for (int j = 0; j < n; ++j)
      stamp_nucleus(cv, rng, cx + rng.normal(0, 4), cy + rng.normal(0, 4), rng.uniform(0, kPi), kFragment);
  }
}

void paint_normal_mucosa(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.34, 0.08, 40, 0.05);  // lamina propria
  scatter_nuclei(cv, rng, 12, 7, kLymphocyte);
  // Glands (crypts): pale mucinous lumen, a ring of pale cytoplasm, basal columnar nuclei facing outwards.
  const double spacing = rng.uniform(62, 78);
  const int gw = static_cast<int>(cv.w / spacing) + 2, gh = static_cast<int>(cv.h / spacing) + 2;
  for (int gy = -1; gy < gh; ++gy)
    for (int gx = -1; gx < gw; ++gx) {
      const double cx = (gx + 0.5 + rng.uniform(-0.15, 0.15)) * spacing;
      const double cy = (gy + 0.5 + rng.uniform(-0.15, 0.15)) * spacing;
      const double ra = rng.uniform(0.32, 0.42) * spacing, rb = ra * rng.uniform(0.7, 1.0);
      const double angle = rng.uniform(0, kPi), ca = std::cos(angle), sa = std::sin(angle);
      const double lumen = rng.uniform(0.35, 0.5);
      for (int y = std::max(0, int(cy - ra - 2)); y < std::min(cv.h, int(cy + ra) + 3); ++y)
        for (int x = std::max(0, int(cx - ra - 2)); x < std::min(cv.w, int(cx + ra) + 3); ++x) {
          const double dx = x + 0.5 - cx, dy = y + 0.5 - cy;
          const double u = (dx * ca + dy * sa) / ra, v = (-dx * sa + dy * ca) / rb, d = std::sqrt(u * u + v * v);
          if (d >= 1) continue;
          const size_t i = cv.at(y, x);
          cv.hem[i] *= 0.2f;
          if (d < lumen) {
            cv.eos[i] = 0.04f, cv.muc[i] = 0.10f;
          } else {
            cv.eos[i] = 0.18f, cv.muc[i] = 0.22f;  // goblet-cell mucin in the epithelium
          }
        }
      const int ring = static_cast<int>(2 * kPi * ra / 5.2);
      for (int k = 0; k < ring; ++k) {
        const double t = 2 * kPi * k / ring + rng.normal(0, 0.03);
        const double ex = 0.86 * ra * std::cos(t), ey = 0.86 * rb * std::sin(t);
        stamp_nucleus(cv, rng, cx + ex * ca - ey * sa, cy + ex * sa + ey * ca, t + angle, kColumnar);
      }
    }
}

void paint_background(Canvas& cv, Rng& rng) {
  fill_background(cv, rng, 0.015, 0.01, 80, 0.004);
  // Rare specks of dust or debris.
  const auto specks = static_cast<int>(rng.uniform(0, 3) * cv.h * cv.w / 50176.0);
  for (int k = 0; k < specks; ++k)
    stamp_nucleus(cv, rng, rng.uniform(0, cv.w), rng.uniform(0, cv.h), rng.uniform(0, kPi), kFragment, 0.8);
}

struct ClassInfo {
  TissueClass c;
  const char* key;
  const char* name;
};
const ClassInfo kClasses[kNumTissueClasses] = {
    {TissueClass::Tumor, "tumor", "adenocarcinoma tumor epithelium"},
    {TissueClass::Lymphocytes, "lymphocytes", "lymphocytes"},
    {TissueClass::Stroma, "stroma", "cancer-associated stroma"},
    {TissueClass::Adipose, "adipose", "adipose tissue"},
    {TissueClass::Mucus, "mucus", "mucus"},
    {TissueClass::Necrosis, "necrosis", "necrosis"},
    {TissueClass::NormalMucosa, "normal_mucosa", "normal colon mucosa"},
    {TissueClass::Background, "background", "background"},
};

const ClassInfo& info(TissueClass c) {
  const int i = static_cast<int>(c);
  PATHVLM_CHECK(i >= 0 && i < kNumTissueClasses, "tissue class ", i, " is out of range [0, ", kNumTissueClasses, ")");
  return kClasses[i];
}

}  // namespace

std::vector<TissueClass> all_tissue_classes() {
  std::vector<TissueClass> out;
  for (const auto& c : kClasses) out.push_back(c.c);
  return out;
}

const char* tissue_class_key(TissueClass c) { return info(c).key; }
const char* tissue_class_name(TissueClass c) { return info(c).name; }

TissueClass tissue_class_from_key(const std::string& key) {
  std::string known;
  for (const auto& c : kClasses) {
    if (key == c.key) return c.c;
    known += known.empty() ? c.key : str(", ", c.key);
  }
  throw Error(str("unknown tissue class '", key, "' (known: ", known, ")"));
}

torch::Tensor draw_tissue(TissueClass c, int height, int width, uint64_t seed) {
  PATHVLM_CHECK(height > 0 && width > 0, "draw_tissue: bad size ", height, "x", width);
  Rng rng(hash3(seed, static_cast<uint64_t>(c) + 1, 0xA11CE));
  Canvas cv(height, width);
  switch (c) {
    case TissueClass::Tumor: paint_tumor(cv, rng); break;
    case TissueClass::Lymphocytes: paint_lymphocytes(cv, rng); break;
    case TissueClass::Stroma: paint_stroma(cv, rng); break;
    case TissueClass::Adipose: paint_adipose(cv, rng); break;
    case TissueClass::Mucus: paint_mucus(cv, rng); break;
    case TissueClass::Necrosis: paint_necrosis(cv, rng); break;
    case TissueClass::NormalMucosa: paint_normal_mucosa(cv, rng); break;
    case TissueClass::Background: paint_background(cv, rng); break;
    default: info(c);  // throws
  }
  // Beer-Lambert: optical density per stain (Ruifrok & Johnston's H and E vectors, and a blue-grey mucin),
  // jittered per image like the stain variation between labs.
  const double od_h[3] = {0.65, 0.70, 0.29}, od_e[3] = {0.07, 0.99, 0.11}, od_m[3] = {0.55, 0.35, 0.20};
  const double jh = rng.uniform(0.88, 1.12), je = rng.uniform(0.88, 1.12), jm = rng.uniform(0.9, 1.1);
  const double white = rng.uniform(238, 250);
  auto out = torch::empty({height, width, 3}, torch::kByte);
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const size_t i = cv.at(y, x);
      for (int ch = 0; ch < 3; ++ch) {
        const double od = jh * cv.hem[i] * od_h[ch] + je * cv.eos[i] * od_e[ch] + jm * cv.muc[i] * od_m[ch];
        const double value = white * std::exp(-od) + rng.normal(0, 2.0);  // sensor noise
        dst[3 * i + ch] = static_cast<uint8_t>(std::clamp(std::lround(value), 0L, 255L));
      }
    }
  return out;
}

}  // namespace pathvlm::synth
