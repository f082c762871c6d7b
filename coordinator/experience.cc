#include "coordinator/experience.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "algo/objectives.h"

namespace grail::coordinator {

grail::v1::Tensor Int64Matrix(int64_t rows, int64_t cols, const std::vector<int64_t>& values) {
  grail::v1::Tensor t;
  t.set_dtype(grail::v1::DTYPE_INT64);
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(int64_t));
  return t;
}

grail::v1::Tensor FloatMatrix(int64_t rows, int64_t cols, const std::vector<float>& values) {
  grail::v1::Tensor t;
  t.set_dtype(grail::v1::DTYPE_FLOAT32);
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float));
  return t;
}

Packed PackSequences(const SamplePtrs& samples, int pad_id) {
  Packed p;
  for (const auto* s : samples) p.width = std::max<size_t>(p.width, s->prompt_token_ids_size() + s->token_ids_size());
  p.ids.assign(samples.size() * p.width, pad_id);
  p.valid.assign(samples.size() * p.width, 0);
  for (size_t b = 0; b < samples.size(); ++b) {
    size_t t = 0;
    for (int id : samples[b]->prompt_token_ids()) p.ids[b * p.width + t] = id, p.valid[b * p.width + t++] = 1;
    for (int id : samples[b]->token_ids()) p.ids[b * p.width + t] = id, p.valid[b * p.width + t++] = 1;
  }
  return p;
}

absl::StatusOr<std::vector<std::vector<float>>> AlignedLogProbs(const grail::v1::LogProbsResponse& response,
                                                                size_t batch, size_t width) {
  const auto& lp = response.log_probs();
  if (width == 0 || lp.dtype() != grail::v1::DTYPE_FLOAT32 || lp.shape_size() != 2 ||
      lp.shape(0) != static_cast<int64_t>(batch) || lp.shape(1) != static_cast<int64_t>(width) - 1 ||
      lp.data().size() != batch * (width - 1) * sizeof(float)) {
    return absl::InternalError("reference: log_probs has the wrong shape");
  }
  std::vector<std::vector<float>> out(batch, std::vector<float>(width, 0.0f));
  const float* v = reinterpret_cast<const float*>(lp.data().data());
  for (size_t b = 0; b < batch; ++b) std::memcpy(out[b].data() + 1, v + b * (width - 1), (width - 1) * sizeof(float));
  return out;
}

bool StepNeedsReference(const grail::v1::AlgorithmSpec& a, int step) {
  if (a.kl_coef() > 0 || a.use_kl_in_reward() || a.kl_metric_every() <= 1) return true;
  return step == 1 || step % a.kl_metric_every() == 0;
}

BehaviourKl BehaviourMinusReference(const SamplePtrs& samples, const std::vector<std::vector<float>>& ref_lp) {
  BehaviourKl kl;
  kl.k1.resize(samples.size());
  if (ref_lp.empty()) {
    for (size_t b = 0; b < samples.size(); ++b) kl.k1[b].assign(samples[b]->token_ids_size(), 0.0);
    kl.measured = false;
    return kl;
  }
  double sum = 0, tokens = 0;
  for (size_t b = 0; b < samples.size(); ++b) {
    const int P = samples[b]->prompt_token_ids_size();
    for (int i = 0; i < samples[b]->token_ids_size(); ++i) {
      kl.k1[b].push_back(samples[b]->behavior_log_probs(i) - ref_lp[b][P + i]);
      sum += kl.k1[b].back();
      ++tokens;
    }
  }
  kl.mean = tokens > 0 ? sum / tokens : 0;
  return kl;
}

grail::v1::ComputeValuesRequest ValuesRequest(const SamplePtrs& samples, int pad_id) {
  const Packed packed = PackSequences(samples, pad_id);
  grail::v1::ComputeValuesRequest req;
  *req.mutable_input_ids() = Int64Matrix(static_cast<int64_t>(samples.size()), packed.width, packed.ids);
  return req;
}

absl::StatusOr<Matrix> ResponseValues(const grail::v1::ComputeValuesResponse& response, const SamplePtrs& samples) {
  const int64_t B = static_cast<int64_t>(samples.size());
  int64_t packed_width = 0, width = 1;
  for (const auto* s : samples) {
    packed_width = std::max<int64_t>(packed_width, s->prompt_token_ids_size() + s->token_ids_size());
    width = std::max<int64_t>(width, s->token_ids_size());
  }
  const auto& v = response.values();
  if (v.dtype() != grail::v1::DTYPE_FLOAT32 || v.shape_size() != 2 || v.shape(0) != B || v.shape(1) != packed_width ||
      v.data().size() != static_cast<size_t>(B * packed_width) * sizeof(float)) {
    return absl::InternalError("learner: values have the wrong shape");
  }
  const float* vals = reinterpret_cast<const float*>(v.data().data());
  Matrix values(B, width);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t P = samples[b]->prompt_token_ids_size();
    for (int64_t t = 0; t < samples[b]->token_ids_size(); ++t) values.at(b, t) = vals[b * packed_width + P + t];
  }
  return values;
}

absl::StatusOr<StepAdvantages> EstimateAdvantages(const grail::v1::AlgorithmSpec& a, bool value_pretraining,
                                                  const SamplePtrs& samples, const std::vector<double>& scores,
                                                  const std::vector<int64_t>& index, const BehaviourKl& kl,
                                                  double kl_coef, const Matrix* values) {
  const algo::Estimator* estimator = algo::FindEstimator(a.advantage_estimator());
  if (estimator == nullptr) {
    return absl::UnimplementedError(
        absl::StrCat("algorithm.advantage_estimator: ", a.advantage_estimator(), " is not implemented"));
  }
  // Outcome rewards: the score sits on each response's last token; with KL in the reward
  // every token also carries -kl_coef * k1.
  int64_t width = 1;
  for (const auto* s : samples) width = std::max<int64_t>(width, s->token_ids_size());
  const int64_t B = static_cast<int64_t>(samples.size());
  algo::EstimatorInputs in;
  in.rewards = Matrix(B, width);
  in.mask = Matrix(B, width);
  in.lengths.resize(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = samples[b]->token_ids_size();
    in.lengths[b] = static_cast<double>(n);
    for (int64_t t = 0; t < n; ++t) {
      in.mask.at(b, t) = 1;
      in.rewards.at(b, t) = -kl_coef * kl.k1[b][t];
    }
    if (n > 0) in.rewards.at(b, n - 1) += scores[b];
  }
  in.index = index;
  in.scores = scores;
  in.gamma = a.gamma();
  in.gfpo_k = a.gfpo_k();
  in.gfpo_metric = a.gfpo_metric() == "token_efficiency" ? algo::GfpoMetric::kTokenEfficiency : algo::GfpoMetric::kLength;
  StepAdvantages out;
  if (estimator->needs_critic) {
    if (values == nullptr || values->rows != B || values->cols != width) {
      return absl::InternalError(absl::StrCat(estimator->name, ": the critic's values are missing or have the wrong shape"));
    }
    in.values = values;
    // During value pretraining the targets are Monte-Carlo returns (lambda 1).
    in.lambda_critic = value_pretraining ? 1.0 : a.lambda_critic();
    in.lambda_actor.assign(B, a.lambda_actor());
    if (a.length_adaptive_alpha() > 0) {
      for (int64_t b = 0; b < B; ++b) {
        in.lambda_actor[b] =
            std::max(0.0, algo::LengthAdaptiveLambda(a.length_adaptive_alpha(), std::max(1.0, in.lengths[b])));
      }
    }
    out.values = *values;
    out.has_critic = true;
  }
  algo::EstimatorOutput result = estimator->fn(in);
  out.advantages = std::move(result.advantages);
  if (out.has_critic) out.returns = std::move(result.returns);
  return out;
}

grail::v1::TrainStepRequest TrainStepRequest(int step, const SamplePtrs& samples,
                                             const std::vector<std::vector<float>>& ref_lp,
                                             const StepAdvantages& adv, bool critic_only, bool mask_truncated,
                                             int pad_id) {
  const Packed packed = PackSequences(samples, pad_id);
  const size_t B = samples.size(), width = packed.width;
  std::vector<float> mask(B * width, 0), old_lp(B * width, 0), advantages(B * width, 0), ref(B * width, 0);
  std::vector<float> returns, values;
  if (adv.has_critic) returns.assign(B * width, 0), values.assign(B * width, 0);
  for (size_t b = 0; b < B; ++b) {
    const auto* s = samples[b];
    const size_t P = s->prompt_token_ids_size();
    // DAPO overlong filtering: a truncated response takes no part in the loss.
    const float in_loss = mask_truncated && s->finish_reason() == grail::v1::FINISH_REASON_LENGTH ? 0.0f : 1.0f;
    for (int i = 0; i < s->token_ids_size(); ++i) {
      const size_t t = b * width + P + i;
      mask[t] = in_loss;
      old_lp[t] = s->behavior_log_probs(i);
      advantages[t] = static_cast<float>(adv.advantages.at(b, i));
      if (adv.has_critic) {
        returns[t] = static_cast<float>(adv.returns.at(b, i));
        values[t] = static_cast<float>(adv.values.at(b, i));
      }
    }
    if (!ref_lp.empty()) std::copy(ref_lp[b].begin(), ref_lp[b].end(), ref.begin() + b * width);
  }
  grail::v1::TrainStepRequest train;
  train.set_step(step);
  auto* e = train.mutable_experience();
  *e->mutable_input_ids() = Int64Matrix(B, width, packed.ids);
  *e->mutable_response_mask() = FloatMatrix(B, width, mask);
  if (adv.has_critic) {
    *e->mutable_returns() = FloatMatrix(B, width, returns);
    *e->mutable_values() = FloatMatrix(B, width, values);
  }
  train.set_critic_only(critic_only);
  *e->mutable_old_log_probs() = FloatMatrix(B, width, old_lp);
  *e->mutable_advantages() = FloatMatrix(B, width, advantages);
  if (!ref_lp.empty()) *e->mutable_ref_log_probs() = FloatMatrix(B, width, ref);
  return train;
}

grail::v1::SupervisedStepRequest SupervisedStepRequest(int step, const std::vector<SupervisedRow>& rows, int pad_id,
                                                       int pack_length) {
  // Each packed row lists the sequences it holds, in order.
  std::vector<std::vector<size_t>> packed;
  if (pack_length > 0) {
    std::vector<size_t> order(rows.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return rows[a].ids.size() > rows[b].ids.size(); });
    std::vector<size_t> used;  // tokens in each packed row
    for (size_t i : order) {
      const size_t n = rows[i].ids.size();
      size_t r = 0;
      while (r < packed.size() && used[r] + n > static_cast<size_t>(pack_length)) ++r;
      if (r == packed.size()) {
        packed.emplace_back();
        used.push_back(0);
      }
      packed[r].push_back(i);
      used[r] += n;
    }
  } else {
    for (size_t i = 0; i < rows.size(); ++i) packed.push_back({i});
  }
  size_t width = 0;
  for (const auto& members : packed) {
    size_t n = 0;
    for (size_t i : members) n += rows[i].ids.size();
    width = std::max(width, n);
  }
  const size_t batch = packed.size();
  std::vector<int64_t> ids(batch * width, pad_id), segments(batch * width, 0);
  std::vector<float> mask(batch * width, 0.0f);
  for (size_t b = 0; b < batch; ++b) {
    size_t t = 0;
    int64_t segment = 0;
    for (size_t i : packed[b]) {
      const SupervisedRow& row = rows[i];
      for (size_t k = 0; k < row.ids.size(); ++k, ++t) {
        ids[b * width + t] = row.ids[k];
        mask[b * width + t] = k < row.loss_mask.size() && row.loss_mask[k] ? 1.0f : 0.0f;
        segments[b * width + t] = segment;
      }
      ++segment;
    }
    for (; t < width; ++t) segments[b * width + t] = segment;  // the padding: a segment of its own
  }
  grail::v1::SupervisedStepRequest req;
  req.set_step(step);
  *req.mutable_input_ids() = Int64Matrix(batch, width, ids);
  *req.mutable_loss_mask() = FloatMatrix(batch, width, mask);
  if (pack_length > 0) *req.mutable_segment_ids() = Int64Matrix(batch, width, segments);
  return req;
}

}  // namespace grail::coordinator
