// LLaMA weights: HF directories in (piece by piece, straight into the target dtype), HF directories out.
#include "models/llama/weights.h"

#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/llava/hf_layout.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/tokenizer.h"

namespace pathvlm::models {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Where the config and the weights of `dir_or_file` are (safetensors::Checkpoint::open refuses pickles and
// directories without weights).
struct Source {
  fs::path config;
  std::string weights;  // what safetensors::Checkpoint::open takes
};

Source locate(const std::string& dir_or_file) {
  const fs::path p(dir_or_file);
  PATHVLM_CHECK(fs::exists(p), "LLaMA weights '", dir_or_file, "': no such file or directory");
  return {fs::is_directory(p) ? p / "config.json" : p.parent_path() / "config.json", dir_or_file};
}

// Tensors of HF checkpoints that are not the language model's: the RoPE frequencies older transformers saved, and
// the projector and vision tower LLaVA's original checkpoints keep beside it (models/llava/checkpoint.h).
bool ignorable(const std::string& name) {
  return ends_with(name, ".rotary_emb.inv_freq") || name.rfind("model.mm_projector.", 0) == 0 ||
         name.rfind("model.vision_tower.", 0) == 0;
}

// Hints the kernel to drop the file pages under a tensor that was copied out of the mapping, so that a load with
// a dtype conversion does not also keep the whole file resident. Only whole pages inside the tensor's own bytes
// are named, and paging out is never destructive (a later read faults the bytes back in from the file).
void release_pages(const torch::Tensor& source) {
#ifdef MADV_PAGEOUT  // Linux 5.4+; elsewhere the pages stay until the mapping closes at the end of the load
  static const uintptr_t page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto begin = reinterpret_cast<uintptr_t>(source.data_ptr());
  const auto end = begin + source.numel() * source.element_size();
  const uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
  if (last > first) ::madvise(reinterpret_cast<void*>(first), last - first, MADV_PAGEOUT);
#endif
}

}  // namespace

LlamaForCausalLM load_llama(const std::string& dir_or_file, torch::ScalarType dtype, torch::Device device,
                            const LlamaOptions& options) {
  const auto source = locate(dir_or_file);
  const auto ckpt = safetensors::Checkpoint::open(source.weights);  // first: pickles are refused before the config
  PATHVLM_CHECK(fs::exists(source.config), "LLaMA weights '", dir_or_file, "': no config.json beside them ('",
                source.config.string(), "')");
  const auto config = parse_hf_llama_config(read_text_file(source.config), source.config.string());
  const std::string where = str("LLaMA weights '", dir_or_file, "'");
  // A transformers LlavaForConditionalGeneration holds the language model under its own prefixes.
  const auto llava = HfLlavaLayout::of([&](const std::string& name) { return ckpt.contains(name); });
  const auto stored_name = [&](const std::string& name) { return llava ? llava->language_model_name(name) : name; };

  std::set<std::string> loaded;
  LlamaOptions build = options;
  build.init_weights = false;
  build.on_built = [&](const std::string& prefix, torch::nn::Module& piece) {
    torch::NoGradGuard no_grad;
    for (auto& item : piece.named_parameters()) {
      const auto name = stored_name(prefix + "." + item.key());
      auto& param = item.value();
      PATHVLM_CHECK(ckpt.contains(name), where, ": lacks tensor '", name, "' (", source.config.string(),
                    " describes ", config.num_hidden_layers, " layers",
                    config.tie_word_embeddings ? ", tied embeddings" : ", an untied lm_head", ")");
      const auto& info = ckpt.info(name);
      PATHVLM_CHECK(c10::IntArrayRef(info.shape) == param.sizes(), where, ": tensor '", name, "' in '",
                    ckpt.file_of(name), "' has shape ", c10::IntArrayRef(info.shape), ", the model expects ",
                    param.sizes(), " (from ", source.config.string(), ")");
      safetensors::check_convertible(info.dtype, dtype, str(where, " ('", ckpt.file_of(name), "')"), name);
      const auto stored = ckpt.get(name);
      // Same dtype on the CPU: the parameter is the copy-on-write view of the mapping itself.
      auto value = stored.to(device, dtype);
      if (!value.is_same(stored)) release_pages(stored);
      param.set_data(value);
      loaded.insert(name);
    }
  };
  LlamaForCausalLM model(config, build);

  std::vector<std::string> extra;
  for (const auto& name : ckpt.names()) {
    const bool tied_head = config.tie_word_embeddings && name == stored_name("lm_head.weight");
    const bool llava_part = llava && (llava->in_vision_tower(name) || llava->in_projector(name));
    if (!loaded.count(name) && !ignorable(name) && !tied_head && !llava_part) extra.push_back(name);
  }
  PATHVLM_CHECK(extra.empty(), where, ": ", extra.size(), " tensors are not parameters of the LlamaForCausalLM ",
                source.config.string(), " describes, e.g. '", extra.empty() ? "" : extra.front(), "' in '",
                extra.empty() ? "" : ckpt.file_of(extra.front()), "'");
  return model;
}

std::string hf_llama_generation_config_json(const LlamaConfig& config) {
  json j = {{"bos_token_id", config.bos_token_id >= 0 ? json(config.bos_token_id) : json(nullptr)},
            {"eos_token_id", config.eos_token_id},
            {"do_sample", false},
            {"transformers_version", "4.45.0"}};
  if (config.pad_token_id >= 0) j["pad_token_id"] = config.pad_token_id;
  return j.dump(2) + "\n";
}

void export_hf_llama(LlamaForCausalLM& model, const std::string& out_dir, torch::ScalarType dtype,
                     uint64_t max_shard_bytes, const std::string& tokenizer_source) {
  const fs::path out(out_dir);
  std::error_code ec;
  fs::create_directories(out, ec);
  PATHVLM_CHECK(!ec, "export '", out_dir, "': cannot create the directory: ", ec.message());

  safetensors::NamedTensors tensors;
  for (const auto& item : model->named_parameters()) {
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU, dtype).contiguous());
  }
  safetensors::save_sharded(out_dir, tensors, max_shard_bytes, {{"format", "pt"}});
  tensors.clear();
  write_text_file(out / "config.json", hf_llama_config_json(model->config(), dtype));
  write_text_file(out / "generation_config.json", hf_llama_generation_config_json(model->config()));

  if (tokenizer_source.empty()) return;
  const fs::path tok(tokenizer_source);
  if (fs::is_regular_file(tok)) {
    text::open_tokenizer(tokenizer_source)->save_hf(out_dir);
    return;
  }
  PATHVLM_CHECK(fs::is_directory(tok), "export '", out_dir, "': tokenizer source '", tokenizer_source,
                "' is neither a model directory nor a tokenizer file");
  PATHVLM_CHECK(fs::exists(tok / "tokenizer.model") || fs::exists(tok / "tokenizer.json"), "export '", out_dir,
                "': tokenizer source '", tokenizer_source, "' holds neither tokenizer.model nor tokenizer.json");
  for (const char* name : {"tokenizer.model", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                           "added_tokens.json"}) {
    const auto from = tok / name, to = out / name;
    if (!fs::exists(from) || (fs::exists(to) && fs::equivalent(from, to))) continue;
    fs::copy_file(from, to, fs::copy_options::overwrite_existing, ec);
    PATHVLM_CHECK(!ec, "export '", out_dir, "': cannot copy '", from.string(), "': ", ec.message());
  }
  // A tokenizer.model alone (Vicuna): the tokenizer.json transformers 5 reads first, made from it.
  if (!fs::exists(out / "tokenizer.json")) {
    const auto json = text::SentencePieceTokenizer((tok / "tokenizer.model").string()).tokenizer_json();
    if (!json.empty()) write_text_file(out / "tokenizer.json", json);
  }
}

}  // namespace pathvlm::models
