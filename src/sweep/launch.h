// Launching a sweep's points: locally through launch/local.sh (one after another or N at a time), or as one SLURM
// job array of launch/slurm/train.sbatch. Both record what they did in the sweep directory (sweep_dir.h).
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "sweep/sweep_dir.h"

namespace pathvlm::sweep {

// Runs `bash <launcher> <ranks> <config> <overrides...>` per point (the line of points.tsv), `parallel` at a time,
// each point's output appended to logs/<name>.out, its status file "running" then "exit N". `program` is the
// pathvlm binary the launcher runs (exported as PATHVLM). Returns the number of points that did not exit 0.
int launch_local(const SweepDir& dir, const std::vector<int>& indices, const LaunchSpec& launch,
                 const std::string& launcher, const std::string& program);

// "0-3,5,7-8%2": SLURM's --array list of `indices` (sorted, unique) with the throttle (0: none).
std::string array_spec(std::vector<int> indices, int throttle);

// The sbatch command line that submits `indices` of the sweep as one job array of `template_path`.
std::vector<std::string> sbatch_command(const SweepDir& dir, const std::string& sweep_name, const std::vector<int>& indices,
                                        const LaunchSpec& launch, const std::string& template_path,
                                        const std::string& program, const std::string& workdir);

// Runs `command` (argv, no shell); returns (exit status, stdout). Throws naming the program when it cannot start.
std::pair<int, std::string> run_program(const std::vector<std::string>& command);

// Submits with sbatch --parsable and records the job id in jobs.txt; returns it. Errors carry sbatch's message.
std::string submit_slurm(const SweepDir& dir, const std::string& sweep_name, const std::vector<int>& indices,
                         const LaunchSpec& launch, const std::string& template_path, const std::string& program);

// The recorded jobs' array tasks still in the SLURM queue (see SlurmQueue).
SlurmQueue slurm_queue(const SweepDir& dir);

}  // namespace pathvlm::sweep
