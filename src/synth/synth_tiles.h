// A procedural demo data set of H&E-like tiles with captions, for CLIP training without real data.
//
// `synth_tiles` draws tiles of the eight tissue classes (tissue_texture.h) into three disjoint splits and
// writes, under out_dir:
//   images/<split>/<class>_<nnnnn>.<png|jpg>
//   train.csv, val.csv, zeroshot.csv     filepath,caption,label,class (paths relative to out_dir)
//   zeroshot.yaml                        templates + classes (name, synonyms); label = class position
// Captions vary: templates x class synonyms x findings (e.g. "H&E section of desmoplastic stroma with
// spindle-shaped fibroblasts."). The zero-shot split is held out: its tiles come from other seeds than
// train/val. Everything is a function of the seed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "synth/tissue_texture.h"

namespace pathvlm::synth {

struct SynthTilesOptions {
  std::string out_dir;
  int tile_size = 224;
  int64_t train_per_class = 200;
  int64_t val_per_class = 25;
  int64_t zeroshot_per_class = 25;
  uint64_t seed = 0;
  std::string format = "png";  // png | jpg
  int jpeg_quality = 92;
  int threads = 2;
  bool progress = true;
};

struct SynthTilesReport {
  int64_t train = 0, val = 0, zeroshot = 0;  // tiles written per split
  std::string train_csv, val_csv, zeroshot_csv, zeroshot_yaml;
};

SynthTilesReport synth_tiles(const SynthTilesOptions& options);

// A varied caption of one tile of class `c`; deterministic in `seed`.
std::string synth_caption(TissueClass c, uint64_t seed);

// A class of a zero-shot YAML (eval/zeroshot.h) and the texts its prompts use.
struct ZeroShotClassText {
  std::string name;
  std::vector<std::string> synonyms;
};
// Writes a zero-shot YAML: `comment` on top, the templates, the classes in label order.
void write_zeroshot_yaml(const std::string& path, const std::string& comment,
                         const std::vector<std::string>& templates, const std::vector<ZeroShotClassText>& classes);

// The zero-shot prompt templates and, per class, the synonyms written to zeroshot.yaml.
std::vector<std::string> synth_zeroshot_templates();
std::vector<std::string> synth_class_synonyms(TissueClass c);
// Everything a caption of class `c` may name: its names (the synonyms first) and its findings ("with ...").
std::vector<std::string> synth_class_names(TissueClass c);
std::vector<std::string> synth_class_findings(TissueClass c);

}  // namespace pathvlm::synth
