// Reducer: bucket assignment, overlap (event order), averaging, accumulation micro-steps, frozen and
// unused parameters, sharding (ZeRO-2: no full gradients kept). MpiReducer* run on 2 and 3 ranks
// (mpi.cmake); Reducer* as one process.
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "core/error.h"
#include "dist/process_group.h"
#include "dist/reducer.h"
#include "dist_test_util.h"

using namespace pathvlm::dist;
using pathvlm::dist::testing::world_comm;

namespace {

// The second layer of Mlp::loss, recomputed in backward as activation checkpointing does: w2 and b2 are
// captured, not inputs, so their gradients come from a backward nested inside the outer one.
struct Captured {
  torch::Tensor w, b;  // not Function inputs: the node gets no edge to them
};
struct RecomputedLayer : torch::autograd::Function<RecomputedLayer> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y, Captured c) {
    ctx->save_for_backward({y});
    ctx->saved_data["w"] = c.w;
    ctx->saved_data["b"] = c.b;
    return torch::matmul(y, c.w.t()) + c.b;  // autograd is off here
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_out) {
    auto y = ctx->get_saved_variables()[0].detach().requires_grad_();
    torch::AutoGradMode on(true);
    auto out = torch::matmul(y, ctx->saved_data["w"].toTensor().t()) + ctx->saved_data["b"].toTensor();
    torch::autograd::backward({out}, {grad_out[0]});
    return {y.grad(), torch::Tensor()};
  }
};

// A two-layer MLP as plain tensors, plus one frozen and one optional (maybe unused) parameter.
struct Mlp {
  torch::Tensor w1, b1, w2, b2, frozen, extra;

  explicit Mlp(int seed) {
    torch::manual_seed(seed);
    w1 = torch::randn({16, 8}).requires_grad_();
    b1 = torch::randn({16}).requires_grad_();
    w2 = torch::randn({4, 16}).requires_grad_();
    b2 = torch::randn({4}).requires_grad_();
    frozen = torch::randn({8});
    extra = torch::randn({4}).requires_grad_();
  }
  Mlp copy() const {
    Mlp m(0);
    for (auto [dst, src] : {std::pair{&m.w1, &w1}, {&m.b1, &b1}, {&m.w2, &w2}, {&m.b2, &b2}, {&m.extra, &extra}})
      *dst = src->detach().clone().requires_grad_();
    m.frozen = frozen.clone();
    return m;
  }
  std::vector<NamedParam> params(bool with_extra = false) const {
    std::vector<NamedParam> p = {{"w1", w1, true}, {"b1", b1, false}, {"frozen", frozen, true},
                                 {"w2", w2, true}, {"b2", b2, false}};
    if (with_extra) p.push_back({"extra", extra, true});
    return p;
  }
  std::vector<torch::Tensor> trainable() const { return {w1, b1, w2, b2, extra}; }
  torch::Tensor loss_recomputed(const torch::Tensor& x) const {
    auto y = torch::tanh(torch::matmul(x + frozen, w1.t()) + b1);
    return RecomputedLayer::apply(y, Captured{w2, b2}).pow(2).sum();
  }
  torch::Tensor loss(const torch::Tensor& x, bool use_extra = false) const {
    auto y = torch::tanh(torch::matmul(x + frozen, w1.t()) + b1);
    y = torch::matmul(y, w2.t()) + b2;
    if (use_extra) y = y * extra;
    return y.pow(2).sum();
  }
};

torch::Tensor batch(int rank, int micro = 0) {
  torch::manual_seed(1000 + 10 * rank + micro);
  return torch::randn({5, 8});
}

DistConfig small_buckets() {
  DistConfig cfg;
  cfg.first_bucket_mb = 200.0 / (1024 * 1024);  // w2 (1 KiB) fills the first bucket
  cfg.bucket_mb = 600.0 / (1024 * 1024);
  return cfg;
}

// Equal up to fp32 rounding of sums taken in another order (another reduction algorithm, per-micro-step partial
// sums): the error scales with the tensor's largest element, not with each element (a near-zero element can be a
// difference of large ones).
void expect_close(const torch::Tensor& a, const torch::Tensor& b, const std::string& what) {
  const double scale = b.abs().max().item<double>(), error = (a - b).abs().max().item<double>();
  EXPECT_LE(error, 1e-5 * scale + 1e-6) << what << "\n got " << a << "\n expected " << b;
}

DistConfig config(bool sharded, bool find_unused = false) {
  auto cfg = small_buckets();
  cfg.shard_optimizer = sharded;
  cfg.find_unused = find_unused;
  return cfg;
}

// The reduced gradient of every parameter of `m`, by name, assembled from the reducer's local shards of
// every rank (the shards of a sharded reducer are disjoint, so summing them over ranks reassembles them).
std::map<std::string, torch::Tensor> reduced_grads(Reducer& reducer, const Mlp& m) {
  auto flat = torch::zeros({reducer.memory().total_numel});
  for (const auto& s : reducer.local_shards()) flat.narrow(0, s.flat_offset, s.numel).copy_(s.grad);
  if (reducer.sharded()) reducer.comm().allreduce(flat, ReduceOp::Sum);
  std::map<std::string, torch::Tensor> shapes;
  for (const auto& p : m.params(/*with_extra=*/true)) shapes[p.name] = p.param;
  std::map<std::string, torch::Tensor> out;
  int64_t offset = 0;
  for (const auto& b : reducer.buckets()) {
    for (const auto& name : b.params) {
      const auto& p = shapes.at(name);
      out[name] = flat.narrow(0, offset, p.numel()).view(p.sizes());
      offset += p.numel();
    }
  }
  return out;
}

void expect_no_param_grads(const Mlp& m, const std::string& when) {
  for (const auto& p : m.trainable()) EXPECT_FALSE(p.grad().defined()) << "a full .grad is kept " << when;
  EXPECT_FALSE(m.frozen.grad().defined()) << when;
}

}  // namespace

TEST(AssignBuckets, RespectsFirstBucketAndCapInReverseOrder) {
  std::vector<NamedParam> params;
  for (int i = 0; i < 10; ++i) params.push_back({"p" + std::to_string(i), torch::zeros({100}), true});  // 400 B
  auto buckets = assign_buckets(params, 500, 1000);
  std::vector<std::vector<size_t>> expected = {{9, 8}, {7, 6, 5}, {4, 3, 2}, {1, 0}};
  EXPECT_EQ(buckets, expected);
  // Each bucket exceeds its cap by less than its last parameter.
  for (size_t b = 0; b + 1 < buckets.size(); ++b) {
    int64_t cap = b == 0 ? 500 : 1000;
    EXPECT_LT(400 * int64_t(buckets[b].size() - 1), cap) << "bucket " << b;
  }
}

TEST(AssignBuckets, KeepsDtypesAndDecayApartAndBigParamsAlone) {
  std::vector<NamedParam> params = {{"a", torch::zeros({10}), true},
                                    {"big", torch::zeros({1000}), true},
                                    {"bias", torch::zeros({10}), false},
                                    {"half", torch::zeros({10}, torch::kHalf), true}};
  auto buckets = assign_buckets(params, 100, 1000);
  // Each kind gets its own bucket; launch order is the order their last gradient arrives (reverse order).
  std::vector<std::vector<size_t>> expected = {{3}, {2}, {1}, {0}};
  EXPECT_EQ(buckets, expected);
  buckets = assign_buckets(params, 1 << 20, 1 << 20);  // one kind shares a bucket whatever its size
  params[3].param = torch::zeros({10});
  buckets = assign_buckets(params, 1 << 20, 1 << 20);
  expected = {{2}, {3, 1, 0}};
  EXPECT_EQ(buckets, expected);
}

TEST(Reducer, PacksParamsIntoBucketViewsAndSkipsFrozen) {
  auto comm = make_local_comm();
  Mlp m(1);
  auto w2_before = m.w2.detach().clone();
  auto frozen_before = m.frozen.clone();
  Reducer reducer(m.params(), *comm, small_buckets());
  auto buckets = reducer.buckets();
  ASSERT_EQ(buckets.size(), 3u);
  EXPECT_EQ(buckets[0].params, std::vector<std::string>({"w2"}));
  EXPECT_EQ(buckets[1].params, std::vector<std::string>({"b2", "b1"}));
  EXPECT_FALSE(buckets[1].decay);
  EXPECT_EQ(buckets[2].params, std::vector<std::string>({"w1"}));
  EXPECT_TRUE(torch::equal(m.w2, w2_before));  // values kept, storage moved into the bucket
  EXPECT_TRUE(torch::equal(m.frozen, frozen_before));
  EXPECT_FALSE(m.frozen.grad().defined());
  const auto& shards = reducer.local_shards();
  ASSERT_EQ(shards.size(), 3u);
  EXPECT_EQ(shards[0].param.data_ptr(), m.w2.data_ptr());
  EXPECT_EQ(shards[0].grad.data_ptr(), m.w2.grad().data_ptr());
  EXPECT_EQ(shards[1].flat_offset, 64);
  EXPECT_EQ(shards[2].flat_offset, 64 + 4 + 16);
  auto mem = reducer.memory();
  EXPECT_EQ(mem.total_numel, 128 + 16 + 64 + 4);
  EXPECT_EQ(mem.param_bytes, 4 * mem.total_numel);

  // Autograd accumulates into the bucket; the optimizer's writes to a shard reach the parameter.
  reducer.prepare_backward(true);
  m.loss(batch(0)).backward();
  reducer.finish_backward();
  EXPECT_GT(shards[2].grad.abs().sum().item<float>(), 0);
  shards[0].param.fill_(3);
  EXPECT_EQ(m.w2[1][2].item<float>(), 3);
  reducer.zero_grad();
  EXPECT_EQ(m.w1.grad().abs().sum().item<float>(), 0);
  m.w1.mutable_grad() = torch::Tensor();  // set_to_none by someone else: the view comes back
  reducer.prepare_backward(true);
  EXPECT_EQ(m.w1.grad().data_ptr(), shards[2].grad.data_ptr());
  m.loss(batch(0)).backward();
  reducer.finish_backward();
}

TEST(Reducer, UnusedParameterIsAnErrorNamingItUnlessFindUnused) {
  auto comm = make_local_comm();
  Mlp m(1);
  Reducer reducer(m.params(/*with_extra=*/true), *comm, small_buckets());
  reducer.prepare_backward(true);
  m.loss(batch(0), /*use_extra=*/false).backward();
  try {
    reducer.finish_backward();
    FAIL() << "no error for an unused parameter";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("got no gradient in this backward: extra"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("dist.find_unused"), std::string::npos) << e.what();
  }
  reducer.prepare_backward(true);  // the reducer is usable again after the error
  m.loss(batch(0), true).backward();
  reducer.finish_backward();

  Mlp m2(1);
  auto cfg = small_buckets();
  cfg.find_unused = true;
  Reducer lenient(m2.params(true), *comm, cfg);
  lenient.prepare_backward(true);
  m2.loss(batch(0), false).backward();
  lenient.finish_backward();
  EXPECT_EQ(m2.extra.grad().abs().sum().item<float>(), 0);
}

TEST(Reducer, ShardedKeepsNoParamGradsAndChecksUnusedOnlyOnTheSyncMicroStep) {
  auto comm = make_local_comm();
  Mlp m(1);
  Mlp reference = m.copy();
  Reducer reducer(m.params(/*with_extra=*/true), *comm, config(/*sharded=*/true));
  // `extra` unused in the accumulation micro-step: counts as zero there, as unsharded.
  reducer.prepare_backward(false);
  m.loss(batch(0, 0), /*use_extra=*/false).backward();
  expect_no_param_grads(m, "after a sharded accumulation micro-step");
  reducer.prepare_backward(true);
  m.loss(batch(0, 1), true).backward();
  reducer.finish_backward();
  expect_no_param_grads(m, "after a sharded step");
  reference.loss(batch(0, 0), false).backward();
  reference.loss(batch(0, 1), true).backward();
  auto grads = reduced_grads(reducer, m);
  expect_close(grads.at("w1"), reference.w1.grad(), "w1 shard grad");
  expect_close(grads.at("extra"), reference.extra.grad(), "extra shard grad");
  reducer.zero_grad();
  for (const auto& s : reducer.local_shards()) EXPECT_EQ(s.grad.abs().sum().item<float>(), 0);

  // Unused in the synchronising micro-step: an error naming it; the reducer is usable again.
  reducer.prepare_backward(true);
  m.loss(batch(0), false).backward();
  try {
    reducer.finish_backward();
    FAIL() << "no error for an unused parameter";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("got no gradient in this backward: extra"), std::string::npos) << e.what();
  }
  expect_no_param_grads(m, "after the error");
  EXPECT_EQ(reducer.memory().grad_bytes, 0);
  reducer.zero_grad();
  reducer.prepare_backward(true);
  m.loss(batch(0), true).backward();
  reducer.finish_backward();
  reference.w1.mutable_grad().zero_();
  reference.loss(batch(0), true).backward();
  expect_close(reduced_grads(reducer, m).at("w1"), reference.w1.grad(), "w1 shard grad after the error");
}

TEST(Reducer, RejectsBadParameterLists) {
  auto comm = make_local_comm();
  auto p = torch::zeros({3}).requires_grad_();
  EXPECT_THROW(Reducer({{"a", p, true}, {"a_again", p, true}}, *comm, DistConfig{}), pathvlm::Error);
  EXPECT_THROW(Reducer({{"frozen", torch::zeros({3}), true}}, *comm, DistConfig{}), pathvlm::Error);
  auto q = torch::zeros({3}).requires_grad_();
  Reducer reducer({{"q", q, true}}, *comm, DistConfig{});
  reducer.prepare_backward(true);
  EXPECT_THROW(reducer.prepare_backward(true), pathvlm::Error);  // finish_backward was skipped
}

// ---- two ranks -----------------------------------------------------------------------------------

TEST(MpiReducer, AveragedGradsEqualManualAllreduceAndFirstBucketLaunchesDuringBackward) {
  for (bool sharded : {false, true}) {
    SCOPED_TRACE(sharded ? "sharded" : "unsharded");
    auto& comm = world_comm();
    const int r = comm.rank();
    Mlp m(1 + r);  // different initial values on each rank: the reducer broadcasts rank 0's
    Mlp reference = Mlp(1).copy();
    Reducer reducer(m.params(), comm, config(sharded));
    expect_close(m.w1, reference.w1, "w1 after the initial broadcast");
    expect_close(m.b2, reference.b2, "b2 after the initial broadcast");
    EXPECT_FALSE(torch::equal(m.frozen, reference.frozen) && r != 0) << "frozen parameters are not broadcast";

    reducer.prepare_backward(true);
    m.loss(batch(r)).backward();
    reducer.finish_backward();
    reference.frozen = m.frozen.clone();
    reference.loss(batch(r)).backward();
    for (auto* g : {&reference.w1, &reference.b1, &reference.w2, &reference.b2}) {
      auto grad = g->grad();
      comm.allreduce(grad, ReduceOp::Avg);
    }
    auto events = reducer.events();
    auto grads = reduced_grads(reducer, m);
    expect_close(grads.at("w1"), reference.w1.grad(), "w1 grad");
    expect_close(grads.at("b1"), reference.b1.grad(), "b1 grad");
    expect_close(grads.at("w2"), reference.w2.grad(), "w2 grad");
    expect_close(grads.at("b2"), reference.b2.grad(), "b2 grad");
    if (!sharded) expect_close(m.w1.grad(), reference.w1.grad(), "w1.grad is the bucket view");

    // Every bucket launched from its hook, before backward returned. Unsharded buckets are waited for at the
    // end; sharded ones may be finished (their full-size buffer freed) already during backward.
    auto at = [&](const std::string& e) { return std::find(events.begin(), events.end(), e) - events.begin(); };
    ASSERT_EQ(events.size(), 7u) << ::testing::PrintToString(events);
    for (int i = 0; i < 3; ++i) {
      const auto launch = "bucket_launch:" + std::to_string(i), done = "bucket_done:" + std::to_string(i);
      EXPECT_LT(at(launch), at("backward_end")) << ::testing::PrintToString(events);
      EXPECT_GT(at(done), at(launch));
      if (i == 0) continue;
      EXPECT_GT(at(launch), at("bucket_launch:" + std::to_string(i - 1))) << "launched in index order";
      EXPECT_GT(at(done), at("bucket_done:" + std::to_string(i - 1))) << "finished in index order";
    }
    if (!sharded) {
      EXPECT_EQ(at("backward_end"), 3) << ::testing::PrintToString(events);
    }
  }
}

TEST(MpiReducer, AccumulationMicroStepsDoNotCommunicate) {
  auto& comm = world_comm();
  const int r = comm.rank();
  Mlp m(1);
  Mlp reference = m.copy();
  Reducer reducer(m.params(), comm, small_buckets());
  const int micro_steps = 3;
  for (int step = 0; step < 2; ++step) {
    for (int k = 0; k < micro_steps; ++k) {
      bool sync = k == micro_steps - 1;
      auto before = comm.collectives_issued();
      reducer.prepare_backward(sync);
      m.loss(batch(r, k)).backward();
      reducer.finish_backward();
      EXPECT_EQ(comm.collectives_issued() - before, sync ? 3 : 0) << "micro-step " << k;
    }
    for (int k = 0; k < micro_steps; ++k) reference.loss(batch(r, k)).backward();
    for (auto* p : {&reference.w1, &reference.b1, &reference.w2, &reference.b2}) {
      auto grad = p->grad();
      comm.allreduce(grad, ReduceOp::Avg);
    }
    expect_close(m.w1.grad(), reference.w1.grad(), "w1.grad, step " + std::to_string(step));
    expect_close(m.b2.grad(), reference.b2.grad(), "b2.grad, step " + std::to_string(step));
    reducer.zero_grad();
    for (auto* p : {&reference.w1, &reference.b1, &reference.w2, &reference.b2}) p->mutable_grad().zero_();
  }
}

TEST(MpiReducer, FindUnusedAgreesWhenOnlySomeRanksUseAParameter) {
  for (bool sharded : {false, true}) {
    SCOPED_TRACE(sharded ? "sharded" : "unsharded");
    auto& comm = world_comm();
    const int r = comm.rank(), w = comm.world_size();
    Mlp m(1);
    Reducer reducer(m.params(true), comm, config(sharded, /*find_unused=*/true));
    reducer.prepare_backward(true);
    bool use = r == w - 1;
    m.loss(batch(r), use).backward();
    reducer.finish_backward();
    Mlp reference = Mlp(1).copy();
    reference.loss(batch(r), use).backward();
    auto local = use ? reference.extra.grad() : torch::zeros({4});
    comm.allreduce(local, ReduceOp::Avg);
    auto extra = reduced_grads(reducer, m).at("extra");
    expect_close(extra, local, "extra grad");
    EXPECT_GT(extra.abs().sum().item<float>(), 0);
    if (sharded) expect_no_param_grads(m, "with find_unused");
  }
}

TEST(MpiReducer, GradientsFromARecomputingBackwardAreReduced) {
  for (bool sharded : {false, true}) {
    SCOPED_TRACE(sharded ? "sharded" : "unsharded");
    auto& comm = world_comm();
    const int r = comm.rank();
    Mlp m(1);
    Mlp reference = m.copy();
    Reducer reducer(m.params(), comm, config(sharded));
    reducer.prepare_backward(true);
    m.loss_recomputed(batch(r)).backward();
    reducer.finish_backward();
    reference.loss(batch(r)).backward();
    auto grads = reduced_grads(reducer, m);
    for (auto [name, p] : {std::pair{"w1", &reference.w1}, {"b1", &reference.b1}, {"w2", &reference.w2}, {"b2", &reference.b2}}) {
      auto g = p->grad();
      comm.allreduce(g, ReduceOp::Avg);
      expect_close(grads.at(name), g, std::string(name) + " grad");
    }
    if (sharded) expect_no_param_grads(m, "after a recomputing backward");
  }
}

// ZeRO-2: with accumulation every micro-step reduce-scatters into the shards; the result equals the
// unsharded reducer's, no parameter keeps a full .grad, and the persistent gradient memory is 1/world.
TEST(MpiReducer, ShardedAccumulationMatchesUnshardedWithoutFullGradients) {
  auto& comm = world_comm();
  const int r = comm.rank(), world = comm.world_size();
  Mlp plain_model(1), sharded_model(1);
  Reducer plain(plain_model.params(), comm, config(false));
  Reducer sharded(sharded_model.params(), comm, config(true));
  const int micro_steps = 3, buckets = 3;
  for (int step = 0; step < 2; ++step) {
    auto before = comm.collectives_issued();
    for (int k = 0; k < micro_steps; ++k) {
      plain.prepare_backward(k == micro_steps - 1);
      plain_model.loss(batch(r, 10 * step + k)).backward();
    }
    plain.finish_backward();
    EXPECT_EQ(comm.collectives_issued() - before, buckets) << "unsharded: one allreduce per bucket per step";
    before = comm.collectives_issued();
    for (int k = 0; k < micro_steps; ++k) {
      sharded.prepare_backward(k == micro_steps - 1);
      sharded_model.loss(batch(r, 10 * step + k)).backward();
      expect_no_param_grads(sharded_model, "after micro-step " + std::to_string(k));
    }
    sharded.finish_backward();
    EXPECT_EQ(comm.collectives_issued() - before, buckets * micro_steps)
        << "sharded: one reduce-scatter per bucket per micro-step";
    expect_no_param_grads(sharded_model, "after finish_backward");
    auto expected = reduced_grads(plain, plain_model), got = reduced_grads(sharded, sharded_model);
    for (const auto& [name, grad] : expected)
      expect_close(got.at(name), grad, name + " grad, step " + std::to_string(step));
    plain.zero_grad();
    sharded.zero_grad();
  }

  auto full = plain.memory(), shard = sharded.memory();
  EXPECT_EQ(full.total_numel, shard.total_numel);
  EXPECT_GE(full.grad_bytes, 4 * full.total_numel);  // padded to a multiple of the world size
  EXPECT_LT(full.grad_bytes, 4 * (full.total_numel + buckets * world));
  EXPECT_EQ(full.shard_grad_bytes, 0);
  EXPECT_EQ(full.peak_transient_grad_bytes, 0);
  EXPECT_EQ(shard.grad_bytes, 0);
  EXPECT_EQ(shard.shard_grad_bytes * world, full.grad_bytes);
  EXPECT_EQ(shard.param_bytes, full.param_bytes);
  // Full-size bucket gradients existed only in flight: at least the largest bucket (w1, 128 floats), at
  // most every bucket plus its reduce-scatter output.
  EXPECT_GE(shard.peak_transient_grad_bytes, 4 * 128);
  EXPECT_LE(shard.peak_transient_grad_bytes, full.grad_bytes + shard.shard_grad_bytes);
}

TEST(MpiReducer, ShardsCoverTheFlatSpaceOnceAndGatherReassembles) {
  auto& comm = world_comm();
  const int r = comm.rank();
  Mlp plain_model(1), sharded_model(1);
  auto cfg = small_buckets();
  Reducer plain(plain_model.params(), comm, cfg);
  cfg.shard_optimizer = true;
  Reducer sharded(sharded_model.params(), comm, cfg);
  ASSERT_TRUE(sharded.sharded());
  auto mem = sharded.memory();
  auto coverage = torch::zeros({mem.total_numel});
  for (const auto& s : sharded.local_shards()) coverage.narrow(0, s.flat_offset, s.numel) += 1;
  comm.allreduce(coverage, ReduceOp::Sum);
  EXPECT_TRUE(torch::equal(coverage, torch::ones({mem.total_numel})));
  EXPECT_LT(mem.local_numel, mem.total_numel);
  EXPECT_GT(mem.shard_grad_bytes, 0);

  // Reduced shard gradients equal the matching slice of the averaged full gradients.
  for (auto* reducer : {&plain, &sharded}) reducer->prepare_backward(true);
  plain_model.loss(batch(r)).backward();
  sharded_model.loss(batch(r)).backward();
  plain.finish_backward();
  sharded.finish_backward();
  std::vector<torch::Tensor> flat;
  for (const auto& s : plain.local_shards()) flat.push_back(s.grad);
  auto full = torch::cat(flat);
  for (const auto& s : sharded.local_shards())
    expect_close(s.grad, full.narrow(0, s.flat_offset, s.numel), "shard at " + std::to_string(s.flat_offset));

  // Each rank writes its shards; gather_params gives every rank every parameter.
  for (const auto& s : sharded.local_shards())
    s.param.copy_(torch::arange(s.flat_offset, s.flat_offset + s.numel, torch::kFloat));
  sharded.gather_params();
  std::vector<torch::Tensor> params;
  for (const auto& s : plain.local_shards()) params.push_back(torch::arange(s.flat_offset, s.flat_offset + s.numel, torch::kFloat));
  auto expected = torch::cat(params);
  // plain buckets and sharded buckets have the same layout: w2 | b2 b1 | w1
  expect_close(sharded_model.w2.flatten(), expected.narrow(0, 0, 64), "w2 gathered");
  expect_close(sharded_model.b1, expected.narrow(0, 68, 16), "b1 gathered");
  expect_close(sharded_model.w1.flatten(), expected.narrow(0, 84, 128), "w1 gathered");
}
