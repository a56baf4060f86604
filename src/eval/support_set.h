// The few-shot support set: labelled example tiles per class that few-shot prompts show before the query image
// and the kNN baseline votes with (docs/formats.md, "Instruction data"; `pathvlm synth instruct` writes one).
//
//   eval::SupportSet s = eval::read_support_set("demo/instruct/support.json");
//   auto tiles = data::TileDataset::open(s.shards);     // the support tiles' pixels, by id
//   int64_t c = s.class_of_label(label);                // a shard label -> its position in s.classes
//   std::vector<std::string> names = s.class_names();    // what few-shot replies say, what answers are scored on
//
// support.json: {"shards": "shards/support", "classes": [{"label": 0, "class": "adipose", "name": "adipose tissue",
// "tiles": ["images/val/adipose_00000.png", ...]}, ...]}. Every class needs at least one tile; labels, tile ids
// and names (after eval/vqa.h's normalize_answer, which answers are compared under) are unique.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::eval {

struct SupportClass {
  int64_t label = 0;               // the class's label in the shards
  std::string key;                 // "class": a short identifier ("adipose")
  std::string name;                // what a reply names the class by ("adipose tissue")
  std::vector<std::string> tiles;  // tile ids in the support shards
};

struct SupportSet {
  std::string source;  // the support.json read, for messages
  std::string shards;  // the support shards' folder; a relative "shards" is resolved against source's folder
  std::vector<SupportClass> classes;

  std::vector<std::string> class_names() const;
  // The position in `classes` of the class with this label; throws naming the source when none has it.
  int64_t class_of_label(int64_t label) const;
  // Tiles over all classes.
  int64_t size() const;
};

// Reads and checks support.json; errors name the file and the problem (missing or mistyped key, a class without
// tiles, a repeated label, tile id or name).
SupportSet read_support_set(const std::string& path);

}  // namespace pathvlm::eval
