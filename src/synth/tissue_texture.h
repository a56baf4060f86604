// Procedural H&E-like tissue textures for demo data: synthetic tiles (clip) and synthetic slides (slide).
//
// Each class has its own look: nuclei density, size and shape, stroma fibres, fat vacuoles, mucus wisps,
// necrotic debris, glands, empty background. Deterministic: the same (class, size, seed) gives the same
// pixels on every machine (own integer RNG, no torch RNG, no threads).
//
//   auto tile = draw_tissue(TissueClass::Tumor, 224, 224, /*seed=*/17);  // uint8 [224,224,3]
//   for (auto c : all_tissue_classes()) std::cout << tissue_class_name(c);
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::synth {

enum class TissueClass : int {
  Tumor = 0,        // dense, large, pleomorphic, hyperchromatic nuclei
  Lymphocytes = 1,  // dense, small, round, dark nuclei
  Stroma = 2,       // pink collagen fibres with sparse elongated nuclei
  Adipose = 3,      // large white vacuoles with thin pink membranes
  Mucus = 4,        // pale blue-grey wisps, very few cells
  Necrosis = 5,     // eosinophilic debris with fragmented nuclei (karyorrhexis)
  NormalMucosa = 6, // glands: rings of columnar cells around pale lumens
  Background = 7,   // glass: near-white with faint noise
};
constexpr int kNumTissueClasses = 8;

std::vector<TissueClass> all_tissue_classes();
// Short snake_case key ("tumor", "lymphocytes", ..., "normal_mucosa", "background").
const char* tissue_class_key(TissueClass c);
// Human-readable name used in captions and zero-shot prompts ("adenocarcinoma tumor epithelium", ...).
const char* tissue_class_name(TissueClass c);
// Parses a key (as tissue_class_key prints it); throws pathvlm::Error listing the known keys.
TissueClass tissue_class_from_key(const std::string& key);

// An RGB uint8 [height, width, 3] contiguous CPU tensor of the given class.
torch::Tensor draw_tissue(TissueClass c, int height, int width, uint64_t seed);

}  // namespace pathvlm::synth
