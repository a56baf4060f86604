// Images for CLIP: decode / encode JPEG (libjpeg) and PNG (libpng), decode TIFF (libtiff) and WebP (libwebp), PIL's
// bicubic and bilinear resize, crops, RandomResizedCrop and the OpenAI normalisation.
//
// Pixels are uint8 RGB tensors [H, W, 3] (contiguous, CPU) everywhere except the final normalised float
// [3, H, W] that goes to the model (normalize_pixels makes it from uint8 [3, H, W], on any device).
//
//   auto img = decode_image(bytes, "shard 'a.h5' record 7");         // gray / RGBA / 16-bit -> RGB uint8
//   auto train = random_resized_crop(img, 224, gen);                  // open_clip's training augmentation
//   auto eval = resize_shortest_and_center_crop(img, 224);            // CLIPImageProcessor / open_clip eval
//   torch::Tensor x = normalize_openai(train);                        // float [3,224,224]
//
// Resizing is PIL's, bit for bit (bicubic a = -0.5 or the bilinear triangle, antialiased when downscaling, 22-bit
// fixed-point weights, width then height, each pass rounded to uint8): what CLIPImageProcessor and torchvision on PIL
// images (CLAM's and TRIDENT's tile transforms) do.
#pragma once
#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/pixel_statistics.h"

namespace pathvlm::data {

using Bytes = std::vector<uint8_t>;

enum class ImageFormat { Jpeg, Png, Tiff, Webp, Unknown };
ImageFormat sniff_image_format(const uint8_t* data, size_t size);  // by magic bytes
const char* image_format_name(ImageFormat f);                       // "jpeg", "png", "tiff", "webp", "unknown"

// The most pixels (width x height) decode_image accepts: the size is read from the header and checked before any
// pixel memory is allocated, so a decompression bomb (a few KB claiming 100000x100000) is an error naming the
// image, not an out-of-memory kill. Process-wide, like PIL's Image.MAX_IMAGE_PIXELS; the default is PIL's
// error threshold. Set from clip.data.max_image_pixels and `shards validate --max-pixels`.
constexpr int64_t kDefaultMaxImagePixels = 178956970;
void set_max_image_pixels(int64_t pixels);  // >= 1
int64_t max_image_pixels();

// Decodes JPEG, PNG, TIFF (the first image: NCT-CRC-HE-100K's tiles are TIFFs) or still WebP bytes to RGB uint8
// [H,W,3], the pixels of transformers' convert_to_rgb on PIL's image (tests/data/decode_vectors.py): gray and palettes
// expanded, alpha composited onto white, CMYK (a JPEG's with Adobe's inverted samples, as PIL assumes) converted
// with PIL's formula, 16-bit PNG colour reduced to its high byte (16-bit gray too, where PIL would clip to 255).
// JPEG warnings that leave every pixel intact pass, as in PIL; a JPEG cut short or with corrupt data is an error
// (PIL errs on the first and hands over scrambled pixels for the second).
// Throws pathvlm::Error "<what>: <reason>" for empty, truncated, corrupt or unsupported data, an image larger
// than max_image_pixels(), and one whose pixels do not fit in memory.
torch::Tensor decode_image(const uint8_t* data, size_t size, const std::string& what);
torch::Tensor decode_image(const Bytes& bytes, const std::string& what);

// A JPEG whose colour space its container states (DICOM's PhotometricInterpretation, TIFF's Photometric), where
// libjpeg's guess from the markers may be wrong: RGB samples stored as they are (Aperio's tiles) or YCbCr. Auto
// decodes as decode_image does.
enum class JpegColorSpace { Auto, Rgb, YCbCr };
torch::Tensor decode_jpeg(const uint8_t* data, size_t size, const std::string& what,
                          JpegColorSpace stored = JpegColorSpace::Auto);

// A JPEG 2000 codestream (or JP2 file) of three unsigned 8-bit components at full resolution, as OpenJPEG decodes it
// (a colour transform the codestream signals is undone, giving RGB): the frames of DICOM slides. An Error naming
// `what` for anything else, and in a build without OpenJPEG (jpeg2000_built_in()).
torch::Tensor decode_jpeg2000(const uint8_t* data, size_t size, const std::string& what);
bool jpeg2000_built_in();

// An Error naming `op` unless `rgb` is a non-empty uint8 RGB image [H,W,3] (any strides: take .contiguous() after).
void check_rgb(const torch::Tensor& rgb, const char* op);

// Whole-file helpers; errors name the path.
Bytes read_file_bytes(const std::string& path);
void write_file_bytes(const std::string& path, const Bytes& bytes);
torch::Tensor read_image(const std::string& path);
// Format by extension: .jpg/.jpeg or .png.
void write_image(const std::string& path, const torch::Tensor& rgb, int jpeg_quality = 95);

// Encoders for uint8 [H,W,3]. JPEG uses 4:2:0 chroma subsampling below quality 90 and 4:4:4 from 90 up.
Bytes encode_jpeg(const torch::Tensor& rgb, int quality = 95);
Bytes encode_png(const torch::Tensor& rgb);

// PIL's resampling filters (Image.BICUBIC, Image.BILINEAR), the two that image encoders' evaluation transforms use.
enum class Interpolation { bicubic, bilinear };
// "bicubic" / "bilinear" (timm's, torchvision's and open_clip's names); an Error naming `where` for any other.
Interpolation parse_interpolation(const std::string& name, const std::string& where);
const char* interpolation_name(Interpolation how);

// PIL's resize of uint8 [H,W,3] to [height,width,3] with `how`; the same size returns the input.
torch::Tensor resize(const torch::Tensor& rgb, int height, int width, Interpolation how);
inline torch::Tensor resize_bicubic(const torch::Tensor& rgb, int height, int width) {
  return resize(rgb, height, width, Interpolation::bicubic);
}
// Shortest side to `size`, the other side int(size * long / short), as CLIPImageProcessor and torchvision do.
torch::Tensor resize_shortest_side(const torch::Tensor& rgb, int size, Interpolation how = Interpolation::bicubic);
// Centered crop; the offset is floor((H - h) / 2) as in transformers' center_crop. Pads with black if the
// image is smaller than the crop (as transformers does).
torch::Tensor center_crop(const torch::Tensor& rgb, int height, int width);
// Evaluation transform: shortest side to `size`, then center crop size x size (square inputs of `size` pass
// through unchanged).
torch::Tensor resize_shortest_and_center_crop(const torch::Tensor& rgb, int size,
                                              Interpolation how = Interpolation::bicubic);
// LLaVA-1.5's expand2square (image_aspect_ratio pad; LlavaImageProcessor's do_pad): the image centred on a square
// of `fill`, offset floor(difference / 2); a square image is returned as it is. Before the evaluation transform,
// nothing of the image is cropped away.
torch::Tensor pad_to_square(const torch::Tensor& rgb, const std::array<uint8_t, 3>& fill);
// The fill LLaVA pads with: int(mean x 255) per channel, (122, 116, 104) for the OpenAI mean.
std::array<uint8_t, 3> mean_colour(const std::array<double, 3>& mean);

// torchvision RandomResizedCrop parameters: up to 10 tries of area fraction in `scale` and log-uniform aspect
// ratio in `ratio`, else a center crop with the ratio clamped. Draws from `gen` only.
struct CropBox {
  int top = 0, left = 0, height = 0, width = 0;
};
CropBox random_resized_crop_box(int height, int width, torch::Generator& gen,
                                std::array<double, 2> scale = {0.9, 1.0},
                                std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0});
// Crop `box` and resize it to size x size (bicubic).
torch::Tensor resized_crop(const torch::Tensor& rgb, const CropBox& box, int size);
torch::Tensor random_resized_crop(const torch::Tensor& rgb, int size, torch::Generator& gen,
                                  std::array<double, 2> scale = {0.9, 1.0},
                                  std::array<double, 2> ratio = {3.0 / 4.0, 4.0 / 3.0});
// torchvision's random application of a transform (RandomApply, RandomHorizontalFlip, RandomGrayscale): true with
// probability p, from one draw of `gen` (none when p is 0).
bool chance(double p, torch::Generator& gen);

using pathvlm::kOpenAiMean;
using pathvlm::kOpenAiStd;

// "mean [r, g, b] std [r, g, b]", each value in the fewest digits that read back as it: how tile_features shards
// record the normalisation their encoder ran with, so a trainer compares it with its tower's exactly.
std::string describe_pixel_normalisation(const std::array<double, 3>& mean, const std::array<double, 3>& std);

// Per-channel values as float [3,1,1] on `device`: the mean and std normalize_pixels takes. Made once per loader,
// so a CUDA normalisation needs no host->device copy per batch.
torch::Tensor channel_values(const std::array<double, 3>& values, torch::Device device = torch::kCPU);
// uint8 [...,3,H,W] -> float (x / 255 - mean) / std, on the pixels' device (mean and std from channel_values
// there). The one place the normalisation is computed: the loader runs it on a whole uploaded batch, and
// normalize_image on one image, with the same ops in the same order, so the CPU results are bitwise equal.
torch::Tensor normalize_pixels(const torch::Tensor& pixels, const torch::Tensor& mean, const torch::Tensor& std);
// uint8 [H,W,3] -> float [3,H,W] = (x / 255 - mean) / std.
torch::Tensor normalize_image(const torch::Tensor& rgb, const std::array<double, 3>& mean = kOpenAiMean,
                              const std::array<double, 3>& std = kOpenAiStd);
inline torch::Tensor normalize_openai(const torch::Tensor& rgb) { return normalize_image(rgb); }

// normalize_pixels on one device, its mean and std made there once: uint8 pixels are copied there (a quarter of
// float32's bytes; non-blocking from pinned memory) and normalised there. What the loaders and encoders that hand
// uint8 batches to a model use.
//
//   data::PixelNormalizer normalize(torch::kCUDA);      // OpenAI mean and std
//   auto x = normalize(uint8_batch);                    // float [B,3,S,S] on the GPU
class PixelNormalizer {
 public:
  explicit PixelNormalizer(torch::Device device = torch::kCPU, const std::array<double, 3>& mean = kOpenAiMean,
                           const std::array<double, 3>& std = kOpenAiStd);
  torch::Tensor operator()(const torch::Tensor& pixels) const;

 private:
  torch::Tensor mean_, std_;
};

}  // namespace pathvlm::data
