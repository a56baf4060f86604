// Image<->text (or slide<->report) retrieval metrics; see retrieval.h.
#include "eval/retrieval.h"

#include <cmath>
#include <cstdio>

#include "core/error.h"

namespace pathvlm::eval {

// ---- retrieval ----------------------------------------------------------------------------------------

namespace {

RetrievalDirection rank_metrics(const torch::Tensor& similarity) {
  // Rank (0-based) of the matching column in each row = how many candidates score higher by more than the tie
  // tolerance.
  auto positive = similarity.diagonal().unsqueeze(1);
  auto ranks = (similarity > positive + kRetrievalTieTolerance).sum(1).to(torch::kDouble);
  RetrievalDirection d;
  d.r1 = (ranks < 1).to(torch::kDouble).mean().item<double>();
  d.r5 = (ranks < 5).to(torch::kDouble).mean().item<double>();
  d.r10 = (ranks < 10).to(torch::kDouble).mean().item<double>();
  auto sorted = std::get<0>(ranks.sort());
  const int64_t n = sorted.size(0);
  const double median = n % 2 ? sorted[n / 2].item<double>()
                              : (sorted[n / 2 - 1].item<double>() + sorted[n / 2].item<double>()) / 2;
  d.median_rank = std::floor(median) + 1;
  d.mean_rank = ranks.mean().item<double>() + 1;
  return d;
}

}  // namespace

RetrievalMetrics retrieval_metrics(const torch::Tensor& image, const torch::Tensor& text, const std::string& image_name,
                                   const std::string& text_name) {
  PATHVLM_CHECK(image.dim() == 2 && image.sizes() == text.sizes() && image.size(0) > 0,
                "retrieval metrics: image ", image.sizes(), " and text ", text.sizes(),
                " must be equal non-empty [N, D] matrices");
  // In double: products of float embeddings are exact there, so a score no longer depends on where its row and
  // column sit in the matrix (float GEMM kernels round edge tiles differently), i.e. on how ranks split the rows.
  namespace F = torch::nn::functional;
  auto img = F::normalize(image.to(torch::kCPU, torch::kDouble), F::NormalizeFuncOptions().dim(1));
  auto txt = F::normalize(text.to(torch::kCPU, torch::kDouble), F::NormalizeFuncOptions().dim(1));
  auto sim = img.matmul(txt.t());
  RetrievalMetrics m;
  m.image_name = image_name;
  m.text_name = text_name;
  m.pairs = image.size(0);
  m.image_to_text = rank_metrics(sim);
  m.text_to_image = rank_metrics(sim.t());
  return m;
}

std::string format_metrics(const RetrievalMetrics& m) {
  char buf[320];
  const auto& a = m.image_to_text;
  const auto& b = m.text_to_image;
  std::snprintf(buf, sizeof buf,
                "%s->%s R@1 %.4f R@5 %.4f R@10 %.4f median %.0f | %s->%s R@1 %.4f R@5 %.4f R@10 %.4f "
                "median %.0f  (%lld pairs)",
                m.image_name.c_str(), m.text_name.c_str(), a.r1, a.r5, a.r10, a.median_rank, m.text_name.c_str(),
                m.image_name.c_str(), b.r1, b.r5, b.r10, b.median_rank, static_cast<long long>(m.pairs));
  return buf;
}

std::vector<std::pair<std::string, double>> metric_values(const RetrievalMetrics& m, const std::string& prefix) {
  std::vector<std::pair<std::string, double>> out;
  for (auto [name, d] : {std::pair{m.image_name + "_to_" + m.text_name, &m.image_to_text},
                         std::pair{m.text_name + "_to_" + m.image_name, &m.text_to_image}}) {
    const std::string p = prefix + name + "_";
    out.push_back({p + "R@1", d->r1});
    out.push_back({p + "R@5", d->r5});
    out.push_back({p + "R@10", d->r10});
    out.push_back({p + "median_rank", d->median_rank});
    out.push_back({p + "mean_rank", d->mean_rank});
  }
  return out;
}

}  // namespace pathvlm::eval
