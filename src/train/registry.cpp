// Task lookup by name and the job's per-task config sections; see registry.h.
#include "train/registry.h"

#include "train/task.h"

namespace pathvlm::train {

std::vector<std::string> task_names() {
  std::vector<std::string> names;
  for (const auto& spec : registered_tasks()) names.push_back(spec.name);
  return names;
}

const TaskSpec& task_spec(const std::string& name) {
  for (const auto& spec : registered_tasks())
    if (spec.name == name) return spec;
  std::string known;
  for (const auto& n : task_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error(str("run.task '", name, "' is not a registered task (known: ", known, ")"));
}

std::unique_ptr<Task> make_task(const std::string& name) { return task_spec(name).make(); }

TaskSections::TaskSections() {
  for (const auto& spec : registered_tasks()) sections_.push_back(spec.default_config());
}

}  // namespace pathvlm::train
