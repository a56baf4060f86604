// Runs fn(0) .. fn(count - 1) on up to `threads` threads (the caller's included), each index once, in no fixed
// order. The first exception stops the indices not yet started and is rethrown once every thread has ended.
//
//   std::vector<Result> results(items.size());
//   for_each_index(items.size(), threads, [&](size_t i) { results[i] = work(items[i]); });
#pragma once
#include <cstddef>
#include <functional>

namespace pathvlm {

void for_each_index(size_t count, int threads, const std::function<void(size_t)>& fn);

}  // namespace pathvlm
