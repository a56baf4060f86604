#include "train/task.h"

#include "core/error.h"
#include "dist/reducer.h"
#include "train/clip_task.h"
#include "train/lm_task.h"

namespace pathvlm::train {

const torch::Tensor& Batch::at(const std::string& key) const {
  auto it = tensors.find(key);
  if (it != tensors.end()) return it->second;
  std::string known;
  for (const auto& [name, t] : tensors) known += (known.empty() ? "" : ", ") + name;
  throw Error(str("batch has no tensor '", key, "' (it has: ", known, ")"));
}

std::vector<std::pair<std::string, torch::Tensor>> Task::state_tensors() {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& p : model().named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : model().named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
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

namespace {
using Factory = std::unique_ptr<Task> (*)();
// One line per task.
const std::vector<std::pair<std::string, Factory>>& registry() {
  static const std::vector<std::pair<std::string, Factory>> tasks = {
      {"lm", [] { return std::unique_ptr<Task>(new LmTask()); }},
      {"clip", [] { return std::unique_ptr<Task>(new ClipTask()); }},
  };
  return tasks;
}
}  // namespace

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& [name, make] : registry()) names.push_back(name);
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name) {
  for (const auto& [known, make] : registry())
    if (known == name) return make();
  std::string known;
  for (const auto& n : task_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(str("run.task '", name, "' is not implemented in this build (available: ", known, ")"));
}

}  // namespace pathvlm::train
