// Tissue segmentation: see tissue.h. Follows CLAM's segmentTissue / filter_contours step by step.
#include "wsi/tissue.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "wsi/slide.h"

#ifdef PATHVLM_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace pathvlm::wsi {

bool tissue_segmentation_built_in() {
#ifdef PATHVLM_HAVE_OPENCV
  return true;
#else
  return false;
#endif
}

void apply_tissue_preset(TissueConfig& c, const std::string& name) {
  // sthresh, mthresh, close, a_t, a_h, max_n_holes (CLAM create_patches_fp.py defaults and presets/*.csv), and
  // pathvlm's cap of the area thresholds by the slide's size.
  struct Preset {
    const char* name;
    int sthresh, mthresh, close;
    double a_t, a_h;
    int max_n_holes;
    double max_area_share;
  };
  static const Preset presets[] = {
      {"clam", 8, 7, 4, 100, 16, 8, 0.01},
      {"tcga", 8, 7, 4, 16, 4, 8, 0.01},
      {"bwh_biopsy", 15, 11, 2, 1, 1, 2, 0.01},
      {"bwh_resection", 15, 11, 4, 100, 16, 8, 0.01},
      // pathvlm's synthetic slides and other small slides segmented near full resolution: little blur so thin
      // structures (fat membranes) survive, a wider closing, areas already sized for regions of a few hundred
      // pixels (no cap).
      {"synthetic", 15, 3, 8, 0.05, 0.02, 8, 0},
  };
  for (const auto& p : presets) {
    if (name != p.name) continue;
    c.preset = name;
    c.sthresh = p.sthresh, c.mthresh = p.mthresh, c.close = p.close;
    c.a_t = p.a_t, c.a_h = p.a_h, c.max_n_holes = p.max_n_holes, c.max_area_share = p.max_area_share;
    c.otsu = false;
    return;
  }
  throw Error(str("tissue preset '", name, "' is unknown (known: clam, tcga, bwh_biopsy, bwh_resection, synthetic)"));
}

double mask_iou(const torch::Tensor& a, const torch::Tensor& b) {
  PATHVLM_CHECK(a.sizes() == b.sizes(), "mask_iou: masks differ in shape ", a.sizes(), " vs ", b.sizes());
  auto fa = a.ne(0), fb = b.ne(0);
  const double inter = fa.logical_and(fb).sum().item<double>();
  const double uni = fa.logical_or(fb).sum().item<double>();
  return uni == 0 ? 1.0 : inter / uni;
}

#ifdef PATHVLM_HAVE_OPENCV

torch::Tensor read_downsampled(Slide& slide, double downsample, double& downsample_x, double& downsample_y,
                               int& source_level) {
  source_level = slide.level_at_or_above(downsample);
  const Level& l = slide.level(source_level);
  const int64_t factor = std::max<int64_t>(1, static_cast<int64_t>(std::floor(downsample / l.downsample + 1e-6)));
  const int64_t out_w = (l.width + factor - 1) / factor, out_h = (l.height + factor - 1) / factor;
  PATHVLM_CHECK(out_w * out_h <= int64_t(1) << 28, "slide '", slide.path(), "': a ", out_w, "x", out_h,
                " segmentation image is too large; raise tissue.seg_downsample");
  auto out = torch::empty({out_h, out_w, 3}, torch::kUInt8);
  cv::Mat out_mat(static_cast<int>(out_h), static_cast<int>(out_w), CV_8UC3, out.data_ptr<uint8_t>());
  // Blocks of `block` output pixels, i.e. block*factor level pixels, keep each read to a few megapixels.
  const int64_t block = std::max<int64_t>(64, 2048 / factor);
  std::vector<uint8_t> buffer;
  for (int64_t oy = 0; oy < out_h; oy += block) {
    for (int64_t ox = 0; ox < out_w; ox += block) {
      const int64_t lx = ox * factor, ly = oy * factor;
      const int64_t lw = std::min(block * factor, l.width - lx), lh = std::min(block * factor, l.height - ly);
      buffer.resize(static_cast<size_t>(lw * lh * 3));
      slide.read_region(static_cast<int64_t>(std::llround(lx * l.downsample)),
                        static_cast<int64_t>(std::llround(ly * l.downsample)), source_level, lw, lh, buffer.data());
      cv::Mat region(static_cast<int>(lh), static_cast<int>(lw), CV_8UC3, buffer.data());
      const int ow = static_cast<int>((lw + factor - 1) / factor), oh = static_cast<int>((lh + factor - 1) / factor);
      cv::Mat target = out_mat(cv::Rect(static_cast<int>(ox), static_cast<int>(oy), ow, oh));
      if (factor == 1) {
        region.copyTo(target);
      } else {
        cv::resize(region, target, cv::Size(ow, oh), 0, 0, cv::INTER_AREA);
      }
    }
  }
  downsample_x = static_cast<double>(slide.width()) / static_cast<double>(out_w);
  downsample_y = static_cast<double>(slide.height()) / static_cast<double>(out_h);
  return out;
}

namespace {

// How contour pixels become level-0 polygons and in which order regions come.
enum class Frame {
  pixel_centres,  // each pixel's centre, regions largest first
  clam,           // CLAM's scaleContourDim: truncate(index * downsample), regions in contour order
};

Polygon to_level0(const std::vector<cv::Point>& contour, double dx, double dy, Frame frame) {
  Polygon polygon;
  polygon.reserve(contour.size());
  for (const auto& p : contour) {
    if (frame == Frame::clam) {
      polygon.push_back({std::trunc(p.x * dx), std::trunc(p.y * dy)});
    } else {
      polygon.push_back({(p.x + 0.5) * dx, (p.y + 0.5) * dy});
    }
  }
  return polygon;
}

TissueMask segment(const torch::Tensor& rgb_in, double dx, double dy, const TissueConfig& config, Frame frame) {
  PATHVLM_CHECK(rgb_in.dim() == 3 && rgb_in.size(2) == 3 && rgb_in.scalar_type() == torch::kUInt8,
                "segment_image: expected uint8 [h,w,3], got ", rgb_in.sizes(), " ", rgb_in.scalar_type());
  PATHVLM_CHECK(config.mthresh % 2 == 1, "tissue.mthresh must be odd (a median blur kernel size), got ",
                config.mthresh);
  auto rgb = rgb_in.contiguous();
  const int h = static_cast<int>(rgb.size(0)), w = static_cast<int>(rgb.size(1));
  cv::Mat image(h, w, CV_8UC3, rgb.data_ptr<uint8_t>());
  cv::Mat hsv, saturation, blurred, binary;
  cv::cvtColor(image, hsv, cv::COLOR_RGB2HSV);
  cv::extractChannel(hsv, saturation, 1);
  if (config.mthresh > 1) {
    cv::medianBlur(saturation, blurred, config.mthresh);
  } else {
    blurred = saturation;
  }
  if (config.otsu) {
    cv::threshold(blurred, binary, 0, 255, cv::THRESH_BINARY | cv::THRESH_OTSU);
  } else {
    cv::threshold(blurred, binary, config.sthresh, 255, cv::THRESH_BINARY);
  }
  if (config.close > 0) {
    cv::Mat kernel = cv::Mat::ones(config.close, config.close, CV_8U);
    cv::morphologyEx(binary, binary, cv::MORPH_CLOSE, kernel);
  }

  // Two-level hierarchy: outer boundaries and the holes directly inside them.
  std::vector<std::vector<cv::Point>> contours;
  std::vector<cv::Vec4i> hierarchy;
  cv::findContours(binary, contours, hierarchy, cv::RETR_CCOMP, cv::CHAIN_APPROX_NONE);

  // Area thresholds are given in reference tiles of ref_patch^2 level-0 pixels, whole mask pixels as CLAM counts.
  const double ref_area = std::trunc(static_cast<double>(config.ref_patch) * config.ref_patch / (dx * dy));
  double min_tissue = config.a_t * ref_area, min_hole = config.a_h * ref_area;
  // Capped at a share of the slide (the segmentation image covers all of it), both thresholds alike: CLAM's counts
  // of level-0 pixels would otherwise call every region of a small slide debris.
  const double cap = config.max_area_share * static_cast<double>(h) * w;
  if (frame != Frame::clam && config.max_area_share > 0 && min_tissue > cap) {
    min_hole *= cap / min_tissue;
    min_tissue = cap;
  }

  struct Kept {
    int outline;
    std::vector<int> holes;
    double area;
  };
  std::vector<Kept> kept;
  for (int i = 0; i < static_cast<int>(contours.size()); ++i) {
    if (hierarchy[i][3] != -1) continue;  // a hole; handled with its parent
    std::vector<std::pair<double, int>> holes;
    for (int child = hierarchy[i][2]; child != -1; child = hierarchy[child][0]) {
      holes.push_back({cv::contourArea(contours[child]), child});
    }
    double area = cv::contourArea(contours[i]);
    for (const auto& hole : holes) area -= hole.first;
    if (area <= 0 || area <= min_tissue) continue;
    // The largest max_n_holes holes that are big enough; ties broken by index for determinism.
    std::sort(holes.begin(), holes.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    Kept k{i, {}, area};
    for (size_t j = 0; j < holes.size() && static_cast<int>(j) < config.max_n_holes; ++j) {
      if (holes[j].first > min_hole) k.holes.push_back(holes[j].second);
    }
    kept.push_back(std::move(k));
  }
  if (frame != Frame::clam) {
    std::stable_sort(kept.begin(), kept.end(), [](const Kept& a, const Kept& b) { return a.area > b.area; });
  }

  TissueMask result;
  result.downsample_x = dx, result.downsample_y = dy;
  result.image = rgb;
  result.mask = torch::zeros({h, w}, torch::kUInt8);
  cv::Mat mask(h, w, CV_8U, result.mask.data_ptr<uint8_t>());
  for (const auto& k : kept) {
    cv::drawContours(mask, contours, k.outline, cv::Scalar(1), cv::FILLED);
    TissueRegion region;
    region.outline = to_level0(contours[k.outline], dx, dy, frame);
    region.area_level0 = k.area * dx * dy;
    for (int hole : k.holes) {
      // Hole contours run through the tissue pixels that border the hole: clear the inside, keep that ring.
      cv::drawContours(mask, contours, hole, cv::Scalar(0), cv::FILLED);
      cv::drawContours(mask, contours, hole, cv::Scalar(1), 1);
      region.holes.push_back(to_level0(contours[hole], dx, dy, frame));
    }
    result.regions.push_back(std::move(region));
  }
  return result;
}

}  // namespace

TissueMask segment_image(const torch::Tensor& rgb, double dx, double dy, const TissueConfig& config) {
  return segment(rgb, dx, dy, config, Frame::pixel_centres);
}

TissueMask segment_tissue(Slide& slide, const TissueConfig& config) {
  double dx = 1, dy = 1;
  int level = 0;
  // Small slides are segmented finer, so the segmentation image keeps about 1024 px on its long side.
  const double fine_enough = std::max(1.0, static_cast<double>(std::max(slide.width(), slide.height())) / 1024.0);
  auto image = read_downsampled(slide, std::min(config.seg_downsample, fine_enough), dx, dy, level);
  TissueMask mask = segment(image, dx, dy, config, Frame::pixel_centres);
  mask.source_level = level;
  return mask;
}

TissueMask segment_tissue_like_clam(Slide& slide, const TissueConfig& config) {
  // OpenSlide's get_best_level_for_downsample: the last level whose downsample does not exceed the request.
  int level = 0;
  for (int i = 1; i < slide.level_count() && slide.level(i).downsample <= config.seg_downsample; ++i) level = i;
  const Level& l = slide.level(level);
  // CLAM marks a slide whose segmentation level exceeds 1e8 pixels failed_seg.
  PATHVLM_CHECK(static_cast<double>(l.width) * static_cast<double>(l.height) <= 1e8, "slide '", slide.path(),
                "': its segmentation level ", level, " is ", l.width, "x", l.height,
                " pixels, above CLAM's limit of 1e8 (CLAM marks the slide failed_seg); use tiling.grid=slide, which "
                "segments a box-reduced copy");
  // CLAM's per-axis downsample: level-0 size over the level's size.
  const double dx = static_cast<double>(slide.width()) / static_cast<double>(l.width);
  const double dy = static_cast<double>(slide.height()) / static_cast<double>(l.height);
  TissueMask mask = segment(slide.read_level(level), dx, dy, config, Frame::clam);
  mask.source_level = level;
  return mask;
}

#else  // no OpenCV in this build

torch::Tensor read_downsampled(Slide& slide, double, double&, double&, int&) {
  throw Error(str("slide '", slide.path(), "': tissue segmentation needs OpenCV, which this build lacks"));
}

TissueMask segment_tissue(Slide& slide, const TissueConfig&) {
  throw Error(str("slide '", slide.path(), "': tissue segmentation needs OpenCV, which this build lacks"));
}

TissueMask segment_tissue_like_clam(Slide& slide, const TissueConfig& config) { return segment_tissue(slide, config); }

TissueMask segment_image(const torch::Tensor&, double, double, const TissueConfig&) {
  throw Error("tissue segmentation needs OpenCV, which this build lacks");
}

#endif

}  // namespace pathvlm::wsi
