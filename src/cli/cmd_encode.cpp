// `pathvlm encode`: projected embeddings written as safetensors: images and texts with a CLIP model; slides (bags of
// tile features) and reports with a slide model (`slide` task export).
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "core/join.h"
#include "core/log.h"
#include "core/progress.h"
#include "text/clip_tokenizer.h"
#include "text/tokenizer.h"
#include "data/image.h"
#include "models/clip/weights.h"
#include "models/conch/weights.h"
#include "io/safetensors.h"
#include "models/slide/report_model.h"
#include "models/titan/weights.h"
#include "train/slide/task.h"

namespace pathvlm::cli {
namespace {

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  PATHVLM_CHECK(in, "--texts-file '", path, "': cannot open");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(line);
  }
  return lines;
}

std::vector<torch::Tensor> in_batches(const std::vector<std::string>& texts, int64_t batch_size,
                                      const std::function<torch::Tensor(const std::vector<std::string>&)>& embed) {
  std::vector<torch::Tensor> embeds;
  for (size_t start = 0; start < texts.size(); start += batch_size) {
    std::vector<std::string> chunk(texts.begin() + start,
                                   texts.begin() + std::min(texts.size(), start + static_cast<size_t>(batch_size)));
    embeds.push_back(embed(chunk).to(torch::kCPU, torch::kFloat32));
  }
  return embeds;
}

bool is_slide_model(const std::string& path) {
  return std::filesystem::exists(std::filesystem::path(models::slide::slide_export_dir(path)) / "slide_model.yaml");
}

// A slide model: slide_embeds of every slide of --slides (all tiles) and report text embeddings.
safetensors::NamedTensors encode_slides(const ArgParser& parser, const std::string& model_path, torch::Device device,
                                        safetensors::Metadata& metadata) {
  PATHVLM_CHECK(parser.get_list("images").empty(), "--images needs a CLIP model; '", model_path, "' is a slide model");
  auto files = train::open_slide_model(model_path);
  auto& model = files.model;
  model->to(device);
  const auto batch_size = parser.get_int("batch-size");
  safetensors::NamedTensors out;
  const auto sources = parser.get_list("slides");
  if (!sources.empty()) {
    data::SlideBagOptions options;
    options.max_bad_fraction = parser.get_double("max-bad-fraction");
    auto slides = data::SlideBagDataset::open(sources, options);
    PATHVLM_CHECK(slides.feature_dim() == model->encoder_config().input_dim, "--slides have ", slides.feature_dim(),
                  "-d tile features but '", model_path, "' reads ", model->encoder_config().input_dim, "-d ones");
    data::LoaderOptions lo;
    lo.batch_size = batch_size;
    lo.train = false;
    lo.device = device;
    data::Loader loader("slides " + join(sources), slides.size(), slides.builder(/*train=*/false), lo);
    std::vector<torch::Tensor> embeds;
    nlohmann::json ids = nlohmann::json::array();
    while (auto batch = loader.next()) {
      embeds.push_back(model->encode_slide(batch->at("features"), batch->at("coords"), batch->at("mask"))
                           .to(torch::kCPU, torch::kFloat32));
      for (const auto& id : batch->text("slide_id")) ids.push_back(id);
    }
    out.emplace_back("slide_embeds", torch::cat(embeds));
    metadata["slide_ids"] = ids.dump();
  }
  if (parser.has("texts-file")) {
    const auto texts = read_lines(parser.get("texts-file"));
    PATHVLM_CHECK(!texts.empty(), "--texts-file '", parser.get("texts-file"), "' has no lines");
    auto embeds = in_batches(texts, batch_size, [&](const std::vector<std::string>& chunk) {
      return model->encode_report(files.tokenizer->batch(chunk).to(device));
    });
    out.emplace_back("text_embeds", torch::cat(embeds));
  }
  return out;
}

safetensors::NamedTensors encode_clip(const ArgParser& parser, const std::string& model_path, torch::Device device) {
  const auto images = parser.get_list("images");
  const auto batch_size = parser.get_int("batch-size");

  models::ClipLoadOptions options;
  if (parser.has("hidden-act")) options.hidden_act = parser.get("hidden-act");
  auto model = models::load_clip(model_path, options);
  model->to(device);
  model->eval();
  const auto& config = model->config();

  safetensors::NamedTensors out;
  if (!images.empty()) {
    std::vector<torch::Tensor> embeds;
    for (size_t start = 0; start < images.size(); start += batch_size) {
      std::vector<torch::Tensor> pixels;
      for (size_t i = start; i < std::min(images.size(), start + static_cast<size_t>(batch_size)); ++i) {
        auto rgb = data::read_image(images[i]);
        pixels.push_back(data::normalize_openai(data::resize_shortest_and_center_crop(rgb, config.image_size)));
      }
      embeds.push_back(model->encode_image(torch::stack(pixels).to(device)).to(torch::kCPU, torch::kFloat32));
    }
    out.emplace_back("image_embeds", torch::cat(embeds));
  }
  if (parser.has("texts-file")) {
    const auto texts = read_lines(parser.get("texts-file"));
    PATHVLM_CHECK(!texts.empty(), "--texts-file '", parser.get("texts-file"), "' has no lines");
    const auto vocab = parser.has("vocab") ? parser.get("vocab") : models::clip_vocab_of(model_path);
    const text::ClipTokenizer tokenizer(text::clip_vocab_source(vocab, model_path, "--texts-file: pass --vocab"),
                                        config.context_length);
    auto embeds = in_batches(texts, batch_size, [&](const std::vector<std::string>& chunk) {
      return model->encode_text(tokenizer.batch(chunk).to(device));
    });
    out.emplace_back("text_embeds", torch::cat(embeds));
  }
  return out;
}

// CONCH v1 (its converted checkpoint): its image tower projected (encode_image) and its text tower (encode_text), both
// not normalised, with CONCH's tokenizer file; the temperature in the `logit_scale` metadata.
safetensors::NamedTensors encode_conch(const ArgParser& parser, const std::string& model_path, torch::Device device,
                                       safetensors::Metadata& metadata) {
  const auto images = parser.get_list("images");
  const auto batch_size = parser.get_int("batch-size");
  safetensors::NamedTensors out;
  if (!images.empty()) {
    auto conch = models::load_conch(model_path);
    conch.model->set_projected(true, str("--images: CONCH ", conch.version, " '", model_path, "'"));
    conch.model->to(device);
    const auto& trunk = conch.model->trunk->config();
    const auto how = data::parse_interpolation(trunk.interpolation, model_path);
    std::vector<torch::Tensor> embeds;
    for (size_t start = 0; start < images.size(); start += batch_size) {
      std::vector<torch::Tensor> pixels;
      for (size_t i = start; i < std::min(images.size(), start + static_cast<size_t>(batch_size)); ++i) {
        // CONCH's eval transform: shortest side to its input, center crop, its pixel statistics.
        const auto rgb = data::resize_shortest_and_center_crop(data::read_image(images[i]), trunk.image_size, how);
        pixels.push_back(data::normalize_image(rgb, trunk.mean, trunk.std));
      }
      embeds.push_back(conch.model->forward(torch::stack(pixels).to(device)).to(torch::kCPU, torch::kFloat32));
    }
    out.emplace_back("image_embeds", torch::cat(embeds));
  }
  if (parser.has("texts-file")) {
    const auto texts = read_lines(parser.get("texts-file"));
    PATHVLM_CHECK(!texts.empty(), "--texts-file '", parser.get("texts-file"), "' has no lines");
    auto text = models::load_conch_text(model_path);
    text.model->to(device);
    metadata["logit_scale"] = str(text.logit_scale);
    const auto tokenizer = models::open_conch_tokenizer(model_path, parser.has("vocab") ? parser.get("vocab") : "");
    auto embeds = in_batches(texts, batch_size, [&](const std::vector<std::string>& chunk) {
      return text.model->encode(*tokenizer, chunk);
    });
    out.emplace_back("text_embeds", torch::cat(embeds));
  }
  return out;
}

// TITAN: every slide of --slides, all its tiles, to its slide embedding (encode_slide_from_patch_features), one
// slide per forward pass as TITAN runs.
safetensors::NamedTensors encode_titan(const ArgParser& parser, const std::string& model_path, torch::Device device,
                                       safetensors::Metadata& metadata) {
  PATHVLM_CHECK(parser.get_list("images").empty() && !parser.has("texts-file"), "'", model_path,
                "' is TITAN's slide encoder: it encodes --slides (its text tower is not supported)");
  const auto sources = parser.get_list("slides");
  PATHVLM_CHECK(!sources.empty(), "TITAN '", model_path, "' encodes slides: give --slides");
  const int64_t fallback_size = parser.has("patch-size-level0") ? parser.get_int("patch-size-level0") : 0;
  PATHVLM_CHECK(!parser.has("patch-size-level0") || fallback_size > 0, "--patch-size-level0 must be positive, got ",
                fallback_size);
  auto titan = models::load_titan(model_path);
  titan->to(device);
  data::SlideBagOptions options;
  options.max_bad_fraction = parser.get_double("max-bad-fraction");
  options.reports_required = false;
  const auto slides = data::SlideBagDataset::open(sources, options);
  log_info(slides.report().summary());
  PATHVLM_CHECK(slides.feature_dim() == titan->config().input_dim, "--slides have ", slides.feature_dim(),
                "-d tile features but TITAN '", model_path, "' reads ", titan->config().input_dim,
                "-d ones (CONCH v1.5's: `pathvlm embed --encoder` with conchv1_5)");
  // Every slide's tile size known before the first forward pass.
  std::vector<int64_t> sizes;
  for (int64_t i = 0; i < slides.size(); ++i) {
    const auto& info = slides.slide(i);
    sizes.push_back(info.patch_size_level0 > 0 ? info.patch_size_level0 : fallback_size);
    PATHVLM_CHECK(sizes.back() > 0, "slide '", info.id, "' (", info.source, ") does not record patch_size_level0 ",
                  "(TRIDENT's coords attribute), which TITAN's grid needs: give --patch-size-level0 (the tiles' edge ",
                  "in level-0 pixels, e.g. 1024 for 512 px tiles at 20x of a 40x slide)");
  }
  std::vector<torch::Tensor> embeds;
  nlohmann::json ids = nlohmann::json::array();
  Progress progress("titan", slides.size(), "slides");
  for (int64_t i = 0; i < slides.size(); ++i) {
    const auto [features, coords] = slides.read_tiles(i, slides.tile_rows(i, /*train=*/false, 0, 0));
    embeds.push_back(titan->forward(features, coords, sizes[i]).to(torch::kCPU, torch::kFloat32));
    ids.push_back(slides.slide(i).id);
    progress.advance(1, {{"tiles", slides.slide(i).tiles}});
  }
  progress.finish();
  metadata["slide_ids"] = ids.dump();
  return {{"slide_embeds", torch::stack(embeds)}};
}

}  // namespace

int cmd_encode(const Args& args) {
  ArgParser parser("pathvlm encode",
                   "Embed images and texts with a CLIP model or CONCH v1, slides and reports with a slide model, or "
                   "slides with TITAN; "
                   "writes image_embeds [N,embed] / slide_embeds [N,embed] (slide ids in the `slide_ids` metadata) and "
                   "text_embeds [M,embed] (float32, projected, not normalised) to a safetensors file (with CONCH, its "
                   "temperature in the `logit_scale` metadata). Images of the model's size are only normalised; "
                   "others are resized (shortest side, bicubic) and center-cropped as CLIPImageProcessor and CONCH's "
                   "transform do. Slides are encoded with all their tiles.");
  parser.option("model",
                "HF CLIP directory, export, run checkpoint (step dir or run dir) or open_clip .safetensors; CONCH v1 "
                "(its pytorch_model.bin converted to model.safetensors); a slide run or its export; or TITAN "
                "(MahmoodLab/TITAN's directory: slide embeddings of CONCH v1.5 tile features)",
                /*required=*/true);
  parser.list("images", "image files (JPEG or PNG)");
  parser.list("slides",
              "slides: `slides` shards (manifest.json, folder or .h5) or CSV manifests of TRIDENT/CLAM files");
  parser.option("max-bad-fraction", "share of --slides that may be missing or unreadable (skipped)", false, "0");
  parser.option("patch-size-level0", "TITAN: the tiles' edge in level-0 pixels, for --slides whose files do not "
                                      "record it (TRIDENT's coords attribute patch_size_level0)");
  parser.option("texts-file", "text file, one text per line");
  parser.option("vocab", "CLIP BPE (bpe_simple_vocab_16e6.txt.gz) or HF tokenizer directory, for --texts-file "
                         "(default: the model's own: an HF directory's files, a run's clip.vocab); for CONCH its "
                         "tokenizer file, conch_byte_level_bpe_uncased.json (default: the model directory's "
                         "tokenizer.json)");
  parser.option("out", "output .safetensors file", /*required=*/true);
  parser.option("batch-size", "images or texts per forward pass", false, "32");
  parser.option("device", "auto, cpu, cuda or cuda:N", false, "auto");
  parser.option("hidden-act", "activation for open_clip weights without open_clip_config.json (quick_gelu|gelu)");
  if (!parser.parse(args)) return 0;
  const auto images = parser.get_list("images");
  PATHVLM_CHECK(!images.empty() || !parser.get_list("slides").empty() || parser.has("texts-file"),
                "nothing to encode: give --images (CLIP), --slides (slide model) and/or --texts-file");
  const auto batch_size = parser.get_int("batch-size");
  PATHVLM_CHECK(batch_size >= 1, "--batch-size must be at least 1, got ", batch_size);
  const auto model_path = parser.get("model");
  const auto device = parse_device(parser.get("device"), "--device");
  torch::NoGradGuard no_grad;
  safetensors::Metadata metadata{{"format", "pt"}, {"model", model_path}};
  safetensors::NamedTensors out;
  if (is_slide_model(model_path)) {
    out = encode_slides(parser, model_path, device, metadata);
  } else if (models::is_titan(model_path)) {
    out = encode_titan(parser, model_path, device, metadata);
  } else if (models::is_conch(model_path)) {
    PATHVLM_CHECK(parser.get_list("slides").empty(), "--slides needs a slide model; '", model_path, "' is CONCH");
    out = encode_conch(parser, model_path, device, metadata);
  } else {
    PATHVLM_CHECK(parser.get_list("slides").empty(),
                  "--slides needs a slide model (a `slide` run or its export); '", model_path,
                  "' is not one");
    out = encode_clip(parser, model_path, device);
  }
  safetensors::save(parser.get("out"), out, metadata);
  std::cout << "encode: wrote";
  for (const auto& [name, tensor] : out) std::cout << " " << name << " " << tensor.sizes();
  std::cout << " to " << parser.get("out") << "\n";
  return 0;
}

}  // namespace pathvlm::cli
