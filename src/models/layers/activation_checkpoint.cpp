// A custom autograd node holding the function, its detached inputs and the RNG/autocast state of the forward.
#include "models/layers/activation_checkpoint.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/functions/utils.h>

#include <algorithm>

#include "core/compat.h"
#include "core/error.h"

namespace pathvlm::models {
namespace {

using torch::autograd::variable_list;

// Generator states of every device the computation may draw random numbers on.
struct RngState {
  torch::Tensor cpu;
  std::vector<std::pair<int, torch::Tensor>> cuda;

  static RngState capture(const std::vector<torch::Tensor>& inputs) {
    RngState s;
    s.cpu = at::detail::getDefaultCPUGenerator().get_state();
    for (const auto& t : inputs) {
      if (!t.defined() || !t.is_cuda()) continue;
      const int index = t.get_device();
      if (std::none_of(s.cuda.begin(), s.cuda.end(), [&](const auto& e) { return e.first == index; }))
        s.cuda.emplace_back(index, at::globalContext().defaultGenerator(t.device()).get_state());
    }
    return s;
  }
  void restore() const {
    at::Generator cpu_gen = at::detail::getDefaultCPUGenerator();  // a handle sharing the default generator
    cpu_gen.set_state(cpu);
    for (const auto& [index, state] : cuda) {
      at::Generator gen = at::globalContext().defaultGenerator(torch::Device(torch::kCUDA, index));
      gen.set_state(state);
    }
  }
};

struct CheckpointBackward : torch::autograd::Node {
  TensorsFn fn;
  std::vector<torch::Tensor> inputs;  // detached
  std::vector<bool> input_requires_grad;
  RngState rng;
  // The forward's autocast on each device type (CUDA for GPU runs, CPU for train.precision bf16 on CPU).
  bool cpu_autocast = false, cuda_autocast = false;
  at::ScalarType cpu_autocast_dtype = at::kBFloat16, cuda_autocast_dtype = at::kBFloat16;

  std::string name() const override { return "pathvlm::CheckpointBackward"; }

  variable_list apply(variable_list&& grad_outputs) override {
    PATHVLM_CHECK(fn, "activation checkpoint: backward ran twice through the same checkpointed region "
                      "(retain_graph is not supported)");
    std::vector<torch::Tensor> leaves;
    for (size_t i = 0; i < inputs.size(); ++i) {
      auto x = inputs[i].defined() ? inputs[i].detach() : inputs[i];
      if (x.defined() && input_requires_grad[i]) x.requires_grad_(true);
      leaves.push_back(x);
    }
    std::vector<torch::Tensor> outputs;
    {
      // Recompute with the forward's RNG and autocast; leave the caller's RNG as it was.
      RngState now = RngState::capture(inputs);
      rng.restore();
      torch::AutoGradMode grad_on(true);
      compat::AutocastGuard cpu_cast(at::kCPU, cpu_autocast, cpu_autocast_dtype);
      compat::AutocastGuard cuda_cast(at::kCUDA, cuda_autocast, cuda_autocast_dtype);
      outputs = fn(leaves);
      now.restore();
    }
    PATHVLM_CHECK(outputs.size() == grad_outputs.size(), "activation checkpoint: recomputation gave ",
                  outputs.size(), " outputs, the forward gave ", grad_outputs.size());
    std::vector<torch::Tensor> roots, grads;
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].defined() && outputs[i].requires_grad() && grad_outputs[i].defined()) {
        roots.push_back(outputs[i]);
        grads.push_back(grad_outputs[i]);
      }
    }
    if (!roots.empty()) torch::autograd::backward(roots, grads);
    fn = nullptr;
    inputs.clear();
    variable_list result;
    for (size_t i = 0; i < leaves.size(); ++i)
      result.push_back(leaves[i].defined() && input_requires_grad[i] ? leaves[i].grad() : torch::Tensor());
    return result;
  }

  void release_variables() override {
    inputs.clear();
    fn = nullptr;
  }
};

}  // namespace

std::vector<torch::Tensor> checkpoint(TensorsFn fn, const std::vector<torch::Tensor>& inputs) {
  if (!torch::GradMode::is_enabled()) return fn(inputs);
  auto node = compat::make_autograd_node<CheckpointBackward>();
  node->rng = RngState::capture(inputs);
  node->cpu_autocast = compat::autocast_enabled(at::kCPU);
  node->cpu_autocast_dtype = compat::autocast_dtype(at::kCPU);
  node->cuda_autocast = compat::autocast_enabled(at::kCUDA);
  node->cuda_autocast_dtype = compat::autocast_dtype(at::kCUDA);
  std::vector<torch::Tensor> outputs;
  {
    torch::NoGradGuard no_grad;
    outputs = fn(inputs);
  }
  for (const auto& x : inputs) {
    node->inputs.push_back(x.defined() ? x.detach() : x);
    node->input_requires_grad.push_back(x.defined() && x.requires_grad());
  }
  node->fn = std::move(fn);
  node->set_next_edges(torch::autograd::collect_next_edges(inputs));
  for (auto& out : outputs) {
    if (!out.defined() || !out.is_floating_point()) {
      node->add_input_metadata(torch::autograd::Node::undefined_input());
      continue;
    }
    // An output that is a view (e.g. an identity branch or a chunk) must become its own tensor before it gets
    // a gradient history.
    bool aliases_input = out.is_view();
    for (const auto& x : inputs) aliases_input = aliases_input || (x.defined() && out.is_alias_of(x));
    if (aliases_input) out = out.clone();
    torch::autograd::set_history(out, node);
  }
  return outputs;
}

torch::Tensor checkpoint(std::function<torch::Tensor(const torch::Tensor&)> fn, const torch::Tensor& input) {
  return checkpoint([fn = std::move(fn)](const std::vector<torch::Tensor>& xs) { return std::vector{fn(xs[0])}; },
                    {input})[0];
}

bool checkpointing_enabled(const std::vector<std::string>& names, const std::string& name) {
  return std::find(names.begin(), names.end(), name) != names.end() ||
         std::find(names.begin(), names.end(), "all") != names.end();
}

}  // namespace pathvlm::models
