// `pathvlm instruct inspect`: instruction samples exactly as the instruct task trains on them (template, masks,
// truncation), so a user sees what the loss covers before spending GPU hours.
//
//   pathvlm instruct inspect demo/instruct/phase2.json --config configs/instruct/demo_phase2.yaml --limit 3
//   pathvlm instruct inspect data.json --config c.yaml --format jsonl     # {"id","input_ids","labels"} per line
#include <iostream>
#include <memory>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "data/instruct_dataset.h"
#include "text/conversation_inspect.h"
#include "train/instruct/task.h"
#include "train/job_config.h"

namespace pathvlm::cli {
namespace {

int inspect_verb(const Args& args) {
  ArgParser p("pathvlm instruct inspect",
              "Print instruction samples as the instruct task of CONFIG tokenizes them: text mode marks each "
              "supervised span with [[ ]] (the loss covers exactly those tokens); jsonl mode prints one object per "
              "sample with id, input_ids (-200 per image, as LLaVA writes them) and labels (-100 where masked). The "
              "per-file report (malformed, unfit, missing images, truncation) goes to stderr.");
  p.positional("data", "LLaVA record files (.json / .jsonl), folders or globs; default: the config's instruct.data.train",
               true, false);
  p.option("config", "job config with an instruct section (template, language_model or tokenizer, max_length)", true);
  p.option("limit", "print at most this many samples (0 = all; default 5)");
  p.option("format", "text (default) or jsonl");
  p.list("set", "key=value overrides of the config");
  if (!p.parse(args)) return 0;
  const std::string format = p.has("format") ? p.get("format") : "text";
  PATHVLM_CHECK(format == "text" || format == "jsonl", "--format '", format, "': expected text or jsonl");
  const int64_t limit = p.has("limit") ? p.get_int("limit") : 5;
  PATHVLM_CHECK(limit >= 0, "--limit must be 0 or more");

  cfg::Document doc = cfg::Document::from_file(p.get("config"));
  if (p.has("set")) doc.override_with(p.get_list("set"));
  const JobConfig job = cfg::read<JobConfig>(doc);
  const auto& cfg = job.task_config<train::InstructConfig>();
  const auto paths = p.positionals().empty() ? cfg.data.train : p.positionals();
  PATHVLM_CHECK(!paths.empty(), "no data: give record files or set instruct.data.train in '", p.get("config"), "'");

  const auto tokenizer = train::make_instruct_tokenizer(cfg);
  const auto tmpl = text::ConversationTemplate::named(cfg.conversation_template);
  data::InstructDatasetOptions options;
  options.key = "instruct inspect";
  options.max_malformed_fraction = cfg.data.max_malformed_fraction;
  options.max_missing_images_fraction = cfg.data.max_missing_images_fraction;
  options.max_length = cfg.max_length;
  // With image sources in the config the images are looked up too, so missing ones show in the report; the tower
  // built for their size and colours also gives the image rows (loaded once).
  const bool looks_up_images = !cfg.data.images.empty();
  const auto tower = looks_up_images && cfg.slide_encoder.empty() ? train::make_instruct_vision_tower(cfg) : nullptr;
  options.image_tokens = tower ? tower->num_tokens() : train::instruct_image_tokens(cfg);
  std::shared_ptr<const data::InstructImages> images;
  if (looks_up_images) {
    images = std::make_shared<const data::InstructImages>(
        train::open_instruct_images(cfg, cfg.data.images, tower ? &tower->shape() : nullptr));
  }
  const auto ds = data::InstructDataset::build(paths, tmpl, *tokenizer, images, options);

  const int64_t shown = limit == 0 ? ds.size() : std::min(limit, ds.size());
  for (int64_t i = 0; i < shown; ++i) {
    const auto& s = ds.sample(i);
    if (format == "jsonl") {
      std::cout << text::sequence_json(s.id, s.sequence) << "\n";
      continue;
    }
    std::cout << "== " << s.id << " (" << s.source << "): " << s.sequence.input_ids.size() << " tokens, "
              << s.sequence.images() << " image(s), " << s.sequence.positions(options.image_tokens)
              << " positions, " << s.sequence.supervised_tokens() << " supervised, template " << tmpl.name()
              << "\n"
              << text::render_supervision(s.sequence, *tokenizer) << "\n\n";
  }
  std::cerr << ds.report();
  return 0;
}

const std::vector<Verb> kVerbs = {
    {"inspect", "print samples with their supervised spans marked, or as ids and labels (jsonl)", inspect_verb},
};

}  // namespace

int cmd_instruct(const Args& args) {
  return run_verb("instruct", "", "Instruction-tuning data tools (the instruct task's samples).", kVerbs, args);
}

}  // namespace pathvlm::cli
