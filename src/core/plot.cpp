// Line charts rasterised into an RGB canvas and written as PNG (zlib's deflate and CRC-32).
#include "core/plot.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <tuple>

#include "core/error.h"

namespace pathvlm {

namespace {

// ---- the 5x7 font: printable ASCII 32..126, five column bytes per glyph, bit 0 at the top -------------------

constexpr uint8_t kFont[95][5] = {
    {0x00, 0x00, 0x00, 0x00, 0x00}, {0x00, 0x00, 0x5F, 0x00, 0x00}, {0x00, 0x07, 0x00, 0x07, 0x00},
    {0x14, 0x7F, 0x14, 0x7F, 0x14}, {0x24, 0x2A, 0x7F, 0x2A, 0x12}, {0x23, 0x13, 0x08, 0x64, 0x62},
    {0x36, 0x49, 0x55, 0x22, 0x50}, {0x00, 0x05, 0x03, 0x00, 0x00}, {0x00, 0x1C, 0x22, 0x41, 0x00},
    {0x00, 0x41, 0x22, 0x1C, 0x00}, {0x08, 0x2A, 0x1C, 0x2A, 0x08}, {0x08, 0x08, 0x3E, 0x08, 0x08},
    {0x00, 0x50, 0x30, 0x00, 0x00}, {0x08, 0x08, 0x08, 0x08, 0x08}, {0x00, 0x60, 0x60, 0x00, 0x00},
    {0x20, 0x10, 0x08, 0x04, 0x02}, {0x3E, 0x51, 0x49, 0x45, 0x3E}, {0x00, 0x42, 0x7F, 0x40, 0x00},
    {0x42, 0x61, 0x51, 0x49, 0x46}, {0x21, 0x41, 0x45, 0x4B, 0x31}, {0x18, 0x14, 0x12, 0x7F, 0x10},
    {0x27, 0x45, 0x45, 0x45, 0x39}, {0x3C, 0x4A, 0x49, 0x49, 0x30}, {0x01, 0x71, 0x09, 0x05, 0x03},
    {0x36, 0x49, 0x49, 0x49, 0x36}, {0x06, 0x49, 0x49, 0x29, 0x1E}, {0x00, 0x36, 0x36, 0x00, 0x00},
    {0x00, 0x56, 0x36, 0x00, 0x00}, {0x08, 0x14, 0x22, 0x41, 0x00}, {0x14, 0x14, 0x14, 0x14, 0x14},
    {0x00, 0x41, 0x22, 0x14, 0x08}, {0x02, 0x01, 0x51, 0x09, 0x06}, {0x32, 0x49, 0x79, 0x41, 0x3E},
    {0x7E, 0x11, 0x11, 0x11, 0x7E}, {0x7F, 0x49, 0x49, 0x49, 0x36}, {0x3E, 0x41, 0x41, 0x41, 0x22},
    {0x7F, 0x41, 0x41, 0x22, 0x1C}, {0x7F, 0x49, 0x49, 0x49, 0x41}, {0x7F, 0x09, 0x09, 0x09, 0x01},
    {0x3E, 0x41, 0x49, 0x49, 0x7A}, {0x7F, 0x08, 0x08, 0x08, 0x7F}, {0x00, 0x41, 0x7F, 0x41, 0x00},
    {0x20, 0x40, 0x41, 0x3F, 0x01}, {0x7F, 0x08, 0x14, 0x22, 0x41}, {0x7F, 0x40, 0x40, 0x40, 0x40},
    {0x7F, 0x02, 0x0C, 0x02, 0x7F}, {0x7F, 0x04, 0x08, 0x10, 0x7F}, {0x3E, 0x41, 0x41, 0x41, 0x3E},
    {0x7F, 0x09, 0x09, 0x09, 0x06}, {0x3E, 0x41, 0x51, 0x21, 0x5E}, {0x7F, 0x09, 0x19, 0x29, 0x46},
    {0x46, 0x49, 0x49, 0x49, 0x31}, {0x01, 0x01, 0x7F, 0x01, 0x01}, {0x3F, 0x40, 0x40, 0x40, 0x3F},
    {0x1F, 0x20, 0x40, 0x20, 0x1F}, {0x3F, 0x40, 0x38, 0x40, 0x3F}, {0x63, 0x14, 0x08, 0x14, 0x63},
    {0x07, 0x08, 0x70, 0x08, 0x07}, {0x61, 0x51, 0x49, 0x45, 0x43}, {0x00, 0x7F, 0x41, 0x41, 0x00},
    {0x02, 0x04, 0x08, 0x10, 0x20}, {0x00, 0x41, 0x41, 0x7F, 0x00}, {0x04, 0x02, 0x01, 0x02, 0x04},
    {0x40, 0x40, 0x40, 0x40, 0x40}, {0x00, 0x01, 0x02, 0x04, 0x00}, {0x20, 0x54, 0x54, 0x54, 0x78},
    {0x7F, 0x48, 0x44, 0x44, 0x38}, {0x38, 0x44, 0x44, 0x44, 0x20}, {0x38, 0x44, 0x44, 0x48, 0x7F},
    {0x38, 0x54, 0x54, 0x54, 0x18}, {0x08, 0x7E, 0x09, 0x01, 0x02}, {0x0C, 0x52, 0x52, 0x52, 0x3E},
    {0x7F, 0x08, 0x04, 0x04, 0x78}, {0x00, 0x44, 0x7D, 0x40, 0x00}, {0x20, 0x40, 0x44, 0x3D, 0x00},
    {0x7F, 0x10, 0x28, 0x44, 0x00}, {0x00, 0x41, 0x7F, 0x40, 0x00}, {0x7C, 0x04, 0x18, 0x04, 0x78},
    {0x7C, 0x08, 0x04, 0x04, 0x78}, {0x38, 0x44, 0x44, 0x44, 0x38}, {0x7C, 0x14, 0x14, 0x14, 0x08},
    {0x08, 0x14, 0x14, 0x18, 0x7C}, {0x7C, 0x08, 0x04, 0x04, 0x08}, {0x48, 0x54, 0x54, 0x54, 0x20},
    {0x04, 0x3F, 0x44, 0x40, 0x20}, {0x3C, 0x40, 0x40, 0x20, 0x7C}, {0x1C, 0x20, 0x40, 0x20, 0x1C},
    {0x3C, 0x40, 0x30, 0x40, 0x3C}, {0x44, 0x28, 0x10, 0x28, 0x44}, {0x0C, 0x50, 0x50, 0x50, 0x3C},
    {0x44, 0x64, 0x54, 0x4C, 0x44}, {0x00, 0x08, 0x36, 0x41, 0x00}, {0x00, 0x00, 0x7F, 0x00, 0x00},
    {0x00, 0x41, 0x36, 0x08, 0x00}, {0x02, 0x01, 0x02, 0x04, 0x02},
};
constexpr int kGlyphW = 6, kGlyphH = 8;  // with one column and one row of spacing

// Matplotlib's "tab10" colours: distinct, readable on white.
constexpr PlotColor kPalette[10] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44},  {214, 39, 40},  {148, 103, 189},
                                    {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};
constexpr PlotColor kBlack{0, 0, 0}, kGrid{225, 225, 225}, kWhite{255, 255, 255};

struct Canvas {
  int w, h;
  std::vector<uint8_t> rgb;
  Canvas(int width, int height) : w(width), h(height), rgb(size_t(width) * height * 3, 255) {}

  void set(int x, int y, PlotColor c) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &rgb[(size_t(y) * w + x) * 3];
    p[0] = c.r, p[1] = c.g, p[2] = c.b;
  }
  void fill(int x0, int y0, int x1, int y1, PlotColor c) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  // Bresenham, `thick` pixels wide (a square brush).
  void line(int x0, int y0, int x1, int y1, PlotColor c, int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      fill(x0 - (thick - 1) / 2, y0 - (thick - 1) / 2, x0 + thick / 2, y0 + thick / 2, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  // Text with its top-left corner at (x, y); `vertical` reads bottom to top, starting at (x, y) = bottom-left.
  void text(int x, int y, const std::string& s, PlotColor c, int scale = 1, bool vertical = false) {
    for (size_t i = 0; i < s.size(); ++i) {
      const unsigned char ch = static_cast<unsigned char>(s[i]);
      const uint8_t* glyph = kFont[(ch >= 32 && ch < 127 ? ch : '?') - 32];
      for (int col = 0; col < 5; ++col)
        for (int row = 0; row < 7; ++row) {
          if (!(glyph[col] >> row & 1)) continue;
          const int offset = static_cast<int>(i) * kGlyphW + col;
          for (int a = 0; a < scale; ++a)
            for (int b = 0; b < scale; ++b) {
              if (vertical) set(x + row * scale + b, y - offset * scale - a, c);
              else set(x + offset * scale + a, y + row * scale + b, c);
            }
        }
    }
  }
};

int text_width(const std::string& s, int scale = 1) { return static_cast<int>(s.size()) * kGlyphW * scale; }

// Tick positions: a 1-2-5 step giving about `target` intervals over [lo, hi].
std::vector<double> nice_ticks(double lo, double hi, int target) {
  const double raw = (hi - lo) / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = magnitude;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * magnitude) {
      step = m * magnitude;
      break;
    }
  std::vector<double> ticks;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  return ticks;
}

std::string tick_label(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

// [lo, hi] of the finite values, widened when empty or flat so the axis has a span.
std::pair<double, double> span(const std::vector<const std::vector<double>*>& values, double pad_fraction) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const auto* v : values)
    for (double x : *v)
      if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  if (!(lo <= hi)) return {0.0, 1.0};
  if (hi - lo <= 1e-12 * std::max(1.0, std::abs(hi))) {
    const double d = std::max(std::abs(hi) * 0.1, 1e-6);
    return {lo - d, hi + d};
  }
  const double pad = (hi - lo) * pad_fraction;
  return {lo - pad, hi + pad};
}

// ---- PNG: signature, IHDR (8-bit RGB), one zlib-compressed IDAT of filter-0 rows, IEND --------------------

void put_u32(std::string& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(v >> shift & 0xFF));
}

void put_chunk(std::string& out, const char* type, const std::string& data) {
  put_u32(out, static_cast<uint32_t>(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  put_u32(out, static_cast<uint32_t>(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), body.size())));
}

std::string encode_png(const Canvas& c, const std::string& path) {
  std::string raw;
  raw.reserve(size_t(c.h) * (size_t(c.w) * 3 + 1));
  for (int y = 0; y < c.h; ++y) {
    raw.push_back(0);
    raw.append(reinterpret_cast<const char*>(&c.rgb[size_t(y) * c.w * 3]), size_t(c.w) * 3);
  }
  uLongf packed_size = compressBound(raw.size());
  std::string packed(packed_size, '\0');
  const int rc = compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_size,
                           reinterpret_cast<const Bytef*>(raw.data()), raw.size(), 6);
  PATHVLM_CHECK(rc == Z_OK, "plot '", path, "': zlib compression failed (code ", rc, ")");
  packed.resize(packed_size);

  std::string header;
  put_u32(header, static_cast<uint32_t>(c.w));
  put_u32(header, static_cast<uint32_t>(c.h));
  header += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, no filter method, no interlace
  std::string png("\x89PNG\r\n\x1a\n", 8);
  put_chunk(png, "IHDR", header);
  put_chunk(png, "IDAT", packed);
  put_chunk(png, "IEND", "");
  return png;
}

}  // namespace

PlotColor plot_series_color(size_t i) { return kPalette[i % 10]; }

void write_line_plot_png(const PlotSpec& spec, const std::string& path) {
  PATHVLM_CHECK(spec.width >= 200 && spec.height >= 150 && spec.width <= 8000 && spec.height <= 8000, "plot '", path,
                "': size ", spec.width, "x", spec.height, " is outside 200x150 .. 8000x8000");
  for (const auto& s : spec.series)
    PATHVLM_CHECK(s.x.size() == s.y.size(), "plot '", path, "': series '", s.label, "' has ", s.x.size(),
                  " x values but ", s.y.size(), " y values");

  // Only points with both coordinates finite take part, in the axes' spans too.
  std::vector<std::vector<double>> xs(spec.series.size()), ys(spec.series.size());
  std::vector<const std::vector<double>*> all_x, all_y;
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const auto& s = spec.series[i];
    for (size_t k = 0; k < s.x.size(); ++k)
      if (std::isfinite(s.x[k]) && std::isfinite(s.y[k])) xs[i].push_back(s.x[k]), ys[i].push_back(s.y[k]);
    all_x.push_back(&xs[i]), all_y.push_back(&ys[i]);
  }
  // Not structured bindings: px and py capture these, which C++17 forbids for bindings (clang refuses).
  double x_lo, x_hi, y_lo, y_hi;
  std::tie(x_lo, x_hi) = span(all_x, 0.0);
  std::tie(y_lo, y_hi) = span(all_y, 0.05);

  Canvas canvas(spec.width, spec.height);
  const std::vector<double> y_ticks = nice_ticks(y_lo, y_hi, 6), x_ticks = nice_ticks(x_lo, x_hi, 8);
  int y_label_width = 0;
  for (double t : y_ticks) y_label_width = std::max(y_label_width, text_width(tick_label(t)));
  const int left = 16 + (spec.y_label.empty() ? 0 : kGlyphH + 6) + y_label_width + 6;
  const int right = spec.width - 20, top = spec.title.empty() ? 16 : 16 + 2 * kGlyphH + 8;
  const int bottom = spec.height - (16 + kGlyphH + 6 + (spec.x_label.empty() ? 0 : kGlyphH + 8));
  PATHVLM_CHECK(right - left >= 50 && bottom - top >= 50, "plot '", path, "': ", spec.width, "x", spec.height,
                " leaves no room for the axes and their labels");
  auto px = [&](double x) { return left + static_cast<int>(std::lround((x - x_lo) / (x_hi - x_lo) * (right - left))); };
  auto py = [&](double y) { return bottom - static_cast<int>(std::lround((y - y_lo) / (y_hi - y_lo) * (bottom - top))); };

  // Grid, ticks and their labels, the frame.
  for (double t : y_ticks) {
    const int y = py(t);
    canvas.line(left, y, right, y, kGrid);
    canvas.line(left - 4, y, left, y, kBlack);
    const std::string label = tick_label(t);
    canvas.text(left - 6 - text_width(label), y - 3, label, kBlack);
  }
  for (double t : x_ticks) {
    const int x = px(t);
    canvas.line(x, top, x, bottom, kGrid);
    canvas.line(x, bottom, x, bottom + 4, kBlack);
    const std::string label = tick_label(t);
    canvas.text(x - text_width(label) / 2, bottom + 7, label, kBlack);
  }
  canvas.line(left, top, right, top, kBlack);
  canvas.line(left, bottom, right, bottom, kBlack);
  canvas.line(left, top, left, bottom, kBlack);
  canvas.line(right, top, right, bottom, kBlack);
  if (!spec.title.empty())
    canvas.text((spec.width - text_width(spec.title, 2)) / 2, 10, spec.title, kBlack, 2);
  if (!spec.x_label.empty())
    canvas.text((left + right - text_width(spec.x_label)) / 2, spec.height - 6 - kGlyphH, spec.x_label, kBlack);
  if (!spec.y_label.empty())
    canvas.text(10, (top + bottom + text_width(spec.y_label)) / 2, spec.y_label, kBlack, 1, /*vertical=*/true);

  // The series: 2-pixel lines; a lone point as a small square.
  for (size_t i = 0; i < spec.series.size(); ++i) {
    const PlotColor c = plot_series_color(i);
    if (xs[i].size() == 1) canvas.fill(px(xs[i][0]) - 2, py(ys[i][0]) - 2, px(xs[i][0]) + 2, py(ys[i][0]) + 2, c);
    for (size_t k = 1; k < xs[i].size(); ++k)
      canvas.line(px(xs[i][k - 1]), py(ys[i][k - 1]), px(xs[i][k]), py(ys[i][k]), c, 2);
  }

  // Legend, top right inside the frame: a swatch and the label per drawn series.
  int legend_w = 0, rows = 0;
  for (size_t i = 0; i < spec.series.size(); ++i)
    if (!xs[i].empty()) legend_w = std::max(legend_w, text_width(spec.series[i].label)), ++rows;
  if (rows > 0) {
    const int row_h = kGlyphH + 6, box_w = legend_w + 30, box_h = rows * row_h + 8;
    const int x0 = right - box_w - 8, y0 = top + 8;
    canvas.fill(x0, y0, x0 + box_w, y0 + box_h, kWhite);
    canvas.line(x0, y0, x0 + box_w, y0, kBlack), canvas.line(x0, y0 + box_h, x0 + box_w, y0 + box_h, kBlack);
    canvas.line(x0, y0, x0, y0 + box_h, kBlack), canvas.line(x0 + box_w, y0, x0 + box_w, y0 + box_h, kBlack);
    int row = 0;
    for (size_t i = 0; i < spec.series.size(); ++i) {
      if (xs[i].empty()) continue;
      const int y = y0 + 6 + row++ * row_h;
      canvas.fill(x0 + 6, y + 1, x0 + 20, y + 5, plot_series_color(i));
      canvas.text(x0 + 25, y, spec.series[i].label, kBlack);
    }
  }

  // Atomic: a reader never sees half a PNG.
  const std::string png = encode_png(canvas, path), tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(png.data(), static_cast<std::streamsize>(png.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      std::filesystem::remove(tmp, ignored);
      throw Error(str("plot '", path, "': cannot write '", tmp, "'"));
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::error_code ignored;
    std::filesystem::remove(tmp, ignored);
    throw Error(str("plot '", path, "': cannot rename '", tmp, "' to it: ", ec.message()));
  }
}

}  // namespace pathvlm
