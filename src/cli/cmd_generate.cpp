// `pathvlm generate`: text from a LLaMA-family model for a batch of prompts (KV cache, left padding, greedy or
// nucleus sampling, EOS and stop strings), as text or JSON lines; prefill and decode speed on stderr.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/device.h"
#include "core/error.h"
#include "core/log.h"
#include "generate/generate.h"
#include "models/llama/weights.h"
#include "synth/slide_synth.h"
#include "text/conversation.h"
#include "text/special_ids.h"
#include "text/tokenizer.h"
#include "train/instruct/task.h"

namespace pathvlm::cli {
namespace {

// A .jsonl file holds one object per line with a string "prompt" (prompts with newlines, PathAsst's
// "###Human: ...\n###Assistant:"); any other file holds one prompt per line. Empty lines are skipped.
std::vector<std::string> read_prompts(const std::string& path) {
  std::ifstream in(path);
  PATHVLM_CHECK(in, "--prompts-file '", path, "': cannot open");
  const bool jsonl = std::filesystem::path(path).extension() == ".jsonl";
  std::vector<std::string> prompts;
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    if (!jsonl) {
      prompts.push_back(line);
      continue;
    }
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(str("--prompts-file '", path, "' line ", number, ": not JSON: ", e.what()));
    }
    PATHVLM_CHECK(record.is_object() && record.contains("prompt") && record["prompt"].is_string(), "--prompts-file '",
                  path, "' line ", number, ": expected an object with a string \"prompt\"");
    prompts.push_back(record["prompt"].get<std::string>());
  }
  PATHVLM_CHECK(!prompts.empty(), "--prompts-file '", path, "' has no prompts");
  return prompts;
}

// bf16 on GPUs (LLaVA's fp16 overflows into NaN/inf for some models; bf16 does not), fp32 on CPUs.
torch::ScalarType pick_dtype(const std::string& name, const torch::Device& device) {
  if (name == "auto") return device.is_cuda() ? torch::kBFloat16 : torch::kFloat32;
  if (name == "fp32") return torch::kFloat32;
  if (name == "bf16") return torch::kBFloat16;
  throw Error(str("--dtype '", name, "': expected auto, fp32 or bf16"));
}

double per_second(int64_t tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0.0; }

// `slide`: the slide asked about (--slide), else "".
void print_generation(const std::string& format, int64_t i, int64_t count, const std::string& prompt,
                      const std::vector<int64_t>& prompt_ids, const generate::Generation& gen,
                      const std::string& slide = "") {
  if (format == "jsonl") {
    nlohmann::json record = {{"prompt", prompt},
                             {"prompt_ids", prompt_ids},
                             {"ids", gen.ids},
                             {"text", gen.text},
                             {"finish_reason", generate::to_string(gen.finish)}};
    if (!slide.empty()) record["slide"] = slide;
    // Byte fallback can cut a character; replace broken UTF-8 instead of failing the whole run.
    std::cout << record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  } else {
    std::cout << "===== prompt " << i + 1 << "/" << count << (slide.empty() ? "" : ", slide " + slide) << " =====\n"
              << prompt << "\n----- output (" << generate::to_string(gen.finish) << ", " << gen.ids.size()
              << " tokens) -----\n"
              << gen.text << "\n\n";
  }
}

void print_stats(int64_t count, const generate::GenerationStats& stats) {
  std::cerr << "generate: " << count << " prompts; prefill " << stats.prefill_tokens << " tokens in "
            << stats.prefill_seconds << " s (" << per_second(stats.prefill_tokens, stats.prefill_seconds)
            << " tokens/s); decode " << stats.decode_tokens << " tokens in " << stats.decode_seconds << " s ("
            << per_second(stats.decode_tokens, stats.decode_seconds) << " tokens/s)\n";
}

// With --image or --slide: the model is an instruct run or a LLaVA checkpoint (with --vision-tower and --template);
// each prompt becomes the human turn of its conversation template with the images in front (unless it places its
// own <image> placeholders), and the reply ends at the template's stop. --image: every prompt sees all
// the files; --slide: every slide is asked every prompt on its own.
int generate_with_images(const ArgParser& parser, const std::vector<std::string>& prompts,
                         const generate::GenerateOptions& options, const std::string& format, int64_t batch_size) {
  PATHVLM_CHECK(!parser.has("tokenizer"), "--tokenizer: an instruct run brings its own tokenizer");
  PATHVLM_CHECK(!(parser.has("image") && parser.has("slide")), "give --image files or --slide ids, not both");
  const auto device = parse_device(parser.get("device"), "--device");
  auto run = train::open_instruct_model(parser.get("model"),
                                        {parser.has("vision-tower") ? parser.get("vision-tower") : "",
                                         parser.has("template") ? parser.get("template") : ""},
                                        device);
  auto& task = *run.task;
  if (pick_dtype(parser.get("dtype"), device) == torch::kBFloat16) task.llava()->to(torch::kBFloat16);

  struct Request {
    std::string prompt, slide;
    torch::Tensor images;  // [n, T, W]: the features of the prompt's placeholders, in order
  };
  std::vector<Request> requests;
  if (parser.has("slide")) {
    PATHVLM_CHECK(parser.has("shards"), "--slide needs --shards: the slides shards or slide CSV manifests that hold "
                  "the slides' tile features");
    task.open_images(parser.get_list("shards"));
    const auto slides = parser.get_list("slide");
    const auto features = task.image_features(slides);
    for (size_t k = 0; k < slides.size(); ++k)
      for (const auto& prompt : prompts)
        requests.push_back({prompt, slides[k], features.narrow(0, static_cast<int64_t>(k), 1)});
  } else {
    const auto features = task.image_file_features(parser.get_list("image"));
    for (const auto& prompt : prompts) requests.push_back({prompt, "", features});
  }

  const auto count = static_cast<int64_t>(requests.size());
  generate::GenerationStats stats;
  for (int64_t start = 0; start < count; start += batch_size) {
    const int64_t end = std::min(count, start + batch_size);
    std::vector<text::Conversation> conversations;
    std::vector<torch::Tensor> images;
    std::vector<std::vector<int64_t>> ids;
    for (int64_t i = start; i < end; ++i) {
      const auto& r = requests[static_cast<size_t>(i)];
      const int64_t n = r.images.size(0);
      std::string turn = r.prompt;
      if (text::count_image_placeholders(turn) == 0) {
        std::string placeholders;
        for (int64_t k = 0; k < n; ++k) placeholders += text::kImagePlaceholder;
        turn = placeholders + "\n" + turn;
      }
      PATHVLM_CHECK(text::count_image_placeholders(turn) == n, "prompt '", r.prompt, "' has ",
                    text::count_image_placeholders(turn), " <image> placeholders for ", n,
                    parser.has("slide") ? " slide" : " --image files");
      conversations.push_back({str("prompt-", i + 1), {{text::Speaker::human, turn}}});
      images.push_back(r.images);
      ids.push_back(task.conversation_template().generation_prompt(conversations.back(), task.tokenizer()).input_ids);
    }
    const auto out = task.reply(conversations, images, options, &stats);
    for (int64_t i = start; i < end; ++i) {
      const auto& r = requests[static_cast<size_t>(i)];
      print_generation(format, i, count, r.prompt, ids[i - start], out[i - start], r.slide);
    }
    std::cout.flush();
  }
  print_stats(count, stats);
  return 0;
}

}  // namespace

int cmd_generate(const Args& args) {
  ArgParser parser("pathvlm generate",
                   "Generate text from a LLaMA-family model (LLaMA, Vicuna, Mistral, Qwen) for each prompt. Prompts "
                   "are encoded with the tokenizer (BOS first, no template added; with --template, each prompt is "
                   "the user turn of that conversation template) and run in batches with left padding "
                   "and a KV cache. Greedy when --temperature is 0, else temperature + top-p sampling with each "
                   "prompt's own stream seeded by --seed (a prompt's output does not depend on its batch). A "
                   "sequence ends at EOS, at a stop string (matched in the decoded text, so it may span tokens; the "
                   "text is cut before it, the ids keep the tokens that completed it) or after --max-new-tokens. "
                   "Prefill and decode tokens/s go to stderr.");
  parser.option("model", "HF LLaMA directory (config.json + safetensors) or run checkpoint; with --image or --slide "
                "an instruct run directory or checkpoint, one of LLaVA's original checkpoints (LLaVA-1.5, "
                "LLaVA-Med v1.5) or a transformers LLaVA directory (llava-hf/llava-1.5-7b-hf, `pathvlm export "
                "--format hf-llava`)", /*required=*/true);
  parser.option("vision-tower", "with --image and one of LLaVA's original checkpoints: the CLIP directory it was "
                "trained with (default: its config.json's mm_vision_tower when that is a local directory)");
  parser.option("template", "the conversation template each prompt is the user turn of, for a chat model (llama_3 "
                "for LLaMA-3-Instruct, chatml for Qwen2.5-Instruct, qwen3 for Qwen3 without thinking, ...; a reply "
                "ends at its end-of-turn token); with --image and a LLaVA checkpoint its default is mistral_instruct "
                "for a Mistral, chatml for a Qwen, else vicuna_v1");
  parser.list("image", "image files (JPEG/PNG) every prompt is asked about, through an instruct run's tower and "
              "template; a prompt without <image> placeholders gets them in front");
  parser.list("slide", "slide ids every prompt is asked about, through an instruct run's slide encoder "
              "(instruct.slide_encoder) and template; the default prompt asks for the report");
  parser.list("shards", "with --slide: `slides` shards or slide CSV manifests holding the slides' tile features");
  parser.option("tokenizer", "tokenizer.model or tokenizer.json (default: the one in the model directory)");
  parser.list("prompt", "prompts, each one argument (use --prompt=TEXT for a prompt that starts with --)");
  parser.option("prompts-file",
                "prompts from a file: a .jsonl file holds one JSON object per line with a string \"prompt\"; any "
                "other file holds one prompt per line; empty lines are skipped");
  parser.option("max-new-tokens", "most tokens generated per prompt", /*required=*/true);
  parser.option("temperature", "0: greedy; > 0: sample from softmax(logits / T)", false, "0");
  parser.option("top-p", "sample from the smallest set of tokens whose probability reaches P", false, "1");
  parser.option("seed", "seed of every prompt's sampling stream", false, "0");
  parser.list("stop", "stop strings (e.g. ### for PathAsst-style prompts)");
  parser.option("format", "text: each prompt and its output in a block; jsonl: one JSON object per prompt with "
                "prompt, prompt_ids, ids (generated only), text, finish_reason (eos|stop|length)", false, "text");
  parser.option("batch-size", "prompts per batch", false, "8");
  parser.option("device", "auto, cpu, cuda or cuda:N (auto: cuda when available)", false, "auto");
  parser.option("dtype", "auto, fp32 or bf16 (auto: bf16 on cuda, fp32 on cpu)", false, "auto");
  if (!parser.parse(args)) return 0;

  std::vector<std::string> prompts = parser.get_list("prompt");
  if (parser.has("prompts-file")) {
    const auto from_file = read_prompts(parser.get("prompts-file"));
    prompts.insert(prompts.end(), from_file.begin(), from_file.end());
  }
  if (prompts.empty() && parser.has("slide")) prompts.push_back(synth::kSlideReportPrompt);
  PATHVLM_CHECK(!prompts.empty(), "nothing to generate: give --prompt TEXT... and/or --prompts-file FILE");
  const auto format = parser.get("format");
  PATHVLM_CHECK(format == "text" || format == "jsonl", "--format '", format, "': expected text or jsonl");
  if (format == "jsonl") log_set_level(LogLevel::Warn);  // stdout carries only the JSON lines
  const int64_t batch_size = parser.get_int("batch-size");
  PATHVLM_CHECK(batch_size >= 1, "--batch-size must be at least 1, got ", batch_size);

  generate::GenerateOptions options;
  options.max_new_tokens = parser.get_int("max-new-tokens");
  PATHVLM_CHECK(options.max_new_tokens >= 1, "--max-new-tokens must be at least 1, got ", options.max_new_tokens);
  options.temperature = parser.get_double("temperature");
  options.top_p = parser.get_double("top-p");
  const auto seed = parser.get_int("seed");
  PATHVLM_CHECK(seed >= 0, "--seed must be >= 0, got ", seed);
  options.seed = static_cast<uint64_t>(seed);
  options.stop = parser.get_list("stop");

  if (parser.has("image") || parser.has("slide")) return generate_with_images(parser, prompts, options, format, batch_size);
  PATHVLM_CHECK(!parser.has("vision-tower"),
                "--vision-tower goes with --image (a LLaVA checkpoint asked about images)");

  const auto model_path = parser.get("model");
  const auto tokenizer_ptr = text::open_tokenizer(parser.has("tokenizer") ? parser.get("tokenizer") : model_path);
  const text::Tokenizer& tokenizer = *tokenizer_ptr;
  const auto device = parse_device(parser.get("device"), "--device");
  auto model = models::load_llama(model_path, pick_dtype(parser.get("dtype"), device), device);
  PATHVLM_CHECK(tokenizer.vocab_size() <= model->config().vocab_size, "tokenizer '", tokenizer.path(), "' has ",
                tokenizer.vocab_size(), " ids but the model '", model_path, "' only ", model->config().vocab_size);
  std::optional<text::ConversationTemplate> tmpl;
  if (parser.has("template")) tmpl = text::ConversationTemplate::named(parser.get("template"));
  options.eos_id = tmpl ? tmpl->reply_end_id(tokenizer) : tokenizer.eos_id();
  if (tmpl) {
    for (const auto& stop : tmpl->stop_strings()) options.stop.push_back(stop);
  }
  if (model->config().pad_token_id >= 0) options.pad_id = model->config().pad_token_id;
  const generate::DecodeFn decode = [&](const std::vector<int64_t>& ids) { return tokenizer.decode(ids); };
  const auto prompt_ids = [&](const std::string& prompt, int64_t index) {
    if (!tmpl) return tokenizer.encode(prompt);
    PATHVLM_CHECK(text::count_image_placeholders(prompt) == 0, "prompt ", index + 1,
                  " holds <image>: give the images with --image (an instruct run or a LLaVA checkpoint)");
    const text::Conversation conversation{"prompt " + std::to_string(index + 1), {{text::Speaker::human, prompt}}};
    return tmpl->generation_prompt(conversation, tokenizer).input_ids;
  };

  generate::GenerationStats stats;
  const auto count = static_cast<int64_t>(prompts.size());
  for (int64_t start = 0; start < count; start += batch_size) {
    const int64_t end = std::min(count, start + batch_size);
    std::vector<std::vector<int64_t>> ids;
    for (int64_t i = start; i < end; ++i) ids.push_back(prompt_ids(prompts[i], i));
    const auto out = generate::generate(model, ids, options, decode, &stats);
    for (int64_t i = start; i < end; ++i) print_generation(format, i, count, prompts[i], ids[i - start], out[i - start]);
    std::cout.flush();
  }
  print_stats(count, stats);
  return 0;
}

}  // namespace pathvlm::cli
