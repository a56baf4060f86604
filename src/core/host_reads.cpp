#include "core/host_reads.h"

#include <c10/util/Backtrace.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.h"

namespace pathvlm {
namespace {

std::atomic<int> g_step_depth{0};  // step scopes open (entered on the loop's thread, seen by every thread)
std::atomic<std::thread::id> g_step_thread{};  // the loop's thread
std::atomic<int64_t> g_outside{0}, g_steps{0};
std::mutex g_names_mutex;
std::vector<std::string> g_in_step_names;  // the reads inside steps
std::atomic<bool> g_counting{false};

bool named(const at::RecordFunction& fn, const char* name) { return std::strcmp(fn.name(), name) == 0; }

// A scalar read of a device tensor, anywhere; of a CPU tensor, only on the loop's thread: there the same code
// reads device tensors on a GPU, while other threads (the data loader's workers) work on host data by design.
std::string scalar_read(const at::RecordFunction& fn) {
  const auto inputs = fn.inputs();
  const bool on_device = !inputs.empty() && inputs[0].isTensor() && !inputs[0].toTensor().is_cpu();
  return on_device || std::this_thread::get_id() == g_step_thread.load() ? fn.name() : "";
}

// The device -> host copy an aten::copy_(self, src) makes, or "".
std::string device_to_host(const at::RecordFunction& fn) {
  const auto inputs = fn.inputs();
  if (inputs.size() < 2 || !inputs[0].isTensor() || !inputs[1].isTensor()) return "";
  const auto& dst = inputs[0].toTensor();
  const auto& src = inputs[1].toTensor();
  if (!dst.defined() || !src.defined() || !dst.is_cpu() || src.is_cpu()) return "";
  return str("aten::copy_ (", src.device(), " -> cpu)");
}

std::unique_ptr<at::ObserverContext> on_enter(const at::RecordFunction& fn) {
  if (named(fn, kStepScopeName)) {
    g_step_thread = std::this_thread::get_id();
    g_step_depth.fetch_add(1);
    g_steps.fetch_add(1);
    return nullptr;
  }
  std::string read;
  if (named(fn, "aten::_local_scalar_dense")) read = scalar_read(fn);
  else if (named(fn, "aten::copy_")) read = device_to_host(fn);
  if (read.empty()) return nullptr;
  if (g_step_depth.load() > 0) {
    // Where it came from, to find it: PATHVLM_TRACE_HOST_READS=1.
    if (std::getenv("PATHVLM_TRACE_HOST_READS"))
      std::fprintf(stderr, "host read in a step: %s\n%s\n", read.c_str(), c10::get_backtrace(2).c_str());
    std::lock_guard<std::mutex> lock(g_names_mutex);
    g_in_step_names.push_back(std::move(read));
  } else {
    g_outside.fetch_add(1);
  }
  return nullptr;
}

void on_exit(const at::RecordFunction& fn, at::ObserverContext*) {
  if (named(fn, kStepScopeName)) g_step_depth.fetch_sub(1);
}

}  // namespace

bool host_flag(const at::Tensor& flag) {
  PATHVLM_CHECK(flag.numel() == 1, "host_flag: expected one value, got ", flag.sizes());
  if (!flag.is_cpu()) return flag.item<double>() != 0;
  const auto value = flag.to(at::kDouble).contiguous();
  return *value.data_ptr<double>() != 0;
}

StepScope::StepScope() : record_(at::RecordScope::USER_SCOPE) {
  if (record_.isActive()) record_.before(kStepScopeName);
}
StepScope::~StepScope() = default;  // the record's destructor ends the scope

HostReadCounter::HostReadCounter() {
  PATHVLM_CHECK(!g_counting.exchange(true), "HostReadCounter: one counter at a time");
  g_step_depth = 0;
  g_outside = g_steps = 0;
  g_in_step_names.clear();
  handle_ = at::addGlobalCallback(at::RecordFunctionCallback(on_enter, on_exit)
                                      .needsInputs(true)
                                      .scopes({at::RecordScope::FUNCTION, at::RecordScope::USER_SCOPE}));
}

HostReadCounter::~HostReadCounter() {
  at::removeCallback(handle_);
  g_counting = false;
}

int64_t HostReadCounter::in_steps() const {
  std::lock_guard<std::mutex> lock(g_names_mutex);
  return static_cast<int64_t>(g_in_step_names.size());
}
int64_t HostReadCounter::outside_steps() const { return g_outside.load(); }
int64_t HostReadCounter::steps() const { return g_steps.load(); }
std::vector<std::string> HostReadCounter::in_step_reads() const {
  std::lock_guard<std::mutex> lock(g_names_mutex);
  return g_in_step_names;
}

}  // namespace pathvlm
