// Bucketed, overlapped gradient allreduce / reduce-scatter (see reducer.h).
#include "dist/reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.h"

namespace pathvlm::dist {
namespace {

constexpr double kMiB = 1024.0 * 1024.0;

// Runs a callback after the gradient accumulator of one parameter has added this backward's gradient.
class AccumulatedHook : public torch::autograd::FunctionPostHook {
 public:
  explicit AccumulatedHook(std::function<void()> fn) : fn_(std::move(fn)) {}
  torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                            const torch::autograd::variable_list&) override {
    fn_();
    return outputs;
  }

 private:
  std::function<void()> fn_;
};

}  // namespace

std::vector<std::vector<size_t>> assign_buckets(const std::vector<NamedParam>& params, int64_t first_bucket_bytes,
                                                int64_t bucket_bytes) {
  struct Open {
    std::vector<size_t> members;
    int64_t bytes = 0;
    int closed = 0;
    size_t last_position = 0;
  };
  std::map<std::pair<int, bool>, Open> open;       // one open bucket per (dtype, decay)
  std::vector<std::pair<size_t, std::vector<size_t>>> done;  // (position its last gradient arrives, members)
  size_t position = 0;
  for (size_t i = params.size(); i-- > 0; ++position) {
    const auto& p = params[i].param;
    auto& bucket = open[{static_cast<int>(p.scalar_type()), params[i].decay}];
    bucket.members.push_back(i);
    bucket.bytes += static_cast<int64_t>(p.numel() * p.element_size());
    bucket.last_position = position;
    if (bucket.bytes >= (bucket.closed == 0 ? first_bucket_bytes : bucket_bytes)) {
      done.emplace_back(position, std::move(bucket.members));
      bucket = Open{{}, 0, bucket.closed + 1, 0};
    }
  }
  for (auto& [key, bucket] : open)
    if (!bucket.members.empty()) done.emplace_back(bucket.last_position, std::move(bucket.members));
  // Launch order = the order buckets are expected to complete in backward.
  std::stable_sort(done.begin(), done.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<std::vector<size_t>> result;
  for (auto& [pos, members] : done) result.push_back(std::move(members));
  return result;
}

BucketSlice bucket_slice(int64_t numel, int world, int rank) {
  BucketSlice s;
  s.padded = (numel + world - 1) / world * world;
  s.chunk = s.padded / world;
  s.start = rank * s.chunk;
  s.count = std::max<int64_t>(0, std::min(s.chunk, numel - s.start));
  return s;
}

namespace {

// The trainable parameters in registration order, checked; frozen ones are never in a bucket.
std::vector<NamedParam> trainable_params(std::vector<NamedParam> params) {
  std::vector<NamedParam> trainable;
  std::set<const void*> seen;
  for (auto& p : params) {
    PATHVLM_CHECK(p.param.defined(), "Reducer: parameter '", p.name, "' is undefined");
    if (!p.param.requires_grad()) continue;
    PATHVLM_CHECK(p.param.is_leaf(), "Reducer: parameter '", p.name, "' is not a leaf tensor");
    PATHVLM_CHECK(p.param.layout() == torch::kStrided, "Reducer: parameter '", p.name, "' is not dense");
    PATHVLM_CHECK(seen.insert(p.param.unsafeGetTensorImpl()).second, "Reducer: parameter '", p.name,
                  "' is listed twice (shared weights must be passed once)");
    if (!trainable.empty())
      PATHVLM_CHECK(p.param.device() == trainable.front().param.device(), "Reducer: parameter '", p.name, "' is on ",
                    p.param.device(), " but '", trainable.front().name, "' is on ", trainable.front().param.device());
    trainable.push_back(std::move(p));
  }
  PATHVLM_CHECK(!trainable.empty(), "Reducer: no trainable parameters (all have requires_grad false)");
  return trainable;
}

std::vector<std::vector<size_t>> assign_buckets(const std::vector<NamedParam>& trainable, const DistConfig& cfg) {
  return assign_buckets(trainable, static_cast<int64_t>(cfg.first_bucket_mb * kMiB),
                        static_cast<int64_t>(cfg.bucket_mb * kMiB));
}

}  // namespace

Reducer::Memory Reducer::plan(const std::vector<NamedParam>& params, int world, int rank, const DistConfig& cfg) {
  const auto trainable = trainable_params(params);
  Memory m;
  for (const auto& members : assign_buckets(trainable, cfg)) {
    int64_t numel = 0;
    for (size_t i : members) numel += trainable[i].param.numel();
    const auto slice = bucket_slice(numel, world, rank);
    const int64_t element = static_cast<int64_t>(trainable[members.front()].param.element_size());
    m.param_bytes += slice.padded * element;
    if (cfg.shard_optimizer)
      m.shard_grad_bytes += slice.chunk * element;
    else
      m.grad_bytes += slice.padded * element;
    m.total_numel += numel;
    m.local_numel += cfg.shard_optimizer ? slice.count : numel;
  }
  return m;
}

Reducer::Reducer(std::vector<NamedParam> params, Comm& comm, const DistConfig& cfg)
    : comm_(comm), cfg_(cfg), sharded_(cfg.shard_optimizer) {
  auto trainable = trainable_params(std::move(params));
  const int world = comm_.world_size(), rank = comm_.rank();
  auto assignment = assign_buckets(trainable, cfg);
  slots_.resize(trainable.size());
  int64_t flat_offset = 0;
  torch::NoGradGuard no_grad;
  for (auto& members : assignment) {
    Bucket b;
    const auto& first = trainable[members.front()];
    b.dtype = first.param.scalar_type();
    b.decay = first.decay;
    b.members = members;
    for (size_t i : members) b.numel += trainable[i].param.numel();
    b.padded = bucket_slice(b.numel, world, rank).padded;
    b.flat_offset = flat_offset;
    flat_offset += b.numel;
    auto options = first.param.options().requires_grad(false);
    b.data = torch::zeros({b.padded}, options);
    if (sharded_)
      b.shard_grad = torch::zeros({b.padded / world}, options);
    else
      b.grad = torch::zeros({b.padded}, options);

    int64_t offset = 0;
    for (size_t i : members) {
      auto& slot = slots_[i];
      slot.named = std::move(trainable[i]);
      slot.bucket = static_cast<int>(buckets_.size());
      slot.offset = offset;
      auto& p = slot.named.param;
      auto view = b.data.narrow(0, offset, p.numel()).view(p.sizes());
      view.copy_(p);
      p.set_(view);  // the parameter now lives in the bucket
      // Sharded: a .grad the parameter already has is left to autograd, which adds the next gradient to it,
      // so it is reduced with that backward.
      if (!sharded_) {
        slot.grad_view = b.grad.narrow(0, offset, p.numel()).view(p.sizes());
        if (p.grad().defined()) slot.grad_view.copy_(p.grad());
        p.mutable_grad() = slot.grad_view;  // autograd accumulates in place into a defined .grad
      }
      offset += p.numel();
    }
    buckets_.push_back(std::move(b));
  }

  for (auto& b : buckets_) comm_.broadcast(b.data, 0);  // every rank starts from rank 0's parameters

  for (size_t i = 0; i < slots_.size(); ++i) {
    auto& slot = slots_[i];
    slot.accumulator = torch::autograd::impl::grad_accumulator(slot.named.param);  // kept alive here
    PATHVLM_CHECK(slot.accumulator, "Reducer: parameter '", slot.named.name, "' has no gradient accumulator");
    slot.hook_key = slot.accumulator->add_post_hook(std::make_unique<AccumulatedHook>([this, i] { mark_ready(i); }));
  }

  for (auto& b : buckets_) {
    if (!sharded_) {
      shards_.push_back({b.data.narrow(0, 0, b.numel), b.grad.narrow(0, 0, b.numel), b.decay, b.flat_offset, b.numel});
      continue;
    }
    const auto slice = bucket_slice(b.numel, world, rank);
    if (slice.count > 0)
      shards_.push_back({b.data.narrow(0, slice.start, slice.count), b.shard_grad.narrow(0, 0, slice.count), b.decay,
                         b.flat_offset + slice.start, slice.count});
  }
}

Reducer::~Reducer() {
  try {
    wait_launched();
  } catch (...) {
  }
  for (auto& slot : slots_)
    if (slot.accumulator) slot.accumulator->del_post_hook(slot.hook_key);
}

void Reducer::prepare_backward(bool sync) {
  bool previous_armed;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    PATHVLM_CHECK(!(armed_ && sync_),
                  "Reducer: finish_backward() was not called after the last synchronising backward");
    previous_armed = armed_;
  }
  if (previous_armed) complete_backward(/*unused_ok=*/true);  // a sharded accumulation micro-step
  std::lock_guard<std::mutex> lock(mutex_);
  if (!sharded_) restore_grad_views();
  events_.clear();
  for (auto& slot : slots_) slot.ready = false;
  for (auto& b : buckets_) b.pending = static_cast<int>(b.members.size());
  next_launch_ = next_done_ = 0;
  armed_ = sync || sharded_;  // sharded: nowhere to accumulate full gradients, so every micro-step communicates
  sync_ = sync;
}

void Reducer::mark_ready(size_t index) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!armed_) return;  // unsharded accumulation micro-step: gradients stay local
  auto& slot = slots_[index];
  PATHVLM_CHECK(!slot.ready, "Reducer: parameter '", slot.named.name,
                "' received a gradient twice in one backward (call prepare_backward before each backward)");
  slot.ready = true;
  if (sharded_) take_grad(slot);
  --buckets_[slot.bucket].pending;
  launch_ready_buckets();
  // Sharded: free the full-size buffers of buckets already communicated, so they do not pile up until
  // the end of backward. (Unsharded buckets are persistent: nothing to free early.)
  if (sharded_)
    while (next_done_ < next_launch_ && buckets_[next_done_].work->done()) finish_bucket(next_done_++);
}

void Reducer::take_grad(Slot& slot) {
  auto& p = slot.named.param;
  if (!p.grad().defined()) return;  // no gradient (find_unused): the bucket's zeros stand for it
  auto& b = buckets_[slot.bucket];
  torch::NoGradGuard no_grad;
  if (!b.grad.defined()) b.grad = new_transient(b, b.padded);
  b.grad.narrow(0, slot.offset, p.numel()).view(p.sizes()).copy_(p.grad());
  p.mutable_grad() = torch::Tensor();  // autograd's copy is freed here
}

torch::Tensor Reducer::new_transient(const Bucket& b, int64_t numel) {
  // Zeros: the padding, and parameters without a gradient, must count as zero in the reduction.
  auto t = torch::zeros({numel}, b.data.options());
  transient_bytes_ += static_cast<int64_t>(t.nbytes());
  peak_transient_bytes_ = std::max(peak_transient_bytes_, transient_bytes_);
  return t;
}

void Reducer::free_transient(torch::Tensor& t) {
  transient_bytes_ -= static_cast<int64_t>(t.nbytes());
  t.reset();
}

void Reducer::launch_ready_buckets() {
  // Index order, never ready order: every rank must issue the same sequence of collectives.
  while (next_launch_ < buckets_.size() && buckets_[next_launch_].pending == 0) {
    auto& b = buckets_[next_launch_];
    events_.push_back(str("bucket_launch:", next_launch_));
    if (!sharded_) {
      b.work = comm_.allreduce_async(b.grad, ReduceOp::Avg);
    } else {
      if (!b.grad.defined()) b.grad = new_transient(b, b.padded);  // none of its parameters got a gradient
      // The first micro-step after zero_grad reduces straight into the shard; later ones add to it.
      if (b.shard_holds_grad) b.shard_incoming = new_transient(b, b.shard_grad.numel());
      b.work = comm_.reduce_scatter_async(b.grad, b.shard_holds_grad ? b.shard_incoming : b.shard_grad,
                                          ReduceOp::Avg);
    }
    ++next_launch_;
  }
}

void Reducer::wait_launched() {
  for (;;) {
    Work* work;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (next_done_ == next_launch_) return;
      work = buckets_[next_done_].work.get();
    }
    work->wait();  // without the lock: the collective may take long
    std::lock_guard<std::mutex> lock(mutex_);
    finish_bucket(next_done_++);
  }
}

void Reducer::finish_bucket(size_t i) {
  auto& b = buckets_[i];
  b.work->wait();  // at once when done; orders the caller's stream after the collective
  b.work.reset();
  if (sharded_) {
    torch::NoGradGuard no_grad;
    if (b.shard_incoming.defined()) {
      b.shard_grad.add_(b.shard_incoming);
      free_transient(b.shard_incoming);
    }
    b.shard_holds_grad = true;
    free_transient(b.grad);  // the full-size gradient is gone; only the shard remains
  }
  events_.push_back(str("bucket_done:", i));
}

void Reducer::finish_backward() {
  bool unused_ok;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!armed_) return;
    unused_ok = cfg_.find_unused || !sync_;
  }
  complete_backward(unused_ok);
}

void Reducer::complete_backward(bool unused_ok) {
  std::vector<std::string> unused;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    events_.push_back("backward_end");
    for (auto& slot : slots_)
      if (!slot.ready) unused.push_back(slot.named.name);
    if (!unused.empty() && unused_ok) {
      // Their gradient is what accumulated so far (zero if unused in every micro-step); still communicated
      // so every rank launches the same buckets.
      for (auto& slot : slots_) {
        if (slot.ready) continue;
        slot.ready = true;
        if (sharded_) take_grad(slot);
        --buckets_[slot.bucket].pending;
      }
      launch_ready_buckets();
      unused.clear();
    }
  }
  wait_launched();
  std::lock_guard<std::mutex> lock(mutex_);
  armed_ = false;
  if (unused.empty()) return;
  for (auto& b : buckets_)  // sharded: the buckets that never launched
    if (sharded_ && b.grad.defined()) free_transient(b.grad);
  std::string names;
  for (size_t i = 0; i < unused.size() && i < 8; ++i) names += (i ? ", " : "") + unused[i];
  if (unused.size() > 8) names += str(", ... (", unused.size(), " in all)");
  throw Error(str("Reducer: ", unused.size(), " parameter(s) got no gradient in this backward: ", names,
                  ". Use them in the loss, freeze them (requires_grad false), or set dist.find_unused: true"));
}

void Reducer::zero_grad() {
  std::lock_guard<std::mutex> lock(mutex_);
  PATHVLM_CHECK(!armed_, "Reducer: zero_grad() while a backward is being communicated (call finish_backward first)");
  torch::NoGradGuard no_grad;
  if (!sharded_) {
    restore_grad_views();
    for (auto& b : buckets_) b.grad.zero_();
    return;
  }
  for (auto& slot : slots_) slot.named.param.mutable_grad() = torch::Tensor();  // from a backward not prepared
  for (auto& b : buckets_) {
    b.shard_grad.zero_();
    b.shard_holds_grad = false;
  }
}

void Reducer::restore_grad_views() {
  // Someone may have replaced a .grad (e.g. zero_grad with set_to_none): put the bucket view back.
  torch::NoGradGuard no_grad;
  for (auto& slot : slots_) {
    auto& p = slot.named.param;
    const auto& g = p.grad();
    if (g.defined() && g.data_ptr() == slot.grad_view.data_ptr()) continue;
    if (g.defined())
      slot.grad_view.copy_(g);
    else
      slot.grad_view.zero_();
    p.mutable_grad() = slot.grad_view;
  }
}

void Reducer::gather_params() {
  PATHVLM_CHECK(sharded_, "Reducer::gather_params() is for dist.shard_optimizer: true");
  std::vector<std::unique_ptr<Work>> works;
  const int world = comm_.world_size(), rank = comm_.rank();
  for (auto& b : buckets_) {
    int64_t chunk = b.padded / world;
    works.push_back(comm_.allgather_async(b.data.narrow(0, rank * chunk, chunk), b.data));  // in place
  }
  for (auto& w : works) w->wait();
}

std::vector<Reducer::BucketInfo> Reducer::buckets() const {
  std::vector<BucketInfo> out;
  for (const auto& b : buckets_) {
    BucketInfo info{{}, b.numel, b.dtype, b.decay};
    for (size_t i : b.members) info.params.push_back(slots_[i].named.name);
    out.push_back(std::move(info));
  }
  return out;
}

Reducer::Memory Reducer::memory() const {
  std::lock_guard<std::mutex> lock(mutex_);
  Memory m;
  for (const auto& b : buckets_) {
    m.param_bytes += b.data.nbytes();
    if (sharded_)
      m.shard_grad_bytes += b.shard_grad.nbytes();
    else
      m.grad_bytes += b.grad.nbytes();
    m.total_numel += b.numel;
  }
  for (const auto& s : shards_) m.local_numel += s.numel;
  m.peak_transient_grad_bytes = peak_transient_bytes_;
  return m;
}

std::vector<std::string> Reducer::events() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return events_;
}

}  // namespace pathvlm::dist
