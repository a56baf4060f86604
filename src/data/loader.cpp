#include "data/loader.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>
#include <omp.h>
#ifdef PATHVLM_HAVE_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include <algorithm>
#include <chrono>

#include "core/error.h"
#include "core/random.h"

namespace pathvlm::data {
namespace {

#ifdef PATHVLM_HAVE_CUDA
// Runs `upload` (the batch's copy to the device and its finishing hook) on a side stream, overlapping the step
// computing on the current stream. Returns what next() runs when it hands the batch out: the current stream waits
// for the upload (an event, no host sync), and each tensor, allocated on the side stream, is marked in use by the
// current one so the caching allocator does not give its memory away while the step still reads it.
std::function<void(Batch&)> upload_on_side_stream(Batch& batch, torch::Device device,
                                                  const std::function<void(Batch&)>& upload) {
  auto side = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index());
  auto uploaded = std::make_shared<at::cuda::CUDAEvent>();
  {
    c10::cuda::CUDAStreamGuard guard(side);
    upload(batch);
    uploaded->record(side);
  }
  return [uploaded, device](Batch& b) {
    auto current = c10::cuda::getCurrentCUDAStream(device.index());
    uploaded->block(current);
    for (auto& [key, t] : b.tensors) t.record_stream(current);
  };
}
#endif

template <typename Value>
const Value& named(const std::map<std::string, Value>& items, const std::string& key, const char* what) {
  auto it = items.find(key);
  if (it != items.end()) return it->second;
  std::string known;
  for (const auto& [name, item] : items) known += (known.empty() ? "" : ", ") + name;
  throw Error(str("batch has no ", what, " '", key, "' (it has: ", known, ")"));
}
}  // namespace

const torch::Tensor& Batch::at(const std::string& key) const { return named(tensors, key, "tensor"); }
const torch::Tensor& Batch::host_at(const std::string& key) const { return named(host, key, "host tensor"); }
const std::vector<std::string>& Batch::text(const std::string& key) const { return named(strings, key, "strings"); }

uint64_t record_seed(uint64_t seed, int64_t epoch, int64_t record) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(record));
}

torch::TensorOptions BatchRequest::host(torch::Dtype dtype) const {
  return torch::TensorOptions().dtype(dtype).pinned_memory(pinned);
}

at::Generator BatchRequest::generator(int64_t row) const {
  return at::detail::createCPUGenerator(record_seed(seed, epoch, records.at(static_cast<size_t>(row))));
}

void BatchRequest::for_each(const std::function<void(int64_t row, int64_t record)>& fill) const {
  for (size_t k = 0; k < records.size(); ++k) {
    try {
      fill(static_cast<int64_t>(k), records[k]);
    } catch (const std::exception& e) {
      throw Error(str("record ", records[k], ": ", e.what()));
    }
  }
}

std::pair<int64_t, int64_t> eval_share(int64_t n, int64_t batch_size, int rank, int world_size) {
  PATHVLM_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "eval_share: rank ", rank, " outside world size ",
                world_size);
  PATHVLM_CHECK(batch_size >= 1, "eval_share: batch size must be >= 1, got ", batch_size);
  const int64_t batches = (n + batch_size - 1) / batch_size;
  const int64_t first = batches * rank / world_size, last = batches * (rank + 1) / world_size;
  return {std::min(n, first * batch_size), std::min(n, last * batch_size)};
}

Loader::Loader(std::string name, int64_t records, BatchBuilder build, const LoaderOptions& options)
    : name_(std::move(name)), records_(records), build_(std::move(build)), opt_(options) {
  PATHVLM_CHECK(build_, name_, ": the loader has no batch builder");
  PATHVLM_CHECK(opt_.batch_size >= 1, name_, ": batch size must be >= 1, got ", opt_.batch_size);
  PATHVLM_CHECK(opt_.workers >= 1 && opt_.prefetch >= 1, name_, ": workers and prefetch must be >= 1, got ",
                opt_.workers, " and ", opt_.prefetch);
  pinned_ = opt_.pin_memory && opt_.device.is_cuda() && torch::cuda::is_available();
  if (opt_.train) {
    try {
      sampler_ = std::make_unique<DistributedSampler>(records_, opt_.batch_size, opt_.rank, opt_.world_size,
                                                      opt_.seed, opt_.shuffle, opt_.epoch_order);
    } catch (const Error& e) {
      throw Error(str(name_, ": ", e.what()));
    }
    consumed_cursor_ = sampler_->cursor();
  } else {
    std::tie(eval_begin_, eval_end_) = eval_share(records_, opt_.batch_size, opt_.rank, opt_.world_size);
    eval_next_ = eval_begin_;
  }
  start();
}

Loader::~Loader() { stop(); }

void Loader::start() {
  stopping_ = false;
  for (int i = 0; i < opt_.workers; ++i) threads_.emplace_back([this] { worker(); });
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  space_cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::optional<Loader::Job> Loader::make_job() {
  Job job;
  if (sampler_) {
    job.request.records = sampler_->next_batch();
    job.after = sampler_->cursor();
    job.request.epoch = job.after.epoch;
  } else {
    if (eval_next_ >= eval_end_) return std::nullopt;
    const int64_t end = std::min(eval_end_, eval_next_ + opt_.batch_size);
    for (int64_t i = eval_next_; i < end; ++i) job.request.records.push_back(i);
    eval_next_ = end;
    job.after = {0, next_seq_ + 1};
  }
  job.request.seed = opt_.seed;
  job.request.pinned = pinned_;
  job.seq = next_seq_++;
  return job;
}

void Loader::worker() {
  // libtorch initialises a thread's OpenMP count lazily, on its first parallel op, from the process-wide
  // setting; trigger that now so the count of one set below is not overwritten later.
  at::get_num_threads();
  omp_set_num_threads(1);
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_cv_.wait(lock, [&] { return stopping_ || (!exhausted_ && next_seq_ - consume_seq_ < opt_.prefetch); });
      if (stopping_) return;
      auto next = make_job();
      if (!next) {
        exhausted_ = true;
        ready_cv_.notify_all();
        continue;
      }
      job = std::move(*next);
    }
    Slot slot;
    slot.after = job.after;
    try {
      slot.batch = build(job.request);
    } catch (const std::exception& e) {
      slot.error = std::make_exception_ptr(Error(str(name_, ", epoch ", job.request.epoch, ": ", e.what())));
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      done_[job.seq] = std::move(slot);
    }
    ready_cv_.notify_all();
  }
}

Batch Loader::build(const BatchRequest& request) const {
  Batch batch = build_(request);
  batch.epoch = request.epoch;
  // A builder that allocated pageable memory still gets its copy to the GPU overlapped with compute.
  if (pinned_)
    for (auto& [key, t] : batch.tensors)
      if (!t.is_pinned()) t = t.pin_memory();
  // On the CPU the batch is already where it goes: finish it here, in parallel, off the consumer's thread.
  if (opt_.device.is_cpu() && opt_.finish_on_device) opt_.finish_on_device(batch);
  return batch;
}

void Loader::to_device(Batch& batch) const {
  for (auto& [key, t] : batch.tensors) t = t.to(opt_.device, /*non_blocking=*/pinned_);
  if (opt_.finish_on_device) opt_.finish_on_device(batch);
}

std::optional<Batch> Loader::next() {
  const auto t0 = std::chrono::steady_clock::now();
  std::unique_lock<std::mutex> lock(mutex_);
  ready_cv_.wait(lock, [&] { return done_.count(consume_seq_) || (exhausted_ && consume_seq_ >= next_seq_); });
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  wait_since_take_ += waited;
  total_wait_ += waited;
  auto it = done_.find(consume_seq_);
  if (it == done_.end()) return std::nullopt;
  Slot slot = std::move(it->second);
  done_.erase(it);
  consumed_cursor_ = slot.after;
  ++consume_seq_;
  lock.unlock();
  space_cv_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  if (slot.finish_upload)
    slot.finish_upload(*slot.batch);
  else if (!opt_.device.is_cpu())
    to_device(*slot.batch);
#ifdef PATHVLM_HAVE_CUDA
  // The following batch, if built, starts its upload now; it stays in done_ until next() hands it out (an error
  // is its own, rethrown then). The lock is held while the copies and kernels are issued (microseconds): the
  // workers only add other slots.
  if (pinned_) {
    std::lock_guard<std::mutex> relock(mutex_);
    auto following = done_.find(consume_seq_);
    if (following != done_.end() && !following->second.error && !following->second.finish_upload) {
      Slot& ahead = following->second;
      try {
        ahead.finish_upload = upload_on_side_stream(*ahead.batch, opt_.device, [this](Batch& b) { to_device(b); });
      } catch (const std::exception& e) {
        ahead.error = std::make_exception_ptr(Error(str(name_, ", epoch ", ahead.batch->epoch, ": ", e.what())));
      }
    }
  }
#endif
  return std::move(slot.batch);
}

Loader::Cursor Loader::cursor() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return consumed_cursor_;
}

void Loader::restore(const Cursor& c) {
  stop();
  done_.clear();
  next_seq_ = consume_seq_ = 0;
  exhausted_ = false;
  if (sampler_) {
    sampler_->restore(c);
    consumed_cursor_ = c;
  } else {
    eval_next_ = eval_begin_;
    consumed_cursor_ = {};
  }
  start();
}

int64_t Loader::batches_per_epoch() const {
  if (sampler_) return sampler_->batches_per_epoch();
  return (eval_end_ - eval_begin_ + opt_.batch_size - 1) / opt_.batch_size;
}

double Loader::take_wait_seconds() {
  std::lock_guard<std::mutex> lock(mutex_);
  const double w = wait_since_take_;
  wait_since_take_ = 0;
  return w;
}

double Loader::total_wait_seconds() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return total_wait_;
}

}  // namespace pathvlm::data
