#include "synth/synth_text.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/random.h"
#include "synth/slide_synth.h"
#include "synth/synth_tiles.h"
#include "synth/tissue_texture.h"
#include "text/sentencepiece_tokenizer.h"

namespace pathvlm::synth {

namespace fs = std::filesystem;

namespace {

// A stream of draws from one seed.
struct Draws {
  uint64_t state;
  uint64_t next() { return state = splitmix64(state); }
  size_t below(size_t n) { return static_cast<size_t>(next() % n); }
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
};

void write_jsonl(const std::string& path, const std::vector<std::string>& docs) {
  std::ofstream out(path, std::ios::trunc);
  PATHVLM_CHECK(out, "synth text: cannot write '", path, "'");
  for (const auto& d : docs) out << nlohmann::json({{"text", d}}).dump() << "\n";
  PATHVLM_CHECK(out.flush(), "synth text: cannot write '", path, "'");
}

}  // namespace

std::string synth_text_document(uint64_t seed, int split, int64_t index) {
  Draws draw{splitmix64(splitmix64(seed ^ 0x7465787400ull) ^ static_cast<uint64_t>(split)) ^
             static_cast<uint64_t>(index)};
  draw.next();
  const auto classes = all_tissue_classes();
  const size_t regions_n = 1 + draw.below(4);
  std::vector<SynthRegion> regions(regions_n);
  double total = 0;
  for (auto& r : regions) {
    const auto c = classes[draw.below(classes.size())];
    r.tissue_class = static_cast<int>(c);
    r.class_key = tissue_class_key(c);
    r.area_fraction = 0.1 + draw.uniform();
    total += r.area_fraction;
  }
  for (auto& r : regions) r.area_fraction /= total;
  std::string text = synth_report(regions, draw.next());
  const size_t captions = 1 + draw.below(2);
  for (size_t i = 0; i < captions; ++i) {
    const auto& r = regions[draw.below(regions.size())];
    text += " " + synth_caption(static_cast<TissueClass>(r.tissue_class), draw.next());
    if (text.back() != '.') text += ".";
  }
  return text;
}

std::vector<std::string> synth_text_documents(int64_t count, uint64_t seed, int split) {
  std::vector<std::string> docs;
  docs.reserve(static_cast<size_t>(std::max<int64_t>(count, 0)));
  for (int64_t i = 0; i < count; ++i) docs.push_back(synth_text_document(seed, split, i));
  return docs;
}

SynthTextReport synth_text(const SynthTextOptions& o) {
  PATHVLM_CHECK(!o.out_dir.empty(), "synth text: no output folder given");
  PATHVLM_CHECK(o.train_documents >= 1 && o.eval_documents >= 0, "synth text: need at least one training document");
  fs::create_directories(o.out_dir);
  SynthTextReport r;
  const auto train = synth_text_documents(o.train_documents, o.seed, 0);
  const auto eval = synth_text_documents(o.eval_documents, o.seed, 1);
  r.train_jsonl = (fs::path(o.out_dir) / "train.jsonl").string();
  r.eval_jsonl = (fs::path(o.out_dir) / "eval.jsonl").string();
  r.tokenizer = (fs::path(o.out_dir) / "tokenizer.model").string();
  write_jsonl(r.train_jsonl, train);
  write_jsonl(r.eval_jsonl, eval);
  text::train_sentencepiece(train, o.vocab_size, r.tokenizer);
  r.train = o.train_documents;
  r.eval = o.eval_documents;
  return r;
}

}  // namespace pathvlm::synth
