// Tile features with a frozen image encoder (a CLIP image tower or a ViT tile encoder): see embed.h.
#include "wsi/embed.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/compat.h"
#include "core/device.h"
#include "core/error.h"
#include "core/progress.h"
#include "io/hdf5.h"
#include "data/image.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "wsi/slide.h"
#include "wsi/tiling.h"
#include "models/clip/fixed_random.h"
#include "models/clip/weights.h"
#include "models/conch/weights.h"
#include "models/swin/weights.h"
#include "models/vit/hf_weights.h"
#include "models/vit/timm_weights.h"

namespace fs = std::filesystem;

namespace pathvlm::wsi {

namespace {

// Where and in what precision a frozen encoder runs.
struct EncoderRuntime {
  torch::Device device{torch::kCPU};
  bool autocast = false;
  torch::ScalarType dtype = torch::kFloat;
};

EncoderRuntime encoder_runtime(const EmbedConfig& config) {
  EncoderRuntime run;
  run.device = parse_device(config.device, "embed.device");
  const std::string precision =
      config.precision == "auto" ? (run.device.is_cuda() ? "bf16" : "fp32") : config.precision;
  PATHVLM_CHECK(precision == "fp32" || run.device.is_cuda(), "embed.precision ", precision,
                " needs CUDA (autocast); use fp32 on the CPU");
  run.autocast = precision != "fp32";
  run.dtype = precision == "bf16" ? torch::kBFloat16 : torch::kHalf;
  return run;
}

// What every encoder states: its input size, feature width, name, kind (for the start-up line), the pixel statistics
// it runs with (its own `mean` / `std`, or embed's image_mean / image_std where given) and how tiles are resized to its
// input (its own `interpolation`, or embed's where given).
TileEncoder stated_encoder(const std::string& path, const std::string& kind, int image_size, int64_t dim,
                           const std::array<double, 3>& mean, const std::array<double, 3>& std,
                           const std::string& interpolation, const EmbedConfig& config) {
  TileEncoder encoder;
  encoder.image_size = image_size;
  encoder.dim = static_cast<int>(dim);
  encoder.name = path;
  encoder.kind = kind;
  encoder.mean = given_or(config.image_mean, mean);
  encoder.std = given_or(config.image_std, std);
  encoder.interpolation = data::parse_interpolation(
      config.interpolation == "auto" ? interpolation : config.interpolation,
      str("encoder '", path, "': its evaluation transform (embed.interpolation bicubic or bilinear overrides it)"));
  return encoder;
}

TileEncoder clip_tile_encoder(const std::string& path, const EmbedConfig& config, const EncoderRuntime& run) {
  models::ClipModel model{nullptr};
  if (models::is_clip_preset(path)) {
    models::ClipModelConfig preset;
    preset.preset = path;
    preset.hidden_act = "gelu";  // as `instruct.vision_tower: <preset>` draws it, so cached features match
    model = models::fixed_random_clip(preset);
  } else {
    model = models::load_clip(path);
  }
  model->to(run.device);
  model->eval();
  const auto& mc = model->config();
  const int layers = static_cast<int>(model->vision_model->encoder->layers->size());
  const int select = config.token_layer < 0 ? layers + config.token_layer : config.token_layer - 1;
  PATHVLM_CHECK(select >= -1 && select < layers, "embed.token_layer ", config.token_layer, " is outside the ",
                layers, " blocks of '", path, "'");

  PATHVLM_CHECK(config.pool == "auto", "embed.pool ", config.pool, ": a CLIP encoder's features are its projected "
                "class token (pool: auto); pooling is chosen for ViT tile encoders");
  TileEncoder encoder = stated_encoder(path, "CLIP image tower", mc.image_size, mc.embed_dim, data::kOpenAiMean,
                                       data::kOpenAiStd, "bicubic", config);
  encoder.token_layer = config.token_layer;
  encoder.token_shape = {(mc.image_size / mc.patch_size) * (mc.image_size / mc.patch_size) + 1, mc.vision_width};
  encoder.encode = [model, run, select, normalize = data::PixelNormalizer(run.device, encoder.mean, encoder.std)](
                       const torch::Tensor& pixels, bool tokens) mutable {
    torch::NoGradGuard no_grad;
    compat::CudaAutocastGuard autocast(run.autocast, run.dtype);
    auto x = normalize(pixels);
    auto vision = model->vision_model;
    // The image tower block by block, so the token layer and the projected features come from one pass.
    auto h = vision->pre_layrnorm->forward(vision->embeddings->forward(x));
    EncodedBatch out;
    if (tokens && select == -1) out.tokens = h;
    for (size_t i = 0; i < vision->encoder->layers->size(); ++i) {
      h = vision->encoder->layers->ptr<models::ClipEncoderLayerImpl>(i)->forward(h, false);
      if (tokens && static_cast<int>(i) == select) out.tokens = h;
    }
    out.features =
        model->visual_projection->forward(vision->post_layernorm->forward(h.select(1, 0))).to(torch::kFloat).cpu();
    if (tokens) out.tokens = out.tokens.to(torch::kFloat).cpu();
    return out;
  };
  return encoder;
}

// An encoder whose features pool its ViT trunk's tokens (a Vit, CONCH): `features` of them, with the trunk's own pixel
// mean/std; tokens = the trunk's hidden state config.token_layer, class and register tokens included.
template <class Model>
TileEncoder pooled_vit_encoder(Model model, const models::VitConfig& c, int64_t features, const std::string& kind,
                               const std::string& path, const EmbedConfig& config, const EncoderRuntime& run) {
  model->to(run.device);
  PATHVLM_CHECK(config.token_layer >= -(c.depth + 1) && config.token_layer <= c.depth, "embed.token_layer ",
                config.token_layer, " is outside the ", c.depth + 1, " hidden states of '", path, "' (-", c.depth + 1,
                "..", c.depth, ")");
  TileEncoder encoder = stated_encoder(path, kind, c.image_size, features, c.mean, c.std, c.interpolation, config);
  encoder.token_layer = config.token_layer;
  encoder.token_shape = {static_cast<int64_t>(c.grid()) * c.grid() + c.prefix_tokens(), c.width};
  encoder.encode = [model, run, layer = config.token_layer,
                    normalize = data::PixelNormalizer(run.device, encoder.mean, encoder.std)](
                       const torch::Tensor& pixels, bool tokens) mutable {
    torch::NoGradGuard no_grad;
    compat::CudaAutocastGuard autocast(run.autocast, run.dtype);
    EncodedBatch out;
    // The token layer and the pooled features from one pass.
    out.features = model->pool(model->forward_tokens(normalize(pixels), layer, tokens ? &out.tokens : nullptr));
    out.features = out.features.to(torch::kFloat).cpu();
    if (tokens) out.tokens = out.tokens.to(torch::kFloat).cpu();
    return out;
  };
  return encoder;
}

// A ViT (timm's UNI, Virchow, H-optimus, ...; transformers' Phikon, Midnight, ...), pooled as config.pool says.
TileEncoder vit_tile_encoder(models::Vit vit, const std::string& kind, const std::string& path,
                             const EmbedConfig& config, const EncoderRuntime& run) {
  PATHVLM_CHECK(config.pool != "proj", "embed.pool proj: '", path,
                "' is a ViT without a contrastive projection (CONCH v1 has one)");
  if (config.pool != "auto") vit->set_global_pool(config.pool);
  const auto& c = vit->config();
  return pooled_vit_encoder(vit, c, c.features(), str(kind, ", ", c.global_pool, " pooling"), path, config, run);
}

// CONCH v1 / v1.5: the attention-pooled features CLAM and TRIDENT write, or v1's projection of them (pool: proj).
TileEncoder conch_tile_encoder(const std::string& path, const EmbedConfig& config, const EncoderRuntime& run) {
  PATHVLM_CHECK(config.pool == "auto" || config.pool == "proj", "embed.pool ", config.pool,
                ": CONCH's features are its attention pooling (pool: auto) or, for v1, its projection (pool: proj)");
  models::Conch conch = models::load_conch(path);
  const bool projected = config.pool == "proj";
  conch.model->set_projected(projected, str("embed.pool proj: CONCH ", conch.version, " '", path, "'"));
  return pooled_vit_encoder(conch.model, conch.model->trunk->config(), conch.model->features(),
                            str("CONCH ", conch.version, ", attention pooling", projected ? ", projected" : ""), path,
                            config, run);
}

// CTransPath (a Swin with a convolutional stem): the mean of its last stage's normalised tokens, as CHIEF and TRIDENT
// take it; no token features (its stages differ in width).
TileEncoder ctranspath_tile_encoder(const std::string& path, const EmbedConfig& config, const EncoderRuntime& run) {
  PATHVLM_CHECK(config.pool == "auto", "embed.pool ", config.pool, ": CTransPath's features are its token mean ",
                "(pool: auto)");
  models::Swin swin = models::load_ctranspath(path);
  swin->to(run.device);
  const auto& c = swin->config();
  TileEncoder encoder = stated_encoder(path, "CTransPath (Swin), token mean", c.image_size, c.features(), c.mean,
                                       c.std, c.interpolation, config);
  encoder.encode = [swin, run, normalize = data::PixelNormalizer(run.device, encoder.mean, encoder.std)](
                       const torch::Tensor& pixels, bool) mutable {
    torch::NoGradGuard no_grad;
    compat::CudaAutocastGuard autocast(run.autocast, run.dtype);
    return EncodedBatch{swin->forward(normalize(pixels)).to(torch::kFloat).cpu(), {}};
  };
  return encoder;
}

}  // namespace

TileEncoder load_tile_encoder(const std::string& path, const EmbedConfig& config) {
  const EncoderRuntime run = encoder_runtime(config);
  // CONCH first: its trunk's tensors are a timm ViT's under a prefix.
  if (models::is_conch(path)) return conch_tile_encoder(path, config, run);
  if (models::is_ctranspath(path)) return ctranspath_tile_encoder(path, config, run);
  if (models::is_timm_vit(path)) return vit_tile_encoder(models::load_timm_vit(path), "timm ViT", path, config, run);
  if (models::is_hf_vit(path)) {
    return vit_tile_encoder(models::load_hf_vit(path), "transformers ViT", path, config, run);
  }
  // Another kind of hub model is named as such, not reported as a failed CLIP.
  const std::string type = models::hub_model_type(path);
  PATHVLM_CHECK(type.empty() || type == "clip", "--encoder '", path, "': model_type '", type,
                "' is not an encoder `pathvlm embed` runs: a CLIP (clip), a transformers ViT (vit, dinov2, ",
                "dinov2_with_registers), a timm ViT (config.json with `architecture`), CONCH or CTransPath (their "
                "safetensors)");
  return clip_tile_encoder(path, config, run);
}

std::string describe(const TileEncoder& e) {
  const auto three = [](const std::array<double, 3>& v) { return str("[", v[0], ", ", v[1], ", ", v[2], "]"); };
  return str("encoder '", e.name, "': ", e.kind, ", ", e.image_size, " px input (",
             data::interpolation_name(e.interpolation), " resize), ", e.dim, " features, pixel mean ", three(e.mean),
             " std ", three(e.std));
}

namespace {

struct SlideWork {
  SlideEntry entry;
  std::string coords_file;
  SlideTiles tiles;
  std::string settings;
  std::vector<int64_t> batches;  // indices into the batch list
  std::atomic<bool> cancelled{false};
};

struct BatchJob {
  size_t slide;
  int64_t begin, count;
};

struct BatchResult {
  torch::Tensor pixels;  // uint8 [B,3,S,S]
  std::string error;
};

// Reader threads producing preprocessed batches in any order; the consumer takes them in order. Readers run at
// most `ahead` batches in front of the consumer, so memory stays bounded.
class BatchReader {
 public:
  BatchReader(std::vector<std::unique_ptr<SlideWork>>& slides, std::vector<BatchJob> jobs, const TileEncoder& encoder,
              int threads, int ahead, bool pinned)
      : slides_(slides),
        jobs_(std::move(jobs)),
        image_size_(encoder.image_size),
        interpolation_(encoder.interpolation),
        ahead_(ahead),
        pinned_(pinned) {
    const int n = std::max(1, std::min<int>(threads, static_cast<int>(jobs_.size())));
    for (int t = 0; t < n && !jobs_.empty(); ++t) threads_.emplace_back([this] { run(); });
  }
  ~BatchReader() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  BatchResult take(int64_t index) {
    std::unique_lock<std::mutex> lock(mutex_);
    cv_.wait(lock, [&] { return ready_.count(index) > 0; });
    BatchResult r = std::move(ready_[index]);
    ready_.erase(index);
    consumed_ = index + 1;
    cv_.notify_all();
    return r;
  }

 private:
  void run() {
    // Each thread keeps its own handle on the slide it reads (OpenSlide handles are cheap to share but the
    // scratch buffer in Slide is not).
    std::unique_ptr<Slide> slide;
    std::string slide_path, open_error;
    for (;;) {
      int64_t index;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stop_ || next_ >= static_cast<int64_t>(jobs_.size()) || next_ < consumed_ + ahead_; });
        if (stop_ || next_ >= static_cast<int64_t>(jobs_.size())) return;
        index = next_++;
      }
      const BatchJob& job = jobs_[index];
      SlideWork& work = *slides_[job.slide];
      BatchResult result;
      if (!work.cancelled) {
        try {
          if (slide_path != work.entry.path) {
            slide.reset();
            open_error.clear();
            slide_path = work.entry.path;
            try {
              slide = std::make_unique<Slide>(Slide::open(slide_path));
            } catch (const Error& e) {
              open_error = e.what();
            }
          }
          PATHVLM_CHECK(slide, open_error);
          result.pixels = read_batch(*slide, work.tiles, job.begin, job.count);
        } catch (const std::exception& e) {
          result.error = e.what();
        }
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_[index] = std::move(result);
      }
      cv_.notify_all();
    }
  }

  torch::Tensor read_batch(Slide& slide, const SlideTiles& tiles, int64_t begin, int64_t count) {
    const int s = image_size_;
    auto pixels = torch::empty({count, 3, s, s}, torch::TensorOptions().dtype(torch::kByte).pinned_memory(pinned_));
    auto xy = tiles.coords.accessor<int64_t, 2>();
    const GridGeometry& g = tiles.grid;
    PATHVLM_CHECK(g.read_level < slide.level_count(), "slide '", slide.path(), "': the coords file reads level ",
                  g.read_level, " but the slide has ", slide.level_count(), " levels");
    // A tile may cross the slide's edge (CLAM pads), but one wholly outside it is white pixels from a coords file
    // that belongs to another slide or is damaged.
    const double extent = static_cast<double>(g.read_size) * slide.level(g.read_level).downsample;
    for (int64_t i = 0; i < count; ++i) {
      const int64_t x = xy[begin + i][0], y = xy[begin + i][1];
      PATHVLM_CHECK(x < slide.width() && y < slide.height() && x + extent > 0 && y + extent > 0, "slide '",
                    slide.path(), "': coords row ", begin + i, " (", x, ", ", y, ") lies wholly outside the slide (",
                    slide.width(), "x", slide.height(), " at level 0): are the coords for another slide?");
      auto rgb = slide.read_region(x, y, g.read_level, g.read_size, g.read_size);
      // As TRIDENT: the read region resized to the tile (PIL's default filter, bicubic), then the tile to the encoder's
      // input by its own transform. Each step keeps an image already at its size as it is.
      if (g.read_size != g.patch_size) rgb = data::resize_bicubic(rgb, g.patch_size, g.patch_size);
      pixels[i].copy_(data::resize(rgb, s, s, interpolation_).permute({2, 0, 1}));
    }
    return pixels;
  }

  std::vector<std::unique_ptr<SlideWork>>& slides_;
  std::vector<BatchJob> jobs_;
  const int image_size_;
  const data::Interpolation interpolation_;
  const int ahead_;
  const bool pinned_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::map<int64_t, BatchResult> ready_;
  int64_t next_ = 0, consumed_ = 0;
  bool stop_ = false;
};

// The .h5 files in `dir`; with `broken` also the entries named .h5 that are no readable file (dangling links, ...),
// for inputs that must be counted rather than silently left out.
std::vector<std::string> list_h5(const std::string& dir, bool broken = false) {
  std::vector<std::string> files;
  if (!fs::is_directory(dir)) return files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if ((broken || e.is_regular_file()) && e.path().extension() == ".h5") files.push_back(e.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string embed_settings(const EmbedConfig& c, const TileEncoder& encoder, const SlideTiles& tiles) {
  // Settings added later are written only where they differ from what earlier versions did, so earlier outputs stay
  // valid: they resized the read region straight to the encoder's input, bicubic.
  std::string later;
  const GridGeometry& g = tiles.grid;
  if (encoder.interpolation != data::Interpolation::bicubic)
    later += str("\ninterpolation: ", data::interpolation_name(encoder.interpolation));
  if (g.read_size != g.patch_size && g.patch_size != encoder.image_size)
    later += str("\nresized_via: ", g.patch_size, " px tiles");
  if (c.pool != "auto") later += str("\npool: ", c.pool);
  if (!c.image_mean.empty()) later += str("\nimage_mean: ", cfg::render(c.image_mean));
  if (!c.image_std.empty()) later += str("\nimage_std: ", cfg::render(c.image_std));
  return str("encoder: ", encoder.name, "\nimage_size: ", encoder.image_size, "\ndim: ", encoder.dim,
             "\nprecision: ", c.precision, "\nfeatures_dtype: ", c.features_dtype, "\ntokens: ", c.tokens,
             "\ntoken_layer: ", c.token_layer, "\ntokens_dtype: ", c.tokens_dtype, later, "\ncoords_settings: |\n  ",
             tiles.settings, "\n");
}

// Writers of one slide's outputs, to temp files renamed when the slide is complete.
class SlideWriter {
 public:
  SlideWriter(const std::string& out, const SlideWork& work, const EmbedConfig& config, const TileEncoder& encoder)
      : work_(work),
        features_path_(out + "/features/" + work.entry.id + ".h5"),
        tokens_path_(out + "/tokens/" + work.entry.id + ".h5"),
        dtype_(config.features_dtype == "float16" ? torch::kHalf : torch::kFloat),
        tokens_dtype_(config.tokens_dtype == "float16" ? torch::kHalf : torch::kFloat),
        encoder_(encoder.name),
        token_layer_(encoder.token_layer),
        pixel_normalisation_(data::describe_pixel_normalisation(encoder.mean, encoder.std)) {
    features_file_.emplace(h5::File::create(temp_path(features_path_)));
    const int64_t rows = std::max<int64_t>(1, std::min<int64_t>(256, work.tiles.coords.size(0)));
    features_ = static_cast<h5::Group&>(*features_file_).create("features", dtype_, {encoder.dim},
                                                                {{rows, encoder.dim}, 0, false});
    if (config.tokens) {
      PATHVLM_CHECK(encoder.token_shape.size() == 2, "encoder '", encoder.name, "' does not give token features");
      tokens_file_.emplace(h5::File::create(temp_path(tokens_path_)));
      shards::write_schema(*tokens_file_, shards::ShardKind::TileFeatures);
      const int64_t t = encoder.token_shape[0], w = encoder.token_shape[1];
      token_rows_ =
          static_cast<h5::Group&>(*tokens_file_).create("features", tokens_dtype_, {t, w}, {{1, t, w}, 0, false});
      token_ids_ = tokens_file_->create_strings("ids");
    }
  }

  void append(const EncodedBatch& batch, int64_t begin) {
    features_->append(batch.features.to(dtype_).contiguous());
    if (!tokens_file_) return;
    token_rows_->append(batch.tokens.to(tokens_dtype_).contiguous());
    auto xy = work_.tiles.coords.accessor<int64_t, 2>();
    std::vector<std::string> ids;
    for (int64_t i = 0; i < batch.tokens.size(0); ++i) {
      ids.push_back(str(work_.entry.id, "/", xy[begin + i][0], "_", xy[begin + i][1]));
    }
    token_ids_->append_strings(ids);
  }

  void commit() {
    features_->set_attr("name", work_.entry.id);
    features_->set_attr("encoder", encoder_);
    write_coords_dataset(*features_file_, work_.tiles);
    features_file_->set_attr("settings", work_.settings);
    if (work_.tiles.coords.size(0) == 0) features_file_->set_attr("no_tiles", "the coords file lists no tiles");
    if (tokens_file_) {
      tokens_file_->set_attr("encoder", encoder_);
      tokens_file_->set_attr("token_layer", token_layer_);
      tokens_file_->set_attr("pixel_normalisation", pixel_normalisation_);
    }
    // Closed explicitly: a close that fails (a full disk) is an error here, not a half file renamed into place.
    features_.reset(), token_rows_.reset(), token_ids_.reset();
    features_file_->close();
    features_file_.reset();
    if (tokens_file_) {
      tokens_file_->close();
      tokens_file_.reset();
      shards::seal_shard(temp_path(tokens_path_), tokens_path_);
      fs::remove(temp_path(tokens_path_));
    }
    // The features file last: its presence marks the slide complete.
    commit_file(temp_path(features_path_), features_path_);
  }

  // Removes what a failed slide left: temp files, and a tokens shard without its features file.
  void abandon() {
    features_.reset(), token_rows_.reset(), token_ids_.reset();
    features_file_.reset(), tokens_file_.reset();
    std::error_code ec;
    fs::remove(temp_path(features_path_), ec);
    fs::remove(temp_path(tokens_path_), ec);
    if (!fs::exists(features_path_, ec)) fs::remove(tokens_path_, ec);
  }

 private:

  const SlideWork& work_;
  std::string features_path_, tokens_path_;
  torch::ScalarType dtype_, tokens_dtype_;
  std::string encoder_;
  int token_layer_;
  std::string pixel_normalisation_;
  std::optional<h5::File> features_file_, tokens_file_;
  std::optional<h5::Dataset> features_, token_rows_, token_ids_;
};

}  // namespace

std::vector<SlideOutcome> embed_slides(const EmbedRequest& request, const EmbedConfig& config,
                                       const TileEncoder& encoder, std::vector<SlideEntry>* slides_out) {
  const std::string coords_dir =
      fs::is_directory(fs::path(request.coords) / "patches") ? request.coords + "/patches" : request.coords;
  PATHVLM_CHECK(fs::is_directory(coords_dir), "--coords '", request.coords, "': not a folder");
  const auto coords_files = list_h5(coords_dir, true);
  PATHVLM_CHECK(!coords_files.empty(), "--coords '", request.coords, "': no .h5 coords files in '", coords_dir, "'");
  make_dirs(request.out + "/features");
  if (config.tokens) make_dirs(request.out + "/tokens");

  std::map<std::string, SlideEntry> slide_entries;
  if (!request.slides.empty()) {
    for (const auto& s : list_slides(request.slides)) slide_entries[s.id] = s;
  }

  // Plan: read every coords file, skip finished slides, cut the rest into batches.
  std::vector<std::unique_ptr<SlideWork>> works;
  std::vector<SlideOutcome> outcomes(coords_files.size());
  std::vector<SlideEntry> entries;
  std::vector<BatchJob> jobs;
  std::vector<size_t> scheduled;
  int64_t total_tiles = 0;
  for (size_t i = 0; i < coords_files.size(); ++i) {
    auto work = std::make_unique<SlideWork>();
    work->coords_file = coords_files[i];
    work->entry.id = fs::path(coords_files[i]).stem().string();
    work->entry.path = coords_files[i];
    SlideOutcome& o = outcomes[i];
    try {
      o.stage = "list";
      const std::string problem = input_problem(coords_files[i]);
      PATHVLM_CHECK(problem.empty(), "coords file '", coords_files[i], "': ", problem);
      o.stage = "coords";
      work->tiles = read_coords_h5(coords_files[i]);
      o.mpp = work->tiles.grid.mpp, o.magnification = work->tiles.grid.target_magnification;
      o.tiles = work->tiles.coords.size(0);
      if (o.tiles == 0) o.warning = "0 tiles in the coords file: its features file has 0 rows and the attr no_tiles";
      if (!request.slides.empty()) {
        auto it = slide_entries.find(work->entry.id);
        PATHVLM_CHECK(it != slide_entries.end(), "no slide named '", work->entry.id, "' in --slides '", request.slides,
                      "'");
        const SlideEntry slide = it->second;
        slide_entries.erase(it);  // reported here, whatever happens
        o.stage = "list";
        PATHVLM_CHECK(slide.problem.empty(), "slide '", slide.path, "': ", slide.problem);
        work->entry.path = slide.path;
      } else {
        PATHVLM_CHECK(!work->tiles.slide_path.empty(), "coords file '", coords_files[i],
                      "' does not name its slide (no slide_path attribute); pass --slides");
        work->entry.path = work->tiles.slide_path;
      }
      work->settings = embed_settings(config, encoder, work->tiles);
      const std::string final_path = request.out + "/features/" + work->entry.id + ".h5";
      const bool tokens_done = !config.tokens || file_exists(request.out + "/tokens/" + work->entry.id + ".h5");
      if (file_exists(final_path) && tokens_done && read_settings_attr(final_path) == work->settings) {
        o.status = SlideOutcome::Status::Skipped;
      } else {
        if (file_exists(final_path)) o.note = "redone: the existing output was made with other settings";
        scheduled.push_back(i);
        for (int64_t b = 0; b < o.tiles; b += config.batch_size) {
          work->batches.push_back(static_cast<int64_t>(jobs.size()));
          jobs.push_back({i, b, std::min<int64_t>(config.batch_size, o.tiles - b)});
        }
        total_tiles += o.tiles;
      }
    } catch (const std::exception& e) {
      o.status = SlideOutcome::Status::Failed, o.reason = e.what();
    }
    entries.push_back(work->entry);
    works.push_back(std::move(work));
  }
  // Broken entries of --slides that no coords file asked for are counted too, not dropped.
  for (const auto& [id, entry] : slide_entries) {
    if (entry.problem.empty()) continue;
    SlideOutcome o;
    o.status = SlideOutcome::Status::Failed, o.stage = "list";
    o.reason = str("slide '", entry.path, "' in --slides: ", entry.problem);
    entries.push_back(entry);
    outcomes.push_back(o);
  }

  // Encode in order while the readers work ahead.
  const bool pinned = torch::cuda::is_available() && config.device != "cpu";
  BatchReader reader(works, jobs, encoder, config.readers, config.prefetch_batches, pinned);
  Progress bar("embedding", total_tiles, "tiles");
  for (size_t i : scheduled) {
    SlideWork& work = *works[i];
    SlideOutcome& o = outcomes[i];
    const auto start = std::chrono::steady_clock::now();
    std::unique_ptr<SlideWriter> writer;
    o.stage = "write";
    try {
      writer = std::make_unique<SlideWriter>(request.out, work, config, encoder);
    } catch (const std::exception& e) {
      o.status = SlideOutcome::Status::Failed, o.reason = e.what();
      work.cancelled = true;
    }
    for (int64_t b : work.batches) {
      BatchResult r = reader.take(b);
      if (o.status == SlideOutcome::Status::Failed) continue;
      if (!r.error.empty()) {
        o.status = SlideOutcome::Status::Failed, o.stage = "read", o.reason = r.error;
        work.cancelled = true;
        continue;
      }
      try {
        o.stage = "encode";
        EncodedBatch encoded = encoder.encode(r.pixels, config.tokens);
        o.stage = "write";
        writer->append(encoded, jobs[b].begin);
        bar.advance(jobs[b].count);
      } catch (const std::exception& e) {
        o.status = SlideOutcome::Status::Failed, o.reason = e.what();
        work.cancelled = true;
      }
    }
    if (o.status != SlideOutcome::Status::Failed) {
      try {
        writer->commit();
        o.stage.clear();
      } catch (const std::exception& e) {
        o.status = SlideOutcome::Status::Failed, o.reason = e.what();
      }
    }
    if (o.status == SlideOutcome::Status::Failed && writer) writer->abandon();
    o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  bar.finish();

  write_failures_csv(request.out + "/failures.csv", entries, outcomes);
  pack_slide_shards(request.out, config.slides_per_shard, request.reports);
  if (slides_out) *slides_out = entries;
  return outcomes;
}

void pack_slide_shards(const std::string& out_dir, int slides_per_shard, const std::string& reports_csv) {
  std::map<std::string, std::string> reports;
  if (!reports_csv.empty()) {
    auto rows = read_csv(reports_csv);
    PATHVLM_CHECK(!rows.empty(), "reports CSV '", reports_csv, "': empty");
    int id_col = -1, text_col = -1;
    for (size_t c = 0; c < rows[0].size(); ++c) {
      if (rows[0][c] == "slide_id" || rows[0][c] == "slide") id_col = static_cast<int>(c);
      if (rows[0][c] == "report" || rows[0][c] == "text") text_col = static_cast<int>(c);
    }
    PATHVLM_CHECK(id_col >= 0 && text_col >= 0, "reports CSV '", reports_csv,
                  "': the header needs a slide_id (or slide) and a report (or text) column");
    for (size_t r = 1; r < rows.size(); ++r) {
      PATHVLM_CHECK(rows[r].size() > static_cast<size_t>(std::max(id_col, text_col)), "reports CSV '", reports_csv,
                    "' line ", r + 1, ": too few fields");
      reports[rows[r][id_col]] = rows[r][text_col];
    }
  }
  const std::string shard_dir = out_dir + "/shards";
  make_dirs(shard_dir);
  const auto files = list_h5(out_dir + "/features");
  nlohmann::json shards = nlohmann::json::array();
  int64_t total_tiles = 0, dim = 0;
  std::string encoder;
  std::vector<std::string> written;
  for (size_t first = 0; first < files.size(); first += slides_per_shard) {
    const std::string name = str("slides-", std::string(5 - std::min<size_t>(5, std::to_string(shards.size()).size()), '0'),
                                 shards.size(), ".h5");
    const std::string path = shard_dir + "/" + name;
    int64_t shard_tiles = 0, records = 0;
    try {
      auto shard = h5::File::create(temp_path(path));
      shards::write_schema(shard, shards::ShardKind::Slides);
      std::vector<std::string> report_ids, report_texts;
      for (size_t i = first; i < std::min(files.size(), first + slides_per_shard); ++i) {
        auto in = h5::File::open(files[i]);
        const std::string id = fs::path(files[i]).stem().string();
        auto features_ds = in.dataset("features");
        auto features = features_ds.read();
        SlideTiles tiles = read_coords_h5(files[i]);
        tiles.slide_id = id;
        auto group = shard.require_group("slides/" + id);
        group.write("features", features);
        write_coords_dataset(group, tiles);
        group.set_attr("patch_size", static_cast<int64_t>(tiles.grid.patch_size));
        group.set_attr("patch_size_level0", tiles.grid.patch_size_level0);
        group.set_attr("mpp", tiles.grid.mpp);
        group.set_attr("magnification", tiles.grid.target_magnification);
        encoder = features_ds.has_attr("encoder") ? features_ds.attr_string("encoder") : "";
        group.set_attr("encoder", encoder);
        dim = features.size(1);
        shard_tiles += features.size(0);
        ++records;
        auto report = reports.find(id);
        if (report != reports.end()) report_ids.push_back(id), report_texts.push_back(report->second);
      }
      if (!report_ids.empty()) {
        shard.write_strings("reports/slide_id", report_ids);
        shard.write_strings("reports/text", report_texts);
      }
      shard.close();
      shards::seal_shard(temp_path(path), path);
      fs::remove(temp_path(path));
    } catch (...) {
      std::error_code ec;
      fs::remove(temp_path(path), ec);
      throw;
    }
    written.push_back(name);
    total_tiles += shard_tiles;
    shards.push_back({{"file", name}, {"records", records}, {"tiles", shard_tiles}});
  }
  // Shards of an earlier, larger packing would be listed nowhere: remove them.
  for (const auto& old : list_h5(shard_dir)) {
    const std::string name = fs::path(old).filename().string();
    if (name.rfind("slides-", 0) == 0 && std::find(written.begin(), written.end(), name) == written.end()) {
      fs::remove(old);
    }
  }
  nlohmann::json manifest = {{"pathvlm_manifest", "slides/1"}, {"records", static_cast<int64_t>(files.size())},
                             {"tiles", total_tiles},            {"dim", dim},
                             {"encoder", encoder},              {"shards", shards}};
  write_text_file_atomic(shard_dir + "/manifest.json", manifest.dump(2) + "\n");

  // Token features: one tile_features shard per slide, listed by their own manifest.
  const auto token_files = list_h5(out_dir + "/tokens");
  if (!token_files.empty()) {
    nlohmann::json token_shards = nlohmann::json::array();
    int64_t rows = 0;
    for (const auto& f : token_files) {
      const int64_t n = shards::open_shard(f).dataset("ids").rows();
      token_shards.push_back({{"file", fs::path(f).filename().string()}, {"records", n}});
      rows += n;
    }
    nlohmann::json tm = {{"pathvlm_manifest", "tile_features/1"}, {"records", rows}, {"shards", token_shards}};
    write_text_file_atomic(out_dir + "/tokens/manifest.json", tm.dump(2) + "\n");
  }
}

}  // namespace pathvlm::wsi
