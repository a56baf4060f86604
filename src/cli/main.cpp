// The `pathvlm` program: dispatches to one subcommand; errors are printed and end the process non-zero.
// Exit status (docs/training.md): 0 done; 1 usage (no or unknown command); 2 an error, printed (under mpirun
// too: the failing rank ends the job with 2); 42 `train` checkpointed after SIGUSR1/SIGTERM, requeue me; a
// command may document its own (shards validate: 1 when a shard has bad records).
#include <cstring>
#include <iostream>

#include "cli/commands.h"
#include "core/error.h"
#include "train/preemption.h"

namespace pathvlm::cli {

const std::vector<Command>& commands() {
  static const std::vector<Command> table = {
      {"version", "print the version and the optional parts built in", cmd_version},
      {"shards", "build, inspect or validate HDF5 shards (build|inspect|validate)", cmd_shards},
      {"weights", "list or reshard safetensors weights (inspect|reshard)", cmd_weights},
      {"train", "train the task named by run.task (lm, clip, ...) on one or many processes", cmd_train},
      {"config", "show a resolved job config, or list every key (show|docs)", cmd_config},
      {"tile", "segment tissue and lay tile grids on whole slides (coords .h5 per slide)", cmd_tile},
      {"embed", "tile features of whole slides with a CLIP image tower (HDF5 shards)", cmd_embed},
      {"tokenize", "CLIP BPE or language-model token ids of texts from stdin, one JSON array per line", cmd_tokenize},
      {"encode", "embeddings of images, texts and slides (CLIP, CONCH, slide models, TITAN) as safetensors",
       cmd_encode},
      {"probe", "linear probe of embeddings: logistic regression, C chosen on validation, test metrics", cmd_probe},
      {"synth", "procedural demo data: captioned H&E-like tiles, pyramidal slides (tiles|slides)", cmd_synth},
      {"export", "export a checkpoint for other tools (hf-clip, hf-llava, llava-projector)", cmd_export},
      {"eval", "zero-shot classification and retrieval metrics of a CLIP, on every rank", cmd_eval},
      {"instruct", "instruction-tuning data: samples with their supervised spans (inspect)", cmd_instruct},
      {"generate", "text from a LLaMA-family model for prompts (KV cache, batches, sampling, stop strings)",
       cmd_generate},
      {"sweep", "expand a sweep file into runs and launch them locally or as a SLURM job array; status", cmd_sweep},
      {"runs", "compare runs: table of progress and metrics, best config, a plot (compare)", cmd_runs},
  };
  return table;
}

}  // namespace pathvlm::cli

namespace {

void print_usage() {
  std::cout << "usage: pathvlm <command> [options]\n\n"
               "Distributed training of pathology vision-language models.\n\ncommands:\n";
  for (const auto& c : pathvlm::cli::commands()) std::printf("  %-10s %s\n", c.name, c.summary);
  std::cout << "\n`pathvlm <command> --help` lists a command's options.\n";
}

}  // namespace

int main(int argc, char** argv) {
  // First, before anything slow (MPI, configs, data): a SIGUSR1 / SIGTERM during start-up is kept, and the
  // trainer checkpoints at its first step boundary, instead of the default action killing the job unsaved.
  if (argc >= 2 && !std::strcmp(argv[1], "train")) pathvlm::train::install_preemption_handlers();
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h") || !std::strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 1 : 0;
  }
  std::string name = argv[1];
  if (name == "--version") name = "version";
  for (const auto& c : pathvlm::cli::commands()) {
    if (name != c.name) continue;
    try {
      return c.run(pathvlm::cli::Args(argv + 2, argv + argc));
    } catch (const pathvlm::Error& e) {
      std::cerr << "pathvlm " << name << ": error: " << e.what() << "\n";
      return pathvlm::kExitError;
    } catch (const std::exception& e) {
      std::cerr << "pathvlm " << name << ": unexpected error: " << e.what() << "\n";
      return pathvlm::kExitError;
    }
  }
  std::cerr << "pathvlm: unknown command '" << name << "' (see `pathvlm --help`)\n";
  return 1;
}
