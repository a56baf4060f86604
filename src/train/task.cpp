#include "train/task.h"

#include "core/error.h"
#include "dist/comm.h"
#include "dist/reducer.h"
#include "train/job_config.h"

namespace pathvlm::train {

data::LoaderOptions task_loader_options(const TaskContext& ctx, int workers, int prefetch) {
  data::LoaderOptions o;
  o.rank = ctx.rank;
  o.world_size = ctx.world_size;
  o.seed = ctx.seed;
  o.workers = workers;
  o.prefetch = prefetch;
  o.device = ctx.device;
  return o;
}

nlohmann::json loader_state(const data::Loader& loader) {
  const auto c = loader.cursor();
  return {{"epoch", c.epoch}, {"batch", c.batch}};
}

void restore_loader_state(data::Loader& loader, const nlohmann::json& state, const std::string& task) {
  PATHVLM_CHECK(state.contains("epoch") && state.contains("batch"), task,
                ": checkpoint data state needs 'epoch' and 'batch', got ", state.dump());
  loader.restore({state.at("epoch").get<int64_t>(), state.at("batch").get<int64_t>()});
}

double loader_epoch(const data::Loader& loader) {
  const auto c = loader.cursor();
  const int64_t per_epoch = loader.batches_per_epoch();
  return static_cast<double>(c.epoch) + (per_epoch > 0 ? static_cast<double>(c.batch) / per_epoch : 0.0);
}

std::vector<std::pair<std::string, torch::Tensor>> Task::state_tensors() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model().named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : model().named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

torch::Tensor global_mean_scale(torch::Tensor count, dist::Comm& comm) {
  comm.allreduce(count, dist::ReduceOp::Sum);
  return (static_cast<double>(comm.world_size()) / count.clamp_min(1.0)).to(torch::kFloat).reshape({});
}

StepOutput Task::forward_backward(const std::vector<Batch>& micro, StepContext& ctx) {
  PATHVLM_CHECK(!micro.empty(), "forward_backward: no micro-batches");
  const double n = static_cast<double>(micro.size());
  StepOutput out;
  for (size_t i = 0; i < micro.size(); ++i) {
    ctx.reducer.prepare_backward(/*sync=*/i + 1 == micro.size());
    LossOutput l = loss(micro[i]);
    (l.loss / n).backward();
    auto loss = l.loss.detach() / n;
    out.loss = out.loss.defined() ? out.loss + loss : loss;
    for (auto& [name, value] : l.metrics) {
      auto v = value.detach() / n;
      auto& slot = out.metrics[name];
      slot = slot.defined() ? slot + v : v;
    }
  }
  ctx.reducer.finish_backward();
  return out;
}

void Task::build_for_eval(const TaskContext& ctx, const std::string& weights) {
  throw Error(str("task '", ctx.job.run.task, "' has no standalone evaluation"));
}

}  // namespace pathvlm::train
