#include "train/clip/image_text_encoder.h"

#include "core/error.h"
#include "models/conch/weights.h"

namespace pathvlm::train {

ImageTextEncoder conch_encoder(const std::string& path, const std::string& vocab, torch::Device device) {
  auto vision = models::load_conch(path);
  auto text = models::load_conch_text(path);  // before set_projected: v1.5's error is that it has no text tower
  vision.model->set_projected(true, str("CONCH ", vision.version, " '", path, "'"));
  std::shared_ptr<const text::Tokenizer> tokenizer = models::open_conch_tokenizer(path, vocab);
  const auto& trunk = vision.model->trunk->config();
  PATHVLM_CHECK(vision.model->features() == text.model->config().embed_dim, "CONCH '", path, "': the image tower ",
                "projects to ", vision.model->features(), " features but the text tower to ",
                text.model->config().embed_dim);

  ImageTextEncoder e;
  e.description = str("CONCH ", vision.version, " (ViT ", trunk.image_size, "/", trunk.patch_size, " ", trunk.depth,
                      "x", trunk.width, ", text ", text.model->config().layers, "x", text.model->config().width,
                      ", embed ", text.model->config().embed_dim, ")");
  e.modules = std::make_shared<torch::nn::Module>("Conch");
  e.modules->register_module("visual", vision.model);
  e.modules->register_module("text", text.model);
  e.modules->to(device);
  e.embed_dim = text.model->config().embed_dim;
  e.logit_scale = text.logit_scale;  // run_zeroshot's exp(logit_scale)
  e.image_size = trunk.image_size;
  e.mean = trunk.mean;
  e.std = trunk.std;
  e.interpolation = data::parse_interpolation(trunk.interpolation, path);
  e.images = [model = vision.model](const torch::Tensor& pixels) mutable { return model->forward(pixels); };
  e.texts = [model = text.model, tokenizer](const std::vector<std::string>& texts) mutable {
    return model->encode(*tokenizer, texts);
  };
  return e;
}

}  // namespace pathvlm::train
