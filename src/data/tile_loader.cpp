#include "data/tile_loader.h"
#include "core/random.h"

#include <ATen/CPUGeneratorImpl.h>

#include <chrono>

#include "core/error.h"

namespace pathvlm::data {
namespace {

// The augmentation seed of one sample: a function of (run seed, epoch, record) only.
uint64_t sample_seed(uint64_t seed, int64_t epoch, int64_t index) {
  return splitmix64(splitmix64(splitmix64(seed) ^ static_cast<uint64_t>(epoch)) ^ static_cast<uint64_t>(index));
}

}  // namespace

std::pair<int64_t, int64_t> eval_share(int64_t n, int rank, int world_size) {
  PATHVLM_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "eval_share: rank ", rank, " outside world size ",
                world_size);
  return {n * rank / world_size, n * (rank + 1) / world_size};
}

TileLoader::TileLoader(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& options)
    : dataset_(std::move(dataset)), opt_(options) {
  PATHVLM_CHECK(dataset_, "TileLoader: no dataset");
  PATHVLM_CHECK(opt_.batch_size >= 1, "TileLoader: batch size must be >= 1, got ", opt_.batch_size);
  PATHVLM_CHECK(opt_.image_size >= 1, "TileLoader: image size must be >= 1, got ", opt_.image_size);
  PATHVLM_CHECK(opt_.workers >= 1 && opt_.prefetch >= 1, "TileLoader: workers and prefetch must be >= 1, got ",
                opt_.workers, " and ", opt_.prefetch);
  if (opt_.train) {
    try {
      sampler_ = std::make_unique<DistributedSampler>(dataset_->size(), opt_.batch_size, opt_.rank, opt_.world_size,
                                                      opt_.seed, opt_.shuffle);
    } catch (const Error& e) {
      throw Error(str("tiles '", dataset_->source(), "': ", e.what()));
    }
    consumed_cursor_ = sampler_->cursor();
  } else {
    std::tie(eval_begin_, eval_end_) = eval_share(dataset_->size(), opt_.rank, opt_.world_size);
    eval_next_ = eval_begin_;
  }
  start();
}

TileLoader::~TileLoader() { stop(); }

void TileLoader::start() {
  stopping_ = false;
  for (int i = 0; i < opt_.workers; ++i) threads_.emplace_back([this] { worker(); });
}

void TileLoader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  space_cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

std::optional<TileLoader::Job> TileLoader::make_job() {
  Job job;
  if (sampler_) {
    job.indices = sampler_->next_batch();
    job.after = sampler_->cursor();
    job.epoch = job.after.epoch;
  } else {
    if (eval_next_ >= eval_end_) return std::nullopt;
    const int64_t end = std::min(eval_end_, eval_next_ + opt_.batch_size);
    for (int64_t i = eval_next_; i < end; ++i) job.indices.push_back(i);
    eval_next_ = end;
    job.after = {0, next_seq_ + 1};
  }
  job.seq = next_seq_++;
  return job;
}

void TileLoader::worker() {
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
    try {
      slot.batch = build(job);
    } catch (...) {
      slot.error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_) return;
      done_[job.seq] = std::move(slot);
      cursor_after_[job.seq] = job.after;
    }
    ready_cv_.notify_all();
  }
}

torch::Tensor TileLoader::transform(const torch::Tensor& rgb, int64_t epoch, int64_t index) const {
  if (!opt_.train) return normalize_image(resize_shortest_and_center_crop(rgb, opt_.image_size), opt_.mean, opt_.std);
  auto gen = at::detail::createCPUGenerator(sample_seed(opt_.seed, epoch, index));
  return normalize_image(random_resized_crop(rgb, opt_.image_size, gen, opt_.crop_scale, opt_.crop_ratio), opt_.mean,
                         opt_.std);
}

TileBatch TileLoader::build(const Job& job) const {
  const auto b = static_cast<int64_t>(job.indices.size());
  const int64_t s = opt_.image_size;
  auto options = torch::TensorOptions().dtype(torch::kFloat);
  if (opt_.pin_memory && torch::cuda::is_available()) options = options.pinned_memory(true);
  TileBatch batch;
  batch.images = torch::empty({b, 3, s, s}, options);
  batch.labels = torch::empty({b}, torch::kInt64);
  batch.indices = torch::tensor(job.indices, torch::kInt64);
  batch.epoch = job.epoch;
  auto* labels = batch.labels.data_ptr<int64_t>();
  for (int64_t k = 0; k < b; ++k) {
    const int64_t i = job.indices[static_cast<size_t>(k)];
    batch.images[k].copy_(transform(dataset_->image(i), job.epoch, i));
    batch.captions.push_back(dataset_->caption(i));
    batch.ids.push_back(dataset_->id(i));
    labels[k] = dataset_->label(i);
  }
  return batch;
}

std::optional<TileBatch> TileLoader::next() {
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
  consumed_cursor_ = cursor_after_.at(consume_seq_);
  cursor_after_.erase(consume_seq_);
  ++consume_seq_;
  lock.unlock();
  space_cv_.notify_all();
  if (slot.error) std::rethrow_exception(slot.error);
  return std::move(slot.batch);
}

TileLoader::Cursor TileLoader::cursor() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return consumed_cursor_;
}

void TileLoader::restore(const Cursor& c) {
  stop();
  done_.clear();
  cursor_after_.clear();
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

int64_t TileLoader::batches_per_epoch() const {
  if (sampler_) return sampler_->batches_per_epoch();
  return (eval_end_ - eval_begin_ + opt_.batch_size - 1) / opt_.batch_size;
}

double TileLoader::take_wait_seconds() {
  std::lock_guard<std::mutex> lock(mutex_);
  const double w = wait_since_take_;
  wait_since_take_ = 0;
  return w;
}

}  // namespace pathvlm::data
