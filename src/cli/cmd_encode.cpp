// `pathvlm encode`: projected CLIP embeddings of images and texts, written as safetensors.
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "text/clip_tokenizer.h"
#include "data/image.h"
#include "models/clip/weights.h"
#include "io/safetensors.h"

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

// The tokenizer for texts: --vocab, else HF tokenizer files next to the model.
std::string find_vocab(const ArgParser& parser, const std::string& model_path) {
  if (parser.has("vocab")) return parser.get("vocab");
  namespace fs = std::filesystem;
  if (fs::is_directory(model_path) && fs::exists(fs::path(model_path) / "merges.txt")) return model_path;
  throw Error(str("--texts-file needs the CLIP tokenizer: pass --vocab bpe_simple_vocab_16e6.txt.gz (or an HF "
                  "tokenizer directory); '", model_path, "' has no merges.txt"));
}

torch::Device pick_device(const std::string& name) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  try {
    torch::Device device(name);
    PATHVLM_CHECK(!device.is_cuda() || torch::cuda::is_available(), "--device ", name, ": CUDA is not available");
    return device;
  } catch (const c10::Error&) {
    throw Error(str("--device '", name, "': expected auto, cpu, cuda or cuda:N"));
  }
}

}  // namespace

int cmd_encode(const Args& args) {
  ArgParser parser("pathvlm encode",
                   "Embed images and texts with a CLIP model; writes image_embeds [N,embed] and text_embeds [M,embed] "
                   "(float32, projected, not normalised) to a safetensors file. Images of the model's size are only "
                   "normalised; others are resized (shortest side, bicubic) and center-cropped as CLIPImageProcessor "
                   "does.");
  parser.option("model", "HF CLIP directory, export, run checkpoint (step dir or run dir) or open_clip .safetensors",
                /*required=*/true);
  parser.list("images", "image files (JPEG or PNG)");
  parser.option("texts-file", "text file, one text per line");
  parser.option("vocab", "CLIP BPE (bpe_simple_vocab_16e6.txt.gz) or HF tokenizer directory, for --texts-file");
  parser.option("out", "output .safetensors file", /*required=*/true);
  parser.option("batch-size", "images or texts per forward pass", false, "32");
  parser.option("device", "auto, cpu, cuda or cuda:N", false, "auto");
  parser.option("hidden-act", "activation for open_clip weights without open_clip_config.json (quick_gelu|gelu)");
  if (!parser.parse(args)) return 0;
  const auto images = parser.get_list("images");
  PATHVLM_CHECK(!images.empty() || parser.has("texts-file"), "nothing to encode: give --images and/or --texts-file");
  const auto batch_size = parser.get_int("batch-size");
  PATHVLM_CHECK(batch_size >= 1, "--batch-size must be at least 1, got ", batch_size);

  models::ClipLoadOptions options;
  if (parser.has("hidden-act")) options.hidden_act = parser.get("hidden-act");
  const auto model_path = parser.get("model");
  auto model = models::load_clip(model_path, options);
  const auto device = pick_device(parser.get("device"));
  model->to(device);
  model->eval();
  torch::NoGradGuard no_grad;
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
    text::ClipTokenizer tokenizer(find_vocab(parser, model_path), config.context_length);
    std::vector<torch::Tensor> embeds;
    for (size_t start = 0; start < texts.size(); start += batch_size) {
      std::vector<std::string> chunk(texts.begin() + start,
                                     texts.begin() + std::min(texts.size(), start + static_cast<size_t>(batch_size)));
      embeds.push_back(model->encode_text(tokenizer.batch(chunk).to(device)).to(torch::kCPU, torch::kFloat32));
    }
    out.emplace_back("text_embeds", torch::cat(embeds));
  }
  safetensors::save(parser.get("out"), out, {{"format", "pt"}, {"model", model_path}});
  std::cout << "encode: wrote";
  for (const auto& [name, tensor] : out) std::cout << " " << name << " " << tensor.sizes();
  std::cout << " to " << parser.get("out") << "\n";
  return 0;
}

}  // namespace pathvlm::cli
