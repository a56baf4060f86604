// A sweep's points: the product grid x zip x random draws of a SweepSpec, each a run with a stable name.
//
//   auto spec = read_sweep_file("configs/sweeps/lr_wd.yaml");
//   Expansion e = expand(spec);                        // e.points[i].name: "lr=1.0e-4_weight_decay=0.1"
//   check_points(spec, e.points, "runs/sweeps/lr_wd");  // every config loaded and checked, or one Error
//   auto args = run_overrides(spec, e.points[0], "runs/sweeps/lr_wd");  // for `pathvlm train BASE args...`
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "sweep/sweep_spec.h"

namespace pathvlm::sweep {

struct SweepPoint {
  int index = 0;     // its place in the sweep: the SLURM array task id
  std::string name;  // the run name, from the varying keys and values
  std::vector<std::pair<std::string, std::string>> values;  // the varying keys' values (YAML text), axis order
};

struct Expansion {
  std::vector<std::string> varying_keys;  // grid, then zip, then random keys
  std::vector<SweepPoint> points;
  int duplicates_dropped = 0;  // points equal to an earlier one (random draws, or a key varied in several blocks)
  std::vector<std::string> overridden_keys;  // keys varied in several blocks: the last block's value wins
};

// The points in a fixed order (the grid's last key fastest, then zip, then random draws). Random draws depend
// only on (random.seed, draw, key). A point's name joins `<short key>=<value>` of its varying keys, the short key
// being the shortest dotted suffix that tells the varying keys apart ("lr", "model.image_size"); characters other
// than letters, digits and ._+-= become '_'. No varying keys: one point named "base".
Expansion expand(const SweepSpec& spec);

// The overrides of one point's `pathvlm train <spec.base>`: the fixed `set`, the point's values, the run's place
// (run.runs_dir=<sweep_dir>, run.name=<point name>) and checkpoint.resume=auto unless the sweep sets it, so a
// re-submitted point continues from its checkpoint.
std::vector<std::string> run_overrides(const SweepSpec& spec, const SweepPoint& point, const std::string& sweep_dir);

// Loads and checks every point's job config before anything runs. Throws one pathvlm::Error listing each bad point
// ("sweep 'f.yaml': point 17 (lr=1e-2_wd=-1): command line: ... optim.weight_decay ...").
void check_points(const SweepSpec& spec, const std::vector<SweepPoint>& points, const std::string& sweep_dir);

}  // namespace pathvlm::sweep
