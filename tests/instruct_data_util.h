// A small synthetic instruction set (synth/synth_instruct.h on 32-pixel tiles: 4 train, 2 support and 2 eval tiles
// per class, with its tokenizer), written once per test program into a temporary folder removed at exit.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>

#include "synth/synth_instruct.h"

namespace pathvlm::testing {

inline const synth::SynthInstructReport& tiny_instruct_data() {
  struct Data {
    synth::SynthInstructOptions options;
    synth::SynthInstructReport report;
    Data() {
      options.out_dir =
          (std::filesystem::temp_directory_path() / ("pathvlm_instruct_data_" + std::to_string(::getpid()))).string();
      options.tile_size = 32;
      options.train_per_class = 4;
      options.support_per_class = 2;
      options.eval_per_class = 2;
      options.conversations_per_tile = 2;
      options.text_only = 8;
      options.progress = false;
      report = synth::synth_instruct(options);
    }
    ~Data() { std::filesystem::remove_all(options.out_dir); }
  };
  static const Data data;
  return data.report;
}

}  // namespace pathvlm::testing
