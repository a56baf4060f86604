// The generic Loader over a toy dataset: ordered output, bounded prefetch, resume, errors, the evaluation pass
// and the OpenMP thread count its workers run libtorch ops with.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "data/loader.h"

using namespace pathvlm::data;

namespace {

// Record i is the value i plus a per-record random "augmentation"; record costs differ (i % 3 ms) so
// workers finish out of order.
Batch toy_batch(const BatchRequest& request) {
  const auto n = static_cast<int64_t>(request.records.size());
  Batch batch;
  batch.samples = n;
  auto values = torch::empty({n}, request.host(torch::kInt64));
  auto noise = torch::empty({n, 4}, request.host(torch::kFloat));
  auto& names = batch.strings["names"];
  request.for_each([&](int64_t row, int64_t record) {
    std::this_thread::sleep_for(std::chrono::milliseconds(record % 3));
    values[row] = record;
    auto gen = request.generator(row);
    noise[row].copy_(torch::rand({4}, gen));
    names.push_back("record " + std::to_string(record));
  });
  batch.tensors["values"] = values;
  batch.tensors["noise"] = noise;
  return batch;
}

LoaderOptions toy_options() {
  LoaderOptions o;
  o.batch_size = 4;
  o.seed = 5;
  o.workers = 4;
  o.prefetch = 3;
  return o;
}

std::vector<int64_t> values_of(const Batch& b) {
  auto v = b.at("values");
  return {v.data_ptr<int64_t>(), v.data_ptr<int64_t>() + v.numel()};
}

}  // namespace

TEST(Loader, OrderedOutputFollowsTheSamplerWithSeveralWorkers) {
  Loader loader("toy", 30, toy_batch, toy_options());
  DistributedSampler sampler(30, 4, 0, 1, 5);
  EXPECT_EQ(loader.batches_per_epoch(), 7);
  for (int b = 0; b < 16; ++b) {  // crosses two epoch boundaries
    auto batch = loader.next();
    ASSERT_TRUE(batch);
    auto expected = sampler.next_batch();
    ASSERT_EQ(values_of(*batch), expected) << "batch " << b;
    EXPECT_EQ(batch->epoch, sampler.cursor().epoch);
    EXPECT_EQ(batch->samples, 4);
    EXPECT_EQ(batch->text("names")[0], "record " + std::to_string(expected[0]));
    // The noise of a record depends on (seed, epoch, record) only.
    auto gen = at::detail::createCPUGenerator(record_seed(5, batch->epoch, expected[2]));
    EXPECT_TRUE(torch::equal(batch->at("noise")[2], torch::rand({4}, gen)));
  }
  EXPECT_EQ(loader.cursor().epoch, 2);
  EXPECT_EQ(loader.cursor().batch, 2);
}

TEST(Loader, PrefetchBoundsTheBatchesBuiltAhead) {
  // Batches of one record, in order: the record number is the batch's sequence number. `requested` counts
  // the next() calls begun, so a worker starting batch s while s >= requested + prefetch broke the bound.
  std::atomic<int64_t> requested{0}, most_ahead{0};
  auto options = toy_options();
  options.batch_size = 1;
  options.shuffle = false;
  auto build = [&](const BatchRequest& request) {
    const int64_t ahead = request.records[0] - requested.load() + 1;
    int64_t m = most_ahead.load();
    while (ahead > m && !most_ahead.compare_exchange_weak(m, ahead)) {
    }
    return toy_batch(request);
  };
  Loader loader("toy", 100, build, options);
  for (int b = 0; b < 20; ++b) {
    std::this_thread::sleep_for(std::chrono::milliseconds(3));  // a slow consumer: the workers run ahead
    ++requested;
    ASSERT_EQ(values_of(*loader.next()), std::vector<int64_t>{b});
  }
  EXPECT_EQ(most_ahead.load(), options.prefetch);
}

TEST(Loader, ResumeFromACursorEqualsTheUninterruptedStream) {
  Loader whole("toy", 30, toy_batch, toy_options());
  std::vector<Batch> seen;
  for (int b = 0; b < 12; ++b) seen.push_back(*whole.next());

  Loader first("toy", 30, toy_batch, toy_options());
  for (int b = 0; b < 5; ++b) first.next();
  const auto cursor = first.cursor();
  EXPECT_EQ(cursor.epoch, 0);
  EXPECT_EQ(cursor.batch, 5);

  auto other_timing = toy_options();
  other_timing.workers = 1;  // the content may not depend on which worker built a batch
  Loader resumed("toy", 30, toy_batch, other_timing);
  resumed.restore(cursor);
  for (int b = 5; b < 12; ++b) {
    auto batch = resumed.next();
    ASSERT_TRUE(batch);
    EXPECT_EQ(values_of(*batch), values_of(seen[b])) << "batch " << b;
    EXPECT_TRUE(torch::equal(batch->at("noise"), seen[b].at("noise"))) << "batch " << b;
    EXPECT_EQ(batch->epoch, seen[b].epoch);
  }
}

TEST(Loader, WorkerErrorIsRethrownNamingTheRecord) {
  auto options = toy_options();
  options.shuffle = false;
  auto build = [](const BatchRequest& request) {
    request.for_each([](int64_t, int64_t record) {
      if (record == 6) throw pathvlm::Error("unreadable bytes");
    });
    return toy_batch(request);
  };
  Loader loader("toy set 'x'", 30, build, options);
  EXPECT_EQ(values_of(*loader.next()), (std::vector<int64_t>{0, 1, 2, 3}));
  try {
    loader.next();
    FAIL() << "no error for record 6";
  } catch (const pathvlm::Error& e) {
    EXPECT_STREQ(e.what(), "toy set 'x', epoch 0: record 6: unreadable bytes");
  }
  EXPECT_EQ(values_of(*loader.next()), (std::vector<int64_t>{8, 9, 10, 11}));  // the stream goes on
}

TEST(Loader, EvalPassCoversEachRecordOnceAcrossRanks) {
  std::vector<int64_t> all;
  for (int rank = 0; rank < 3; ++rank) {
    auto options = toy_options();
    options.train = false;
    options.rank = rank;
    options.world_size = 3;
    Loader loader("toy", 23, toy_batch, options);
    auto [begin, end] = eval_share(23, options.batch_size, rank, 3);
    EXPECT_EQ(begin % options.batch_size, 0) << "a rank's share starts at a batch boundary of the one-process pass";
    int64_t batches = 0, expected_next = begin;
    while (auto batch = loader.next()) {
      ++batches;
      for (int64_t v : values_of(*batch)) {
        EXPECT_EQ(v, expected_next++);  // one ordered pass over the contiguous share
        all.push_back(v);
      }
    }
    EXPECT_EQ(expected_next, end);
    EXPECT_EQ(batches, loader.batches_per_epoch());
    EXPECT_FALSE(loader.next());  // stays exhausted
  }
  std::vector<int64_t> expected(23);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
}

// finish_on_device completes each batch exactly once where its tensors are: on the CPU in the workers (a batch
// discarded by restore() may be finished without being handed out), elsewhere in next() after the copy. The
// meta device stands in for a GPU here: the copy and the hook run, with shapes but no data.
TEST(Loader, FinishOnDeviceRunsOncePerBatchWhereTheTensorsAre) {
  std::atomic<int> finished{0}, not_on_device{0};
  auto finishing_on = [&](torch::Device device) {
    auto options = toy_options();
    options.device = device;
    options.finish_on_device = [&finished, &not_on_device, device](Batch& b) {
      ++finished;
      if (b.at("values").device() != device) ++not_on_device;
      b.tensors["values"] = b.at("values") + 1000;  // twice would add 2000
      b.tensors["finished"] = torch::ones({b.samples}, b.at("values").options());
    };
    return options;
  };
  const auto options = finishing_on(torch::kCPU);
  auto cpu = std::make_unique<Loader>("toy", 30, toy_batch, options);
  DistributedSampler sampler(30, 4, 0, 1, 5);
  for (int b = 0; b < 9; ++b) {
    auto batch = cpu->next();
    auto expected = sampler.next_batch();
    for (auto& v : expected) v += 1000;
    ASSERT_EQ(values_of(*batch), expected) << "batch " << b;
    EXPECT_TRUE(torch::equal(batch->at("finished"), torch::ones({4}, torch::kInt64)));
  }
  EXPECT_EQ(cpu->cursor().batch, 2);  // 9 handed out: epoch 1, batch 2; the batches built ahead do not count
  EXPECT_EQ(cpu->cursor().epoch, 1);
  cpu.reset();
  EXPECT_GE(finished.load(), 9);
  EXPECT_LE(finished.load(), 9 + options.prefetch);  // in the workers, at most `prefetch` ahead
  EXPECT_EQ(not_on_device.load(), 0);

  finished = 0;
  Loader meta("toy", 30, toy_batch, finishing_on(torch::kMeta));
  for (int b = 0; b < 5; ++b) {
    auto batch = meta.next();
    EXPECT_EQ(finished.load(), b + 1) << "finished in next(), once per batch handed out";
    EXPECT_TRUE(batch->at("values").is_meta());
    EXPECT_TRUE(batch->at("finished").is_meta());
    EXPECT_EQ(batch->at("noise").sizes(), (std::vector<int64_t>{4, 4}));
  }
  EXPECT_EQ(not_on_device.load(), 0);
}

TEST(Loader, BatchAccessorsNameTheMissingKey) {
  Batch b;
  b.tensors["pixels"] = torch::zeros({1});
  b.strings["captions"] = {"a"};
  EXPECT_THROW(b.at("input_ids"), pathvlm::Error);
  try {
    b.text("ids");
    FAIL() << "no error for a missing key";
  } catch (const pathvlm::Error& e) {
    EXPECT_STREQ(e.what(), "batch has no strings 'ids' (it has: captions)");
  }
}

// The workers run libtorch's CPU ops on one OpenMP thread even when the process allows more. ctest runs tests
// with OMP_NUM_THREADS=1, under which the check could not fail, so the test reruns itself with 3 threads.
TEST(LoaderOpenMp, WorkersRunOneIntraOpThread) {
  int fresh_thread = 0;
  std::thread([&] { fresh_thread = omp_get_max_threads(); }).join();
  if (fresh_thread < 2) {
    if (std::getenv("PATHVLM_LOADER_OMP_RERUN")) FAIL() << "OMP_NUM_THREADS=3 did not reach a new thread";
    const std::string command = "PATHVLM_LOADER_OMP_RERUN=1 OMP_NUM_THREADS=3 '" +
                                std::filesystem::read_symlink("/proc/self/exe").string() +
                                "' --gtest_filter=LoaderOpenMp.* > /dev/null";
    EXPECT_EQ(std::system(command.c_str()), 0) << command;
    return;
  }
  torch::set_num_threads(fresh_thread);  // libtorch's process-wide count, which a worker's lazy init would copy
  std::atomic<int> omp_seen{-1}, torch_seen{-1};
  auto build = [&](const BatchRequest& request) {
    auto x = torch::rand({256, 256});
    (void)(x * 2).sum().item<float>();  // a parallel op first: its per-thread init must not undo the setting
    omp_seen = omp_get_max_threads();
    torch_seen = at::get_num_threads();
    return toy_batch(request);
  };
  Loader loader("toy", 30, build, toy_options());
  ASSERT_TRUE(loader.next());
  EXPECT_EQ(omp_seen.load(), 1);
  EXPECT_EQ(torch_seen.load(), 1);
  EXPECT_EQ(omp_get_max_threads(), fresh_thread);  // the consumer's own count is untouched
}
