// The task registry: what `run.task` may name. Each task lives in its own folder (src/train/<task>/) with
// a Task subclass and a config struct with a `visit` (src/core/config.h); src/train/tasks.cpp registers it
// with one line:
//
//   register_task<ClipTask, ClipTaskConfig>("clip", "contrastive image-text training on tile shards",
//                                           {{"zeroshot", "clip.data.zeroshot", "labelled tiles ..."}}),
//
// The task's config becomes the job's section named after the task (`clip:`), so `config docs`,
// `config show`, the startup table and file:line errors cover it like every engine section. A job reads
// it with job.task_config<ClipTaskConfig>().
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

#include "core/config.h"
#include "core/error.h"

namespace pathvlm::train {

class Task;

// A task's config struct behind a type-erased handle, so the job config can hold one per registered task.
// Copies are deep. visit() serves the three visitors of src/core/config.h.
class TaskSection {
 public:
  template <class C>
  static TaskSection of() {
    static const Ops ops{
        typeid(C),
        [](const void* c) -> std::shared_ptr<void> { return std::make_shared<C>(*static_cast<const C*>(c)); },
        [](void* c, cfg::SchemaVisitor& v) { static_cast<C*>(c)->visit(v); },
        [](void* c, cfg::ReaderVisitor& v) { static_cast<C*>(c)->visit(v); },
        [](void* c, cfg::YamlVisitor& v) { static_cast<C*>(c)->visit(v); },
    };
    TaskSection s;
    s.ops_ = &ops;
    s.value_ = std::make_shared<C>();
    return s;
  }

  TaskSection(const TaskSection& other) : ops_(other.ops_), value_(other.ops_->clone(other.value_.get())) {}
  TaskSection& operator=(const TaskSection& other) {
    if (this != &other) ops_ = other.ops_, value_ = other.ops_->clone(other.value_.get());
    return *this;
  }
  TaskSection(TaskSection&&) = default;
  TaskSection& operator=(TaskSection&&) = default;

  template <class V>
  void visit(V& v) {
    if constexpr (std::is_same_v<V, cfg::SchemaVisitor>) ops_->schema(value_.get(), v);
    else if constexpr (std::is_same_v<V, cfg::ReaderVisitor>) ops_->read(value_.get(), v);
    else if constexpr (std::is_same_v<V, cfg::YamlVisitor>) ops_->yaml(value_.get(), v);
    else static_assert(sizeof(V) == 0, "TaskSection: add this visitor to TaskSection::Ops");
  }

  template <class C>
  bool holds() const { return ops_->type == typeid(C); }
  template <class C>
  C& get() { return *static_cast<C*>(value_.get()); }

 private:
  struct Ops {
    const std::type_info& type;
    std::shared_ptr<void> (*clone)(const void*);
    void (*schema)(void*, cfg::SchemaVisitor&);
    void (*read)(void*, cfg::ReaderVisitor&);
    void (*yaml)(void*, cfg::YamlVisitor&);
  };
  TaskSection() = default;
  const Ops* ops_ = nullptr;
  std::shared_ptr<void> value_;
};

// A command-line option of `pathvlm eval` that sets one key of the task's section (`--classes` ->
// clip.eval.classes), so the CLI knows no task's keys.
struct TaskOption {
  std::string flag;  // without the dashes
  std::string key;   // dotted config key it overrides
  std::string help;
};

struct TaskSpec {
  std::string name;     // run.task, and the name of the task's config section
  std::string summary;  // one line: the section's doc in `config docs`
  TaskSection (*default_config)();
  std::unique_ptr<Task> (*make)();
  std::vector<TaskOption> eval_options;
};

template <class TaskT, class ConfigT>
TaskSpec register_task(std::string name, std::string summary, std::vector<TaskOption> eval_options = {}) {
  return TaskSpec{std::move(name), std::move(summary), [] { return TaskSection::of<ConfigT>(); },
                  []() -> std::unique_ptr<Task> { return std::make_unique<TaskT>(); }, std::move(eval_options)};
}

// Every registered task, in registration order (src/train/tasks.cpp).
const std::vector<TaskSpec>& registered_tasks();
std::vector<std::string> task_names();
// The spec of `name`; throws naming the unknown task and listing the known ones.
const TaskSpec& task_spec(const std::string& name);
std::unique_ptr<Task> make_task(const std::string& name);

// One config section per registered task, in registration order; JobConfig visits them after the engine's.
class TaskSections {
 public:
  TaskSections();

  template <class V>
  void visit(V& v) {
    const auto& specs = registered_tasks();
    for (size_t i = 0; i < specs.size(); ++i) v.section(specs[i].name.c_str(), sections_[i], specs[i].summary.c_str());
  }

  // The section whose struct is C; throws when no registered task declares C.
  template <class C>
  C& get() {
    for (auto& s : sections_)
      if (s.holds<C>()) return s.get<C>();
    throw Error(str("no registered task has the config section ", typeid(C).name()));
  }
  template <class C>
  const C& get() const { return const_cast<TaskSections*>(this)->get<C>(); }

 private:
  std::vector<TaskSection> sections_;
};

}  // namespace pathvlm::train
