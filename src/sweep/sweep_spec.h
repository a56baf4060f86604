// A sweep file (configs/sweeps/*.yaml): a base job config, fixed overrides, the axes that vary and how the points
// are launched. See docs/formats.md "Sweep files".
//
//   base: ../clip/demo_tiny.yaml                       # relative to the sweep file
//   set: {train.steps: 200}                            # every point
//   grid: {optim.lr: [1.0e-4, 3.0e-4], optim.weight_decay: [0.0, 0.1]}   # every combination
//   zip: {train.micro_batch_size: [32, 64], optim.warmup_steps: [10, 20]} # advance together
//   random: {count: 4, seed: 0, axes: {optim.beta2: {uniform: [0.95, 0.999]}}}
//   launch: {ranks: 2, parallel: 1, cpus_per_task: 1, gpus_per_task: 0, throttle: 4, time: "01:00:00"}
//
// The points are the product grid x zip x random draws; a key varied in several blocks takes the last one's value
// (random over zip over grid), and points that thereby coincide are kept once.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm::sweep {

// One varying key and its values, each as YAML text ("1.0e-4", "[1, 2]") in the order written.
struct Axis {
  std::string key;
  std::vector<std::string> values;
};

// A seeded random axis: uniform / log_uniform over [lo, hi] (integers when both bounds are written as integers;
// floats rounded to 3 significant digits so names and configs agree), or a choice among YAML values.
struct RandomAxis {
  enum class Kind { Uniform, LogUniform, Choice };
  std::string key;
  Kind kind = Kind::Uniform;
  double lo = 0, hi = 0;
  bool integer = false;
  std::vector<std::string> choices;
};

// How the points run; the command line overrides each of these.
struct LaunchSpec {
  int ranks = 1;                 // processes per point (local: mpirun -np; SLURM: --ntasks)
  int parallel = 1;              // local: points running at once
  int cpus_per_task = 1;         // SLURM --cpus-per-task (OMP_NUM_THREADS of each rank)
  int gpus_per_task = 0;         // SLURM --gpus-per-task; 0: a CPU-only job
  int throttle = 0;              // SLURM array tasks running at once (the `%` of --array); 0: no limit
  std::string time;              // SLURM --time; empty: the template's
  std::string partition;         // SLURM --partition; empty: the cluster's default
  std::vector<std::string> sbatch_args;  // more sbatch options, passed as written
};

struct SweepSpec {
  std::string path;                                 // the sweep file
  std::string name;                                 // `name:`, else the file's stem
  std::string base;                                 // the base config, resolved against the sweep file's folder
  std::vector<std::pair<std::string, std::string>> set;  // fixed overrides: key, YAML text
  std::vector<Axis> grid, zip;
  int64_t random_count = 0;
  uint64_t random_seed = 0;
  std::vector<RandomAxis> random;
  LaunchSpec launch;
};

// Reads and checks a sweep file: known keys only (with "did you mean"), lists of values, zip lists of equal
// length, bounds in order, a key varying in one place only. Errors name the file, line and key.
SweepSpec read_sweep_file(const std::string& path);

}  // namespace pathvlm::sweep
