#include "data/image.h"

#include <png.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

// After <cstdio>: jpeglib.h uses size_t and FILE without including their headers.
#include <jpeglib.h>
#include <jerror.h>
#ifdef PATHVLM_HAVE_LIBTIFF
#include <tiffio.h>
#endif
#ifdef PATHVLM_HAVE_LIBWEBP
#include <webp/decode.h>
#endif
#ifdef PATHVLM_HAVE_OPENJPEG
#include <openjpeg.h>
#endif

#include "core/ascii.h"
#include "core/error.h"
#include "core/log.h"

namespace pathvlm::data {
namespace {

std::atomic<int64_t> g_max_image_pixels{kDefaultMaxImagePixels};

// Every decoder checks the header's size before allocating pixel memory.
void check_image_size(int64_t width, int64_t height, const char* format, const std::string& what) {
  PATHVLM_CHECK(width > 0 && height > 0, what, ": ", format, " has an empty size ", width, "x", height);
  const int64_t pixels = width * height, limit = max_image_pixels();  // both sides < 2^32: no overflow
  PATHVLM_CHECK(pixels <= limit, what, ": ", format, " image of ", width, "x", height, " = ", pixels,
                " pixels is too large (the limit is ", limit,
                " pixels, against decompression bombs; raise clip.data.max_image_pixels or --max-pixels if the image "
                "is genuine)");
}

std::string out_of_memory(int64_t width, int64_t height, const std::string& what) {
  return str(what, ": a ", width, "x", height, " image needs ", format_bytes(3.0 * width * height),
             " of memory and it could not be allocated");
}

// A colour sample with (unassociated) alpha over white, rounded as transformers' convert_to_rgb (PIL's
// alpha_composite onto white) rounds it.
uint8_t over_white(unsigned sample, unsigned alpha) {
  return static_cast<uint8_t>((sample * alpha + 255u * (255u - alpha) + 127u) / 255u);
}

// RGBA pixels (unassociated alpha) onto white, as RGB.
void rgba_over_white(const uint8_t* rgba, uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i, rgba += 4, rgb += 3)
    for (int c = 0; c < 3; ++c) rgb[c] = over_white(rgba[c], rgba[3]);
}

// One channel of PIL's convert("RGB") of a CMYK pixel: n - round(c n / 255) with n = 255 - k, in its integer
// rounding (Pillow's cmyk2rgb).
uint8_t pil_cmyk_channel(unsigned c, unsigned k) {
  const unsigned n = 255u - k, t = c * n + 128u;
  return static_cast<uint8_t>(n - (((t >> 8) + t) >> 8));
}

// The output tensor; running out of memory is an error naming the image.
torch::Tensor allocate_rgb(int64_t height, int64_t width, const std::string& what) {
  try {
    return torch::empty({height, width, 3}, torch::kByte);
  } catch (const std::bad_alloc&) {
  } catch (const c10::Error&) {
  }
  throw Error(out_of_memory(width, height, what));
}

// A decoder's working buffer of `count` values for a width x height image; running out of memory is an error naming
// the image.
template <typename T>
std::vector<T> allocate_scratch(size_t count, int64_t width, int64_t height, const std::string& what) {
  try {
    return std::vector<T>(count);
  } catch (const std::bad_alloc&) {
    throw Error(out_of_memory(width, height, what));
  }
}

// ---- JPEG (libjpeg) ----------------------------------------------------------------------------------

// libjpeg reports an error through error_exit, which must not return, and a warning through emit_message; both
// jump back to the setjmp of the function that called libjpeg. Those functions hold no C++ object: everything
// lives in their caller's frame, so the jump skips no destructor.
struct JpegErrors {
  jpeg_error_mgr mgr;  // first: libjpeg hands back a pointer to it
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {0};
};

// Warnings that change no pixel pass, as PIL lets them pass: junk bytes before the end-of-image marker, header
// nits. The data ending early fails the image, as in PIL; so does corrupt entropy-coded data, where PIL would hand
// over scrambled pixels: such a tile must not reach training.
bool harmless_jpeg_warning(const jpeg_error_mgr& err) {
  switch (err.msg_code) {
    case JWRN_EXTRANEOUS_DATA: return err.msg_parm.i[1] == JPEG_EOI;
    case JWRN_ADOBE_XFORM:
    case JWRN_JFIF_MAJOR:
    case JWRN_BOGUS_ICC:
    case JWRN_NOT_SEQUENTIAL: return true;
    default: return false;
  }
}

[[noreturn]] void jpeg_fail(j_common_ptr cinfo) {
  auto* errors = reinterpret_cast<JpegErrors*>(cinfo->err);
  cinfo->err->format_message(cinfo, errors->message);
  std::longjmp(errors->jump, 1);
}

void jpeg_on_message(j_common_ptr cinfo, int level) {  // level >= 0: trace output, never shown
  if (level < 0 && !harmless_jpeg_warning(*cinfo->err)) jpeg_fail(cinfo);
}

template <typename Struct>
struct JpegCodec {
  Struct cinfo{};  // zeroed: destroying it before jpeg_create_* is a no-op
  JpegErrors errors;
  JpegCodec() {
    cinfo.err = jpeg_std_error(&errors.mgr);
    errors.mgr.error_exit = jpeg_fail;
    errors.mgr.emit_message = jpeg_on_message;
  }
  ~JpegCodec() { jpeg_destroy(reinterpret_cast<j_common_ptr>(&cinfo)); }
  JpegCodec(const JpegCodec&) = delete;
  JpegCodec& operator=(const JpegCodec&) = delete;
};
using JpegDecoder = JpegCodec<jpeg_decompress_struct>;
using JpegEncoder = JpegCodec<jpeg_compress_struct>;

bool jpeg_read_header_raw(JpegDecoder& d, const uint8_t* data, size_t size) {
  if (setjmp(d.errors.jump)) return false;
  jpeg_create_decompress(&d.cinfo);
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d.cinfo, TRUE);
  return true;
}

// Decodes into `rows` (one pointer per output row).
bool jpeg_read_rows_raw(JpegDecoder& d, JSAMPROW* rows) {
  if (setjmp(d.errors.jump)) return false;
  jpeg_start_decompress(&d.cinfo);
  while (d.cinfo.output_scanline < d.cinfo.output_height)
    jpeg_read_scanlines(&d.cinfo, rows + d.cinfo.output_scanline, d.cinfo.output_height - d.cinfo.output_scanline);
  jpeg_finish_decompress(&d.cinfo);
  return true;
}

// PIL's RGB of a CMYK JPEG: the samples as Adobe stores them, inverted (PIL's "CMYK;I"), then convert("RGB").
void adobe_cmyk_to_rgb(const uint8_t* cmyk, uint8_t* rgb, size_t pixels) {
  for (size_t i = 0; i < pixels; ++i, cmyk += 4, rgb += 3)
    for (int c = 0; c < 3; ++c) rgb[c] = pil_cmyk_channel(255u - cmyk[c], 255u - cmyk[3]);
}

}  // namespace

void check_rgb(const torch::Tensor& rgb, const char* op) {
  PATHVLM_CHECK(rgb.defined() && rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == torch::kByte, op,
                ": expected an RGB uint8 image [H,W,3], got ",
                rgb.defined() ? str(rgb.sizes(), " ", rgb.scalar_type()) : std::string("an undefined tensor"));
  PATHVLM_CHECK(rgb.size(0) > 0 && rgb.size(1) > 0, op, ": empty image ", rgb.sizes());
}

// 8-bit gray, RGB / YCbCr and CMYK / YCCK: what PIL opens (it refuses other component counts and 12-bit samples).
torch::Tensor decode_jpeg(const uint8_t* data, size_t size, const std::string& what, JpegColorSpace stored) {
  JpegDecoder d;
  PATHVLM_CHECK(jpeg_read_header_raw(d, data, size), what, ": corrupt JPEG header (", d.errors.message, ")");
  const int components = d.cinfo.num_components;
  PATHVLM_CHECK(components == 1 || components == 3 || components == 4, what, ": a JPEG of ", components,
                " components is not an image PIL or pathvlm reads (1: gray, 3: colour, 4: CMYK)");
  check_image_size(d.cinfo.image_width, d.cinfo.image_height, "JPEG", what);
  if (stored != JpegColorSpace::Auto) {
    PATHVLM_CHECK(components == 3, what, ": a JPEG of ", components, " components where 3 (",
                  stored == JpegColorSpace::Rgb ? "RGB" : "YCbCr", ") were expected");
    d.cinfo.jpeg_color_space = stored == JpegColorSpace::Rgb ? JCS_RGB : JCS_YCbCr;
  }
  const bool cmyk = components == 4;
  d.cinfo.out_color_space = cmyk ? JCS_CMYK : JCS_RGB;  // gray is replicated into the three channels
  const int64_t height = d.cinfo.image_height, width = d.cinfo.image_width;
  auto out = allocate_rgb(height, width, what);
  const size_t pixels = static_cast<size_t>(height * width);
  auto cmyk_pixels = allocate_scratch<uint8_t>(cmyk ? pixels * 4 : 0, width, height, what);
  auto rows = allocate_scratch<JSAMPROW>(static_cast<size_t>(height), width, height, what);
  uint8_t* first = cmyk ? cmyk_pixels.data() : out.data_ptr<uint8_t>();
  for (int64_t y = 0; y < height; ++y) rows[y] = first + y * width * (cmyk ? 4 : 3);
  PATHVLM_CHECK(jpeg_read_rows_raw(d, rows.data()), what, ": corrupt JPEG data (", d.errors.message, ")");
  if (cmyk) adobe_cmyk_to_rgb(cmyk_pixels.data(), out.data_ptr<uint8_t>(), pixels);
  return out;
}

namespace {

// Baseline JFIF with libjpeg's standard tables scaled to `quality`; the fast integer DCT below quality 96.
bool jpeg_write_raw(JpegEncoder& e, const uint8_t* rgb, int width, int height, int quality, unsigned char** buffer,
                    unsigned long* size) {
  if (setjmp(e.errors.jump)) return false;
  jpeg_create_compress(&e.cinfo);
  jpeg_mem_dest(&e.cinfo, buffer, size);
  e.cinfo.image_width = static_cast<JDIMENSION>(width);
  e.cinfo.image_height = static_cast<JDIMENSION>(height);
  e.cinfo.input_components = 3;
  e.cinfo.in_color_space = JCS_RGB;
  jpeg_set_defaults(&e.cinfo);
  jpeg_set_quality(&e.cinfo, quality, TRUE);
  e.cinfo.dct_method = quality >= 96 ? JDCT_ISLOW : JDCT_IFAST;
  const int luma_sampling = quality >= 90 ? 1 : 2;  // 4:4:4 from quality 90, else 4:2:0
  e.cinfo.comp_info[0].h_samp_factor = e.cinfo.comp_info[0].v_samp_factor = luma_sampling;
  for (int c = 1; c < 3; ++c) e.cinfo.comp_info[c].h_samp_factor = e.cinfo.comp_info[c].v_samp_factor = 1;
  jpeg_start_compress(&e.cinfo, TRUE);
  while (e.cinfo.next_scanline < e.cinfo.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb) + static_cast<size_t>(e.cinfo.next_scanline) * width * 3;
    jpeg_write_scanlines(&e.cinfo, &row, 1);
  }
  jpeg_finish_compress(&e.cinfo);
  return true;
}

// ---- PNG (libpng) ------------------------------------------------------------------------------------

struct PngIo {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  std::vector<uint8_t>* sink = nullptr;
  char error[256] = {0};
  int64_t max_pixels = 0;          // decoding: a larger header stops before any pixel memory is allocated
  bool stopped_at_header = false, out_of_memory = false;
};

void png_on_error(png_structp png, png_const_charp message) {
  auto* io = static_cast<PngIo*>(png_get_error_ptr(png));
  std::snprintf(io->error, sizeof io->error, "%s", message);
  png_longjmp(png, 1);
}
void png_on_warning(png_structp, png_const_charp) {}  // benign (unknown chunks, sRGB profile nits)

void png_read_bytes(png_structp png, png_bytep out, png_size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  if (io->pos + n > io->size) png_error(png, "truncated data");
  std::memcpy(out, io->data + io->pos, n);
  io->pos += n;
}
void png_write_bytes(png_structp png, png_bytep in, png_size_t n) {
  auto* io = static_cast<PngIo*>(png_get_io_ptr(png));
  io->sink->insert(io->sink->end(), in, in + n);
}
void png_flush_nothing(png_structp) {}

// Reads into `pixels` (rows of `channels` bytes per pixel). Returns false with io.error set on failure.
// Every C++ object lives in the caller's frame, so longjmp skips no destructor.
bool png_decode_raw(PngIo& io, std::vector<uint8_t>& pixels, std::vector<png_bytep>& rows, png_uint_32& width,
                    png_uint_32& height, int& channels) {
  png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &io, png_on_error, png_on_warning);
  if (!png) {
    std::snprintf(io.error, sizeof io.error, "libpng: out of memory");
    return false;
  }
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
    if (!io.error[0]) std::snprintf(io.error, sizeof io.error, "libpng: out of memory");
    return false;
  }
  png_set_read_fn(png, &io, png_read_bytes);
  png_read_info(png, info);
  width = png_get_image_width(png, info);
  height = png_get_image_height(png, info);
  if (static_cast<int64_t>(width) * static_cast<int64_t>(height) > io.max_pixels) {
    io.stopped_at_header = true;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  const int color = png_get_color_type(png, info), depth = png_get_bit_depth(png, info);
  if (depth == 16) png_set_strip_16(png);  // high byte, as PIL
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if ((color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) && depth < 8)
    png_set_expand_gray_1_2_4_to_8(png);
  if (png_get_valid(png, info, PNG_INFO_tRNS)) png_set_tRNS_to_alpha(png);
  if (color == PNG_COLOR_TYPE_GRAY || color == PNG_COLOR_TYPE_GRAY_ALPHA) png_set_gray_to_rgb(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  channels = png_get_channels(png, info);
  const size_t row_bytes = png_get_rowbytes(png, info);
  try {
    pixels.resize(row_bytes * height);
    rows.resize(height);
  } catch (const std::bad_alloc&) {
    io.out_of_memory = true;
    png_destroy_read_struct(&png, &info, nullptr);
    return false;
  }
  for (png_uint_32 y = 0; y < height; ++y) rows[y] = pixels.data() + y * row_bytes;
  png_read_image(png, rows.data());
  png_destroy_read_struct(&png, &info, nullptr);
  return true;
}

torch::Tensor decode_png(const uint8_t* data, size_t size, const std::string& what) {
  PngIo io;
  io.data = data;
  io.size = size;
  std::vector<uint8_t> pixels;
  std::vector<png_bytep> rows;
  png_uint_32 width = 0, height = 0;
  int channels = 0;
  io.max_pixels = max_image_pixels();
  if (!png_decode_raw(io, pixels, rows, width, height, channels)) {
    if (io.stopped_at_header) check_image_size(width, height, "PNG", what);  // throws naming the size
    if (io.out_of_memory) throw Error(out_of_memory(width, height, what));
    throw Error(str(what, ": corrupt PNG data (", io.error, ")"));
  }
  PATHVLM_CHECK(width > 0 && height > 0 && (channels == 3 || channels == 4), what, ": unsupported PNG layout (",
                width, "x", height, ", ", channels, " channels after expansion)");
  auto out = allocate_rgb(static_cast<int64_t>(height), static_cast<int64_t>(width), what);
  uint8_t* dst = out.data_ptr<uint8_t>();
  const size_t n = static_cast<size_t>(width) * height;
  if (channels == 3) {
    std::memcpy(dst, pixels.data(), n * 3);
  } else {
    rgba_over_white(pixels.data(), dst, n);
  }
  return out;
}

// ---- TIFF (libtiff) ------------------------------------------------------------------------------------

#if defined(PATHVLM_HAVE_LIBTIFF) && TIFFLIB_VERSION >= 20221213  // 4.5: per-file error handlers
// The bytes libtiff reads, and the first error it reported.
struct TiffMemory {
  const uint8_t* data = nullptr;
  toff_t size = 0, pos = 0;
  std::string error;
};

tmsize_t tiff_read(thandle_t handle, void* out, tmsize_t n) {
  auto* m = static_cast<TiffMemory*>(handle);
  const toff_t count = std::min<toff_t>(static_cast<toff_t>(n), m->pos < m->size ? m->size - m->pos : 0);
  if (count == 0) return 0;
  std::memcpy(out, m->data + m->pos, count);
  m->pos += count;
  return static_cast<tmsize_t>(count);
}
tmsize_t tiff_write(thandle_t, void*, tmsize_t) { return 0; }
toff_t tiff_seek(thandle_t handle, toff_t offset, int whence) {
  auto* m = static_cast<TiffMemory*>(handle);
  const toff_t base = whence == SEEK_CUR ? m->pos : whence == SEEK_END ? m->size : 0;
  return m->pos = base + offset;
}
int tiff_close(thandle_t) { return 0; }
toff_t tiff_size(thandle_t handle) { return static_cast<TiffMemory*>(handle)->size; }
int tiff_map(thandle_t, void**, toff_t*) { return 0; }
void tiff_unmap(thandle_t, void*, toff_t) {}

int tiff_on_error(TIFF*, void* user, const char* module, const char* format, va_list args) {
  auto* m = static_cast<TiffMemory*>(user);
  if (m->error.empty()) {
    char text[512];
    std::vsnprintf(text, sizeof text, format, args);
    m->error = module && *module ? str(module, ": ", text) : std::string(text);
  }
  return 1;
}
int tiff_ignore_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }  // as PIL ignores them

struct TiffCloser {
  void operator()(TIFF* tif) const { TIFFClose(tif); }
};

// libtiff's reader routine for 8-bit contiguous CMYK (its own truncates (255 - k)(255 - c) / 255): PIL's conversion.
void put_cmyk_as_pil(TIFFRGBAImage*, uint32_t* out, uint32_t, uint32_t, uint32_t w, uint32_t h, int32_t from_skew,
                     int32_t to_skew, unsigned char* in) {
  for (; h > 0; --h, out += to_skew, in += 4 * from_skew) {
    for (uint32_t x = 0; x < w; ++x, in += 4)
      *out++ = pil_cmyk_channel(in[0], in[3]) | pil_cmyk_channel(in[1], in[3]) << 8 |
               pil_cmyk_channel(in[2], in[3]) << 16 | 0xFF000000u;
  }
}

// PIL turns the image by its orientation tag when it loads a TIFF (TiffImageFile.load_end).
torch::Tensor orient_as_pil(const torch::Tensor& rgb, uint16_t orientation) {
  switch (orientation) {
    case ORIENTATION_TOPRIGHT: return rgb.flip({1});
    case ORIENTATION_BOTRIGHT: return rgb.flip({0, 1});
    case ORIENTATION_BOTLEFT: return rgb.flip({0});
    case ORIENTATION_LEFTTOP: return rgb.transpose(0, 1);
    case ORIENTATION_RIGHTTOP: return rgb.rot90(3, {0, 1});
    case ORIENTATION_RIGHTBOT: return rgb.flip({0, 1}).transpose(0, 1);
    case ORIENTATION_LEFTBOT: return rgb.rot90(1, {0, 1});
    default: return rgb;
  }
}

// The first image of a TIFF, through libtiff's RGBA reader (any bit depth, photometric and compression it knows),
// turned by its orientation tag and with alpha composited onto white, as PIL + convert_to_rgb give it.
torch::Tensor decode_tiff(const uint8_t* data, size_t size, const std::string& what) {
  TiffMemory memory;
  memory.data = data;
  memory.size = size;
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(options, tiff_on_error, &memory);
  TIFFOpenOptionsSetWarningHandlerExtR(options, tiff_ignore_warning, nullptr);
  std::unique_ptr<TIFF, TiffCloser> tif(TIFFClientOpenExt("tiff", "rm", &memory, tiff_read, tiff_write, tiff_seek,
                                                          tiff_close, tiff_size, tiff_map, tiff_unmap, options));
  TIFFOpenOptionsFree(options);
  PATHVLM_CHECK(tif, what, ": corrupt TIFF header (", memory.error, ")");
  uint32_t width = 0, height = 0;
  TIFFGetField(tif.get(), TIFFTAG_IMAGEWIDTH, &width);
  TIFFGetField(tif.get(), TIFFTAG_IMAGELENGTH, &height);
  check_image_size(width, height, "TIFF", what);
  auto raster = allocate_scratch<uint32_t>(static_cast<size_t>(width) * height, width, height, what);
  char reason[1024] = {0};
  TIFFRGBAImage reader;
  PATHVLM_CHECK(TIFFRGBAImageOK(tif.get(), reason) && TIFFRGBAImageBegin(&reader, tif.get(), 0, reason), what,
                ": a TIFF layout libtiff cannot turn into RGB (", reason, ")");
  reader.req_orientation = reader.orientation;  // the rows as stored; orient_as_pil turns them
  const bool cmyk = reader.photometric == PHOTOMETRIC_SEPARATED && reader.samplesperpixel == 4 &&
                    reader.bitspersample == 8 && reader.isContig;
  if (cmyk) reader.put.contig = put_cmyk_as_pil;
  const uint16_t orientation = reader.orientation;
  const int read = TIFFRGBAImageGet(&reader, raster.data(), width, height);
  // The reader premultiplies unassociated alpha for colour images (rounding c a / 255 as over_white does), not for
  // gray ones; associated alpha is stored premultiplied.
  const bool gray = reader.photometric == PHOTOMETRIC_MINISBLACK || reader.photometric == PHOTOMETRIC_MINISWHITE;
  const bool premultiplied =
      reader.alpha == EXTRASAMPLE_ASSOCALPHA || (reader.alpha == EXTRASAMPLE_UNASSALPHA && !gray);
  TIFFRGBAImageEnd(&reader);
  PATHVLM_CHECK(read && memory.error.empty(), what, ": corrupt TIFF data (", memory.error, ")");
  auto out = allocate_rgb(height, width, what);
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (size_t i = 0; i < raster.size(); ++i) {
    const uint32_t p = raster[i];
    const unsigned rgb[3] = {TIFFGetR(p), TIFFGetG(p), TIFFGetB(p)}, alpha = TIFFGetA(p);
    for (int c = 0; c < 3; ++c)
      dst[3 * i + c] = premultiplied ? static_cast<uint8_t>(std::min(255u, rgb[c] + 255u - alpha))
                                     : over_white(rgb[c], alpha);
  }
  return orient_as_pil(out, orientation).contiguous();
}
#else
torch::Tensor decode_tiff(const uint8_t*, size_t, const std::string& what) {
  throw Error(str(what, ": a TIFF image, and this build has no libtiff 4.5+ to read it (install libtiff-dev and "
                        "build again)"));
}
#endif

// ---- JPEG 2000 (OpenJPEG) ------------------------------------------------------------------------------

#ifdef PATHVLM_HAVE_OPENJPEG
struct Jpeg2000Input {
  const uint8_t* data;
  size_t size, at;
};

OPJ_SIZE_T jpeg2000_read(void* out, OPJ_SIZE_T n, void* user) {
  auto* in = static_cast<Jpeg2000Input*>(user);
  if (in->at >= in->size) return static_cast<OPJ_SIZE_T>(-1);  // OpenJPEG's end of stream
  n = std::min<OPJ_SIZE_T>(n, in->size - in->at);
  std::memcpy(out, in->data + in->at, n);
  in->at += n;
  return n;
}

OPJ_OFF_T jpeg2000_skip(OPJ_OFF_T n, void* user) {
  auto* in = static_cast<Jpeg2000Input*>(user);
  const auto to = std::clamp<OPJ_OFF_T>(static_cast<OPJ_OFF_T>(in->at) + n, 0, static_cast<OPJ_OFF_T>(in->size));
  const OPJ_OFF_T skipped = to - static_cast<OPJ_OFF_T>(in->at);
  in->at = static_cast<size_t>(to);
  return skipped;
}

OPJ_BOOL jpeg2000_seek(OPJ_OFF_T to, void* user) {
  auto* in = static_cast<Jpeg2000Input*>(user);
  if (to < 0 || static_cast<uint64_t>(to) > in->size) return OPJ_FALSE;
  in->at = static_cast<size_t>(to);
  return OPJ_TRUE;
}

void jpeg2000_keep_first_error(const char* message, void* user) {
  auto* first = static_cast<std::string*>(user);
  if (!first->empty()) return;
  *first = message;
  while (!first->empty() && (first->back() == '\n' || first->back() == ' ')) first->pop_back();
}

void jpeg2000_quiet(const char*, void*) {}

struct Jpeg2000Decoder {
  opj_codec_t* codec = nullptr;
  opj_stream_t* stream = nullptr;
  opj_image_t* image = nullptr;
  std::string error;
  ~Jpeg2000Decoder() {
    if (image) opj_image_destroy(image);
    if (stream) opj_stream_destroy(stream);
    if (codec) opj_destroy_codec(codec);
  }
};
#endif

}  // namespace

bool jpeg2000_built_in() {
#ifdef PATHVLM_HAVE_OPENJPEG
  return true;
#else
  return false;
#endif
}

torch::Tensor decode_jpeg2000(const uint8_t* data, size_t size, const std::string& what) {
#ifdef PATHVLM_HAVE_OPENJPEG
  static const uint8_t kJp2Signature[12] = {0, 0, 0, 12, 'j', 'P', ' ', ' ', '\r', '\n', 0x87, '\n'};
  const bool jp2 = size >= 12 && std::memcmp(data, kJp2Signature, 12) == 0;
  const bool codestream = size >= 4 && data[0] == 0xFF && data[1] == 0x4F && data[2] == 0xFF && data[3] == 0x51;
  PATHVLM_CHECK(jp2 || codestream, what, ": not JPEG 2000 (no codestream SOC/SIZ markers or JP2 signature)");
  Jpeg2000Decoder d;
  d.codec = opj_create_decompress(jp2 ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K);
  PATHVLM_CHECK(d.codec, what, ": OpenJPEG could not create a decoder");
  opj_set_error_handler(d.codec, jpeg2000_keep_first_error, &d.error);
  opj_set_warning_handler(d.codec, jpeg2000_quiet, nullptr);
  opj_set_info_handler(d.codec, jpeg2000_quiet, nullptr);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  PATHVLM_CHECK(opj_setup_decoder(d.codec, &parameters), what, ": OpenJPEG could not set up its decoder");
  Jpeg2000Input input{data, size, 0};
  d.stream = opj_stream_create(size_t{1} << 16, OPJ_TRUE);
  PATHVLM_CHECK(d.stream, what, ": OpenJPEG could not create a stream");
  opj_stream_set_user_data(d.stream, &input, nullptr);
  opj_stream_set_user_data_length(d.stream, size);
  opj_stream_set_read_function(d.stream, jpeg2000_read);
  opj_stream_set_skip_function(d.stream, jpeg2000_skip);
  opj_stream_set_seek_function(d.stream, jpeg2000_seek);
  PATHVLM_CHECK(opj_read_header(d.stream, d.codec, &d.image) && d.image, what, ": corrupt JPEG 2000 header (",
                d.error, ")");
  const opj_image_t& image = *d.image;
  PATHVLM_CHECK(image.x1 > image.x0 && image.y1 > image.y0, what, ": a JPEG 2000 image without pixels");
  const int64_t width = image.x1 - image.x0, height = image.y1 - image.y0;
  PATHVLM_CHECK(image.numcomps == 3, what, ": a JPEG 2000 image of ", image.numcomps,
                " components (3 are read: RGB, or YCbCr the codestream transforms back)");
  for (OPJ_UINT32 c = 0; c < 3; ++c) {
    const opj_image_comp_t& comp = image.comps[c];
    PATHVLM_CHECK(comp.dx == 1 && comp.dy == 1 && comp.prec == 8 && !comp.sgnd, what, ": JPEG 2000 component ", c,
                  " is ", comp.sgnd ? "signed " : "", comp.prec, "-bit, subsampled ", comp.dx, "x", comp.dy,
                  " (unsigned 8-bit at full resolution is read)");
  }
  check_image_size(width, height, "JPEG 2000", what);
  const bool decoded = opj_decode(d.codec, d.stream, d.image) && opj_end_decompress(d.codec, d.stream);
  PATHVLM_CHECK(decoded, what, ": corrupt JPEG 2000 data (", d.error, ")");
  for (OPJ_UINT32 c = 0; c < 3; ++c) {
    const opj_image_comp_t& comp = image.comps[c];
    PATHVLM_CHECK(comp.data && comp.w == width && comp.h == height, what, ": JPEG 2000 component ", c,
                  " decoded to ", comp.w, "x", comp.h, " of an image of ", width, "x", height);
  }
  auto out = allocate_rgb(height, width, what);
  uint8_t* rgb = out.data_ptr<uint8_t>();
  const size_t pixels = static_cast<size_t>(width * height);
  for (size_t i = 0; i < pixels; ++i)
    for (int c = 0; c < 3; ++c) rgb[3 * i + c] = static_cast<uint8_t>(std::clamp(image.comps[c].data[i], 0, 255));
  return out;
#else
  (void)data, (void)size;
  throw Error(str(what, ": JPEG 2000, and this build has no OpenJPEG to read it (install libopenjp2-7-dev and build "
                  "again)"));
#endif
}

namespace {

// ---- WebP (libwebp) ------------------------------------------------------------------------------------

#ifdef PATHVLM_HAVE_LIBWEBP
// A still image, as Pillow decodes it through libwebp (fancy upsampling); alpha composited onto white.
torch::Tensor decode_webp(const uint8_t* data, size_t size, const std::string& what) {
  WebPBitstreamFeatures features;
  const VP8StatusCode status = WebPGetFeatures(data, size, &features);
  PATHVLM_CHECK(status == VP8_STATUS_OK, what, ": ",
                status == VP8_STATUS_NOT_ENOUGH_DATA ? "WebP cut short" : "corrupt WebP header", " (libwebp status ",
                static_cast<int>(status), ")");
  PATHVLM_CHECK(!features.has_animation, what, ": an animated WebP (only still images are read)");
  const int64_t width = features.width, height = features.height;
  check_image_size(width, height, "WebP", what);
  auto out = allocate_rgb(height, width, what);
  uint8_t* dst = out.data_ptr<uint8_t>();
  const size_t pixels = static_cast<size_t>(width * height);
  bool ok = false;
  if (!features.has_alpha) {
    ok = WebPDecodeRGBInto(data, size, dst, pixels * 3, static_cast<int>(width * 3)) != nullptr;
  } else {
    auto rgba = allocate_scratch<uint8_t>(pixels * 4, width, height, what);
    ok = WebPDecodeRGBAInto(data, size, rgba.data(), rgba.size(), static_cast<int>(width * 4)) != nullptr;
    if (ok) rgba_over_white(rgba.data(), dst, pixels);
  }
  PATHVLM_CHECK(ok, what, ": corrupt or cut-short WebP data");
  return out;
}
#else
torch::Tensor decode_webp(const uint8_t*, size_t, const std::string& what) {
  throw Error(str(what, ": a WebP image, and this build has no libwebp to read it (install libwebp-dev and build "
                        "again)"));
}
#endif

bool png_encode_raw(PngIo& io, const uint8_t* pixels, int width, int height) {
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &io, png_on_error, png_on_warning);
  if (!png) return false;
  png_infop info = png_create_info_struct(png);
  if (!info || setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, info ? &info : nullptr);
    return false;
  }
  png_set_write_fn(png, &io, png_write_bytes, png_flush_nothing);
  png_set_IHDR(png, info, width, height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < height; ++y) png_write_row(png, const_cast<png_bytep>(pixels + static_cast<size_t>(y) * width * 3));
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return true;
}

std::string lower_extension(const std::string& path) {
  auto dot = path.find_last_of('.');
  auto slash = path.find_last_of('/');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return "";
  return ascii_lower(path.substr(dot));
}

}  // namespace

void set_max_image_pixels(int64_t pixels) {
  PATHVLM_CHECK(pixels >= 1, "the image pixel limit must be >= 1, got ", pixels);
  g_max_image_pixels = pixels;
}

int64_t max_image_pixels() { return g_max_image_pixels.load(); }

ImageFormat sniff_image_format(const uint8_t* data, size_t size) {
  static const uint8_t png_magic[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  if (size >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF) return ImageFormat::Jpeg;
  if (size >= 8 && std::memcmp(data, png_magic, 8) == 0) return ImageFormat::Png;
  // Classic and BigTIFF, little- and big-endian.
  if (size >= 4 && ((data[0] == 'I' && data[1] == 'I' && (data[2] == 42 || data[2] == 43) && data[3] == 0) ||
                    (data[0] == 'M' && data[1] == 'M' && data[2] == 0 && (data[3] == 42 || data[3] == 43))))
    return ImageFormat::Tiff;
  if (size >= 12 && std::memcmp(data, "RIFF", 4) == 0 && std::memcmp(data + 8, "WEBP", 4) == 0)
    return ImageFormat::Webp;
  return ImageFormat::Unknown;
}

const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg: return "jpeg";
    case ImageFormat::Png: return "png";
    case ImageFormat::Tiff: return "tiff";
    case ImageFormat::Webp: return "webp";
    default: return "unknown";
  }
}

torch::Tensor decode_image(const uint8_t* data, size_t size, const std::string& what) {
  PATHVLM_CHECK(size > 0, what, ": empty image data (0 bytes)");
  switch (sniff_image_format(data, size)) {
    case ImageFormat::Jpeg: return decode_jpeg(data, size, what);
    case ImageFormat::Png: return decode_png(data, size, what);
    case ImageFormat::Tiff: return decode_tiff(data, size, what);
    case ImageFormat::Webp: return decode_webp(data, size, what);
    default:
      throw Error(str(what, ": not a JPEG, PNG, TIFF or WebP image (", size, " bytes, unrecognised signature)"));
  }
}

torch::Tensor decode_image(const Bytes& bytes, const std::string& what) {
  return decode_image(bytes.data(), bytes.size(), what);
}

Bytes read_file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  PATHVLM_CHECK(in, "cannot open '", path, "': ", std::strerror(errno));
  const auto size = static_cast<size_t>(in.tellg());
  Bytes bytes;
  try {
    bytes.resize(size);
  } catch (const std::bad_alloc&) {
    throw Error(str("cannot read '", path, "': its ", format_bytes(static_cast<double>(size)), " do not fit in memory"));
  }
  in.seekg(0);
  PATHVLM_CHECK(in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size)),
                "cannot read '", path, "'");
  return bytes;
}

void write_file_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  PATHVLM_CHECK(out, "cannot create '", path, "': ", std::strerror(errno));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  PATHVLM_CHECK(out.flush(), "cannot write '", path, "'");
}

torch::Tensor read_image(const std::string& path) { return decode_image(read_file_bytes(path), str("'", path, "'")); }

void write_image(const std::string& path, const torch::Tensor& rgb, int jpeg_quality) {
  const std::string ext = lower_extension(path);
  if (ext == ".png") return write_file_bytes(path, encode_png(rgb));
  if (ext == ".jpg" || ext == ".jpeg") return write_file_bytes(path, encode_jpeg(rgb, jpeg_quality));
  throw Error(str("cannot write image '", path, "': the extension must be .png, .jpg or .jpeg"));
}

Bytes encode_jpeg(const torch::Tensor& rgb, int quality) {
  check_rgb(rgb, "encode_jpeg");
  PATHVLM_CHECK(quality >= 1 && quality <= 100, "encode_jpeg: quality must be in [1, 100], got ", quality);
  auto src = rgb.contiguous();
  JpegEncoder e;
  unsigned char* buffer = nullptr;  // libjpeg's, from malloc
  unsigned long size = 0;
  const bool written = jpeg_write_raw(e, src.data_ptr<uint8_t>(), static_cast<int>(src.size(1)),
                                      static_cast<int>(src.size(0)), quality, &buffer, &size);
  Bytes out = written ? Bytes(buffer, buffer + size) : Bytes();
  std::free(buffer);
  PATHVLM_CHECK(written, "encode_jpeg: ", e.errors.message);
  return out;
}

Bytes encode_png(const torch::Tensor& rgb) {
  check_rgb(rgb, "encode_png");
  auto src = rgb.contiguous();
  Bytes out;
  PngIo io;
  io.sink = &out;
  PATHVLM_CHECK(png_encode_raw(io, src.data_ptr<uint8_t>(), static_cast<int>(src.size(1)),
                               static_cast<int>(src.size(0))),
                "encode_png: ", io.error[0] ? io.error : "libpng: out of memory");
  return out;
}

namespace {

// PIL's resampling, bit for bit: per output pixel, the filter's weights (the a = -0.5 cubic, or the triangle) over a
// support widened by the scale when downscaling, normalised, then made 22-bit fixed point; each axis is a separate
// pass that rounds to uint8, width first.
constexpr int kPrecisionBits = 22;

struct AxisWeights {
  std::vector<int> first;               // first input index of each output
  std::vector<std::vector<int32_t>> w;  // its fixed-point weights
};

double pil_cubic(double x) {
  constexpr double a = -0.5;
  x = std::abs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

double pil_triangle(double x) {
  x = std::abs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

AxisWeights resample_weights(int in_size, int out_size, Interpolation how) {
  const bool cubic = how == Interpolation::bicubic;
  const double scale = static_cast<double>(in_size) / out_size;
  const double filter_scale = std::max(scale, 1.0), inverse = 1.0 / filter_scale;
  const double support = (cubic ? 2.0 : 1.0) * filter_scale;
  AxisWeights out;
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int count = std::min(static_cast<int>(center + support + 0.5), in_size) - lo;
    std::vector<double> k(std::max(count, 0));
    double total = 0.0;
    for (int j = 0; j < count; ++j) {
      const double x = (j + lo - center + 0.5) * inverse;
      total += k[j] = cubic ? pil_cubic(x) : pil_triangle(x);
    }
    std::vector<int32_t> fixed(k.size());
    for (size_t j = 0; j < k.size(); ++j) {
      const double v = (total != 0.0 ? k[j] / total : k[j]) * (1 << kPrecisionBits);
      fixed[j] = static_cast<int32_t>(v < 0 ? v - 0.5 : v + 0.5);
    }
    out.first.push_back(lo);
    out.w.push_back(std::move(fixed));
  }
  return out;
}

uint8_t clip8(int32_t sum) { return static_cast<uint8_t>(std::clamp(sum >> kPrecisionBits, 0, 255)); }

// Sums stay within int32 as in PIL: 255 x the weights' absolute sum (< 1.3 x 2^22) < 2^31.
constexpr int32_t kHalf = 1 << (kPrecisionBits - 1);

// uint8 [H, W, 3] -> [H, out_width, 3].
torch::Tensor resample_width(const torch::Tensor& in, int out_width, Interpolation how) {
  const int64_t h = in.size(0), w = in.size(1);
  const AxisWeights weights = resample_weights(static_cast<int>(w), out_width, how);
  auto out = torch::empty({h, out_width, 3}, torch::kByte);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* row = src + y * w * 3;
    for (int x = 0; x < out_width; ++x) {
      const auto& k = weights.w[x];
      const uint8_t* p = row + int64_t(weights.first[x]) * 3;
      int32_t r = kHalf, g = kHalf, b = kHalf;
      for (size_t j = 0; j < k.size(); ++j, p += 3) {
        r += p[0] * k[j];
        g += p[1] * k[j];
        b += p[2] * k[j];
      }
      uint8_t* o = dst + (y * out_width + x) * 3;
      o[0] = clip8(r), o[1] = clip8(g), o[2] = clip8(b);
    }
  }
  return out;
}

// uint8 [H, W, 3] -> [out_height, W, 3]: whole rows at a time.
torch::Tensor resample_height(const torch::Tensor& in, int out_height, Interpolation how) {
  const int64_t h = in.size(0), row_values = in.size(1) * 3;
  const AxisWeights weights = resample_weights(static_cast<int>(h), out_height, how);
  auto out = torch::empty({out_height, in.size(1), 3}, torch::kByte);
  const uint8_t* src = in.data_ptr<uint8_t>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  std::vector<int32_t> sums(row_values);
  for (int y = 0; y < out_height; ++y) {
    std::fill(sums.begin(), sums.end(), kHalf);
    const auto& k = weights.w[y];
    for (size_t j = 0; j < k.size(); ++j) {
      const uint8_t* row = src + (weights.first[y] + static_cast<int64_t>(j)) * row_values;
      for (int64_t v = 0; v < row_values; ++v) sums[v] += row[v] * k[j];
    }
    for (int64_t v = 0; v < row_values; ++v) dst[y * row_values + v] = clip8(sums[v]);
  }
  return out;
}

}  // namespace

Interpolation parse_interpolation(const std::string& name, const std::string& where) {
  if (name == "bicubic") return Interpolation::bicubic;
  if (name == "bilinear") return Interpolation::bilinear;
  throw Error(str(where, ": interpolation '", name, "' is not supported (bicubic or bilinear are)"));
}

const char* interpolation_name(Interpolation how) { return how == Interpolation::bicubic ? "bicubic" : "bilinear"; }

torch::Tensor resize(const torch::Tensor& rgb, int height, int width, Interpolation how) {
  check_rgb(rgb, "resize");
  PATHVLM_CHECK(height > 0 && width > 0, "resize: bad output size ", height, "x", width);
  torch::Tensor x = rgb.contiguous();
  if (x.size(1) != width) x = resample_width(x, width, how);
  if (x.size(0) != height) x = resample_height(x, height, how);
  return x;
}

torch::Tensor resize_shortest_side(const torch::Tensor& rgb, int size, Interpolation how) {
  check_rgb(rgb, "resize_shortest_side");
  PATHVLM_CHECK(size > 0, "resize_shortest_side: size must be positive, got ", size);
  const int64_t h = rgb.size(0), w = rgb.size(1);
  const int64_t short_side = std::min(h, w), long_side = std::max(h, w);
  const auto new_long = static_cast<int>(static_cast<double>(size) * static_cast<double>(long_side) /
                                         static_cast<double>(short_side));
  return h <= w ? resize(rgb, size, new_long, how) : resize(rgb, new_long, size, how);
}

torch::Tensor center_crop(const torch::Tensor& rgb, int height, int width) {
  check_rgb(rgb, "center_crop");
  PATHVLM_CHECK(height > 0 && width > 0, "center_crop: bad crop size ", height, "x", width);
  const int64_t h = rgb.size(0), w = rgb.size(1);
  if (h == height && w == width) return rgb;
  if (h >= height && w >= width) {
    const int64_t top = (h - height) / 2, left = (w - width) / 2;
    return rgb.slice(0, top, top + height).slice(1, left, left + width).contiguous();
  }
  // Smaller than the crop: place it centered on black, then crop.
  const int64_t ph = std::max<int64_t>(h, height), pw = std::max<int64_t>(w, width);
  auto padded = torch::zeros({ph, pw, 3}, torch::kByte);
  const int64_t oy = (ph - h) / 2, ox = (pw - w) / 2;
  padded.slice(0, oy, oy + h).slice(1, ox, ox + w).copy_(rgb);
  return center_crop(padded, height, width);
}

torch::Tensor resize_shortest_and_center_crop(const torch::Tensor& rgb, int size, Interpolation how) {
  return center_crop(resize_shortest_side(rgb, size, how), size, size);
}

torch::Tensor pad_to_square(const torch::Tensor& rgb, const std::array<uint8_t, 3>& fill) {
  check_rgb(rgb, "pad_to_square");
  const int64_t h = rgb.size(0), w = rgb.size(1), side = std::max(h, w);
  if (h == w) return rgb;
  auto square = torch::tensor({fill[0], fill[1], fill[2]}, torch::kByte).expand({side, side, 3}).contiguous();
  square.narrow(0, (side - h) / 2, h).narrow(1, (side - w) / 2, w).copy_(rgb);
  return square;
}

std::array<uint8_t, 3> mean_colour(const std::array<double, 3>& mean) {
  std::array<uint8_t, 3> colour{};
  for (int c = 0; c < 3; ++c) colour[c] = static_cast<uint8_t>(std::clamp(mean[c], 0.0, 1.0) * 255.0);
  return colour;
}

CropBox random_resized_crop_box(int height, int width, torch::Generator& gen, std::array<double, 2> scale,
                                std::array<double, 2> ratio) {
  PATHVLM_CHECK(height > 0 && width > 0, "random_resized_crop: empty image ", height, "x", width);
  PATHVLM_CHECK(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1.0, "random_resized_crop: scale must satisfy 0 < lo <= hi <= 1, got [",
                scale[0], ", ", scale[1], "]");
  PATHVLM_CHECK(ratio[0] > 0 && ratio[0] <= ratio[1], "random_resized_crop: bad aspect ratio range [", ratio[0], ", ",
                ratio[1], "]");
  const double area = static_cast<double>(height) * width;
  const double log_lo = std::log(ratio[0]), log_hi = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto u = torch::rand({2}, gen, torch::TensorOptions().dtype(torch::kDouble));
    const double target_area = area * (scale[0] + (scale[1] - scale[0]) * u[0].item<double>());
    const double aspect = std::exp(log_lo + (log_hi - log_lo) * u[1].item<double>());
    const int w = static_cast<int>(std::lround(std::sqrt(target_area * aspect)));
    const int h = static_cast<int>(std::lround(std::sqrt(target_area / aspect)));
    if (w > 0 && w <= width && h > 0 && h <= height) {
      const int top = static_cast<int>(torch::randint(0, height - h + 1, {1}, gen).item<int64_t>());
      const int left = static_cast<int>(torch::randint(0, width - w + 1, {1}, gen).item<int64_t>());
      return {top, left, h, w};
    }
  }
  // Fallback: the whole image, cropped centrally to the nearest allowed aspect ratio.
  const double in_ratio = static_cast<double>(width) / height;
  int w = width, h = height;
  if (in_ratio < ratio[0]) {
    h = static_cast<int>(std::lround(w / ratio[0]));
  } else if (in_ratio > ratio[1]) {
    w = static_cast<int>(std::lround(h * ratio[1]));
  }
  return {(height - h) / 2, (width - w) / 2, h, w};
}

torch::Tensor resized_crop(const torch::Tensor& rgb, const CropBox& box, int size) {
  check_rgb(rgb, "resized_crop");
  PATHVLM_CHECK(box.top >= 0 && box.left >= 0 && box.height > 0 && box.width > 0 &&
                    box.top + box.height <= rgb.size(0) && box.left + box.width <= rgb.size(1),
                "resized_crop: box (top ", box.top, ", left ", box.left, ", ", box.height, "x", box.width,
                ") is outside the ", rgb.size(0), "x", rgb.size(1), " image");
  auto crop = rgb.slice(0, box.top, box.top + box.height).slice(1, box.left, box.left + box.width).contiguous();
  return resize_bicubic(crop, size, size);
}

bool chance(double p, torch::Generator& gen) {
  return p > 0 && torch::rand({1}, gen, torch::TensorOptions().dtype(torch::kDouble)).item<double>() < p;
}

torch::Tensor random_resized_crop(const torch::Tensor& rgb, int size, torch::Generator& gen,
                                  std::array<double, 2> scale, std::array<double, 2> ratio) {
  check_rgb(rgb, "random_resized_crop");
  auto box = random_resized_crop_box(static_cast<int>(rgb.size(0)), static_cast<int>(rgb.size(1)), gen, scale, ratio);
  return resized_crop(rgb, box, size);
}

std::string describe_pixel_normalisation(const std::array<double, 3>& mean, const std::array<double, 3>& std) {
  const auto three = [](const std::array<double, 3>& v) {
    std::string out = "[";
    for (size_t i = 0; i < 3; ++i) {
      char digits[32];
      const auto end = std::to_chars(digits, digits + sizeof digits, v[i]).ptr;
      out += (i ? ", " : "") + std::string(digits, end);
    }
    return out + "]";
  };
  return "mean " + three(mean) + " std " + three(std);
}

torch::Tensor channel_values(const std::array<double, 3>& values, torch::Device device) {
  return torch::tensor({values[0], values[1], values[2]}, torch::kFloat).view({3, 1, 1}).to(device);
}

torch::Tensor normalize_pixels(const torch::Tensor& pixels, const torch::Tensor& mean, const torch::Tensor& std) {
  PATHVLM_CHECK(pixels.defined() && pixels.dim() >= 3 && pixels.size(-3) == 3 && pixels.scalar_type() == torch::kByte,
                "normalize_pixels: expected uint8 pixels [...,3,H,W], got ",
                pixels.defined() ? str(pixels.sizes(), " ", pixels.scalar_type()) : std::string("an undefined tensor"));
  return pixels.to(torch::kFloat).div_(255.0f).sub_(mean).div_(std);
}

torch::Tensor normalize_image(const torch::Tensor& rgb, const std::array<double, 3>& mean,
                              const std::array<double, 3>& std) {
  check_rgb(rgb, "normalize_image");
  return normalize_pixels(rgb.permute({2, 0, 1}), channel_values(mean), channel_values(std)).contiguous();
}

PixelNormalizer::PixelNormalizer(torch::Device device, const std::array<double, 3>& mean,
                                 const std::array<double, 3>& std)
    : mean_(channel_values(mean, device)), std_(channel_values(std, device)) {}

torch::Tensor PixelNormalizer::operator()(const torch::Tensor& pixels) const {
  return normalize_pixels(pixels.to(mean_.device(), /*non_blocking=*/true), mean_, std_);
}

}  // namespace pathvlm::data
