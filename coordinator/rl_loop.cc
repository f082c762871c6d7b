#include "coordinator/rl_loop.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <type_traits>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/parallel.h"
#include "common/status_macros.h"
#include "coordinator/advantages.h"

namespace grail::coordinator {

namespace {

constexpr int kDefaultSftBatch = 64;
constexpr int kDefaultSamplingRounds = 3;

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

uint64_t Mix(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

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

// Prompt + response token ids of each sample, right-padded with kPad into one row-major
// [B, width] block; `valid` marks real tokens.
struct Packed {
  size_t width = 0;
  std::vector<int64_t> ids;
  std::vector<int64_t> valid;
};

Packed PackSequences(const std::vector<const grail::v1::Sample*>& samples) {
  Packed p;
  for (const auto* s : samples) p.width = std::max<size_t>(p.width, s->prompt_token_ids_size() + s->token_ids_size());
  p.ids.assign(samples.size() * p.width, model::CharTokenizer::kPad);
  p.valid.assign(samples.size() * p.width, 0);
  for (size_t b = 0; b < samples.size(); ++b) {
    size_t t = 0;
    for (int id : samples[b]->prompt_token_ids()) p.ids[b * p.width + t] = id, p.valid[b * p.width + t++] = 1;
    for (int id : samples[b]->token_ids()) p.ids[b * p.width + t] = id, p.valid[b * p.width + t++] = 1;
  }
  return p;
}

// `status` with its message starting with `role`, unless the client already named the peer
// ("reward 127.0.0.1:5: ...").
absl::Status Named(absl::string_view role, const absl::Status& status) {
  if (absl::StartsWith(status.message(), absl::StrCat(role, " "))) return status;
  return absl::Status(status.code(), absl::StrCat(role, ": ", status.message()));
}

// The error a run ends with when `role` stayed away (last answering `last`) past `bound`.
absl::Status NotRecovered(absl::string_view role, const absl::Status& last, absl::Duration bound) {
  return absl::Status(last.code(), absl::StrCat(Named(role, last).message(), " (not recovered within ",
                                                absl::FormatDuration(bound), ")"));
}

// Whether a failed call may succeed if repeated (the peer was away or busy); a refusal of
// the request itself (bad argument, failed precondition, ...) is returned at once.
bool Transient(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) || absl::IsResourceExhausted(s) ||
         absl::IsAborted(s) || absl::IsUnknown(s);
}

// Calls `fn` up to three times with backoff (0.4 s, 0.8 s) while it fails transiently.
template <typename Fn>
auto WithRetries(Fn fn, const std::function<void()>& on_retry) -> decltype(fn()) {
  auto result = fn();
  for (int attempt = 1; attempt < 3; ++attempt) {
    absl::Status status;
    if constexpr (std::is_same_v<decltype(result), absl::Status>) {
      status = result;
    } else {
      status = result.status();
    }
    if (status.ok() || !Transient(status)) break;
    absl::SleepFor(absl::Milliseconds(200 << attempt));
    on_retry();
    result = fn();
  }
  return result;
}

}  // namespace

RlLoop::RlLoop(std::string run_id, grail::v1::RunSpec spec, Splits data, ServiceClients clients,
               CoordinatorMetrics* metrics, ReportFn report, const std::atomic<bool>* cancelled)
    : run_id_(std::move(run_id)),
      spec_(std::move(spec)),
      data_(std::move(data)),
      clients_(std::move(clients)),
      metrics_(metrics),
      report_(std::move(report)),
      cancelled_(cancelled),
      train_cursor_(data_.train.size(), Mix(spec_.seed(), 1)),
      sft_cursor_(data_.train.size(), Mix(spec_.seed(), 2)),
      kl_controller_(spec_.algorithm().kl_in_reward_coef() > 0 ? spec_.algorithm().kl_in_reward_coef() : 1e-3,
                     spec_.algorithm().kl_target(),
                     spec_.algorithm().kl_horizon() > 0 ? spec_.algorithm().kl_horizon() : 10000) {}

absl::Status RlLoop::CheckCancelled() const {
  if (cancelled_ != nullptr && cancelled_->load()) return absl::CancelledError("run cancelled");
  return absl::OkStatus();
}

void RlLoop::Report(const std::string& phase, int step, std::map<std::string, double> metrics) {
  grail::v1::StepReport r;
  r.set_step(step);
  r.set_total_steps(spec_.trainer().total_steps());
  r.set_policy_version(version_);
  r.set_phase(phase);
  r.set_state(grail::v1::RUN_STATE_RUNNING);
  for (const auto& [k, v] : metrics) {
    (*r.mutable_metrics())[k] = v;
    if (phase == "rl" || k == "heldout_accuracy") metrics_->SetStepGauge(k, v);
  }
  report_(r);
}

absl::Status RlLoop::Run() {
  const auto start = std::chrono::steady_clock::now();
  {
    absl::MutexLock lock(&actors_mu_);
    actor_versions_.assign(clients_.actors.size(), -1);
  }
  ASSIGN_OR_RETURN(auto init, InitLearner(spec_));
  version_ = init.weights_version();
  Report("init", 0, {{"num_parameters", static_cast<double>(init.num_parameters())}});
  int done = 0;  // RL steps already taken (a resumed run's checkpoint step)
  if (spec_.trainer().resume()) {
    ASSIGN_OR_RETURN(done, Resume(init));
    RETURN_IF_ERROR(KeepWeights(done));
    RETURN_IF_ERROR(SyncActors(WeightsAfter(done), /*include_reference=*/false));
    summary_["resumed_after_step"] = done;
    Report("resume", done, {{"resumed_after_step", static_cast<double>(done)}});
  } else {
    RETURN_IF_ERROR(SupervisedWarmup());
    RETURN_IF_ERROR(CheckCancelled());
    // The reference freezes the weights at which RL starts; with checkpoints on, they are
    // also saved (step 0) so that a resumed run can restore the reference.
    RETURN_IF_ERROR(KeepWeights(0));
    RETURN_IF_ERROR(SyncActors(WeightsAfter(0), /*include_reference=*/true));
    if (spec_.trainer().checkpoint_every() > 0) RETURN_IF_ERROR(SaveCheckpoint(0));
  }
  ASSIGN_OR_RETURN(double before, Evaluate());
  summary_["heldout_accuracy_before"] = before;
  Report("eval", done, {{"heldout_accuracy", before}});
  last_step_end_ = std::chrono::steady_clock::now();
  const int k = spec_.trainer().max_staleness();
  RETURN_IF_ERROR(k > 0 ? RunPipelined(k, done + 1) : RunSynchronous(done + 1));
  RETURN_IF_ERROR(SyncActors(WeightsAfter(spec_.trainer().total_steps()), /*include_reference=*/false));
  ASSIGN_OR_RETURN(double after, Evaluate());
  summary_["heldout_accuracy_after"] = after;
  summary_["wall_seconds"] = Seconds(start);
  Report("eval", spec_.trainer().total_steps(), {{"heldout_accuracy", after}});
  return absl::OkStatus();
}

absl::Status RlLoop::RunSynchronous(int first_step) {
  for (int step = first_step; step <= spec_.trainer().total_steps(); ++step) {
    RETURN_IF_ERROR(CheckCancelled());
    RETURN_IF_ERROR(SyncActors(WeightsAfter(step - 1), /*include_reference=*/false));
    ASSIGN_OR_RETURN(CollectedBatch batch, CollectBatch(step, WeightsAfter(step - 1)->version));
    RETURN_IF_ERROR(CheckCancelled());
    RETURN_IF_ERROR(TrainOnBatch(step, std::move(batch)));
    RETURN_IF_ERROR(AfterStep(step, /*final_weights_on_actors=*/true));
  }
  return absl::OkStatus();
}

absl::Status RlLoop::RunPipelined(int max_staleness, int first_step) {
  const int total = spec_.trainer().total_steps();
  // Batch b is generated with exactly the weights after step b-1-k, so the producer may run
  // at most k+1 batches ahead of training. Batches wait in `ready` until trained.
  std::mutex mu;
  std::condition_variable changed;
  std::map<int, absl::StatusOr<CollectedBatch>> ready;
  int kept = first_step - 1;  // steps whose weights are kept (first_step - 1: the start)
  bool stop = false;
  std::thread producer([&] {
    for (int b = first_step; b <= total; ++b) {
      // A resumed run has no weights from before its start: its first batches are fresher.
      const int needs = std::max(first_step - 1, b - 1 - max_staleness);
      {
        std::unique_lock<std::mutex> lock(mu);
        changed.wait(lock, [&] { return stop || kept >= needs; });
        if (stop) return;
      }
      const WeightsPtr weights = WeightsAfter(needs);
      absl::Status ready_to_sample = CheckCancelled();
      if (ready_to_sample.ok()) ready_to_sample = SyncActors(weights, /*include_reference=*/false);
      absl::StatusOr<CollectedBatch> batch =
          ready_to_sample.ok() ? CollectBatch(b, weights->version) : absl::StatusOr<CollectedBatch>(ready_to_sample);
      const bool failed = !batch.ok();
      {
        std::lock_guard<std::mutex> lock(mu);
        ready.emplace(b, std::move(batch));
      }
      changed.notify_all();
      if (failed) return;
    }
  });
  absl::Status status;
  for (int step = first_step; step <= total && status.ok(); ++step) {
    absl::StatusOr<CollectedBatch> batch = absl::UnknownError("no batch");
    {
      std::unique_lock<std::mutex> lock(mu);
      changed.wait(lock, [&] { return ready.count(step) > 0; });
      batch = std::move(ready.at(step));
      ready.erase(step);
    }
    status = batch.status();
    if (status.ok()) status = CheckCancelled();
    if (status.ok()) status = TrainOnBatch(step, std::move(*batch));
    if (status.ok()) status = AfterStep(step, /*final_weights_on_actors=*/false);
    if (status.ok()) {
      std::lock_guard<std::mutex> lock(mu);
      kept = step;
    }
    changed.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    stop = true;
  }
  changed.notify_all();
  producer.join();
  return status;
}

// Keeps the new weights, then checkpoints and evaluates when the run asks for it. Mid-run
// evaluations of a pipelined run use the weights the actors hold (the producer's), reported
// as eval_policy_version.
absl::Status RlLoop::AfterStep(int step, bool final_weights_on_actors) {
  const auto t_sync = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(KeepWeights(step));
  if (final_weights_on_actors) RETURN_IF_ERROR(SyncActors(WeightsAfter(step), /*include_reference=*/false));
  metrics_->ObservePhase("weight_sync", Seconds(t_sync));
  const int total = spec_.trainer().total_steps();
  const int every = spec_.trainer().checkpoint_every();
  if (every > 0 && (step % every == 0 || step == total)) RETURN_IF_ERROR(SaveCheckpoint(step));
  const int eval_every = spec_.trainer().eval_every();
  if (eval_every > 0 && step % eval_every == 0 && step != total) {
    int64_t evaluated = version_;
    if (!final_weights_on_actors) {
      absl::MutexLock lock(&actors_mu_);
      evaluated = *std::max_element(actor_versions_.begin(), actor_versions_.end());
    }
    ASSIGN_OR_RETURN(double acc, Evaluate());
    Report("eval", step, {{"heldout_accuracy", acc}, {"eval_policy_version", static_cast<double>(evaluated)}});
  }
  return absl::OkStatus();
}

absl::StatusOr<RlLoop::StepAdvantages> RlLoop::Advantages(int step, const std::vector<const grail::v1::Sample*>& samples,
                                           const std::vector<double>& scores,
                                           const std::vector<int64_t>& index,
                                           const std::vector<std::vector<double>>& k1,
                                           double kl_coef) const {
  const auto& a = spec_.algorithm();
  const std::string estimator = a.advantage_estimator().empty() ? "grpo" : a.advantage_estimator();
  // Outcome rewards: the score sits on each response's last token; with KL in the reward
  // every token also carries -kl_coef * k1.
  int64_t width = 1;
  for (const auto* s : samples) width = std::max<int64_t>(width, s->token_ids_size());
  const int64_t B = static_cast<int64_t>(samples.size());
  Matrix rewards(B, width), mask(B, width);
  std::vector<double> lengths(B);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = samples[b]->token_ids_size();
    lengths[b] = static_cast<double>(n);
    for (int64_t t = 0; t < n; ++t) {
      mask.at(b, t) = 1;
      rewards.at(b, t) = -kl_coef * k1[b][t];
    }
    if (n > 0) rewards.at(b, n - 1) += scores[b];
  }
  constexpr double kEpsilon = 1e-6;
  const double gamma = a.gamma() > 0 ? a.gamma() : 1.0;
  StepAdvantages out;
  if (estimator == "grpo" || estimator == "dr_grpo") {
    out.advantages = GrpoTokenAdvantages(rewards, mask, index, kEpsilon, estimator == "grpo");
    return out;
  }
  if (estimator == "rloo") {
    out.advantages = RlooTokenAdvantages(rewards, mask, index);
    return out;
  }
  if (estimator == "reinforce_pp") {
    out.advantages = ReinforcePlusPlus(rewards, mask, gamma).advantages;
    return out;
  }
  if (estimator == "gae") {
    // The critic's values of the states before each response token.
    const Packed packed = PackSequences(samples);
    grail::v1::ComputeValuesRequest req;
    *req.mutable_input_ids() = Int64Matrix(B, packed.width, packed.ids);
    ASSIGN_OR_RETURN(auto resp, clients_.learner->ComputeValues(req));
    const auto& v = resp.values();
    if (v.dtype() != grail::v1::DTYPE_FLOAT32 || v.shape_size() != 2 || v.shape(0) != B ||
        v.shape(1) != static_cast<int64_t>(packed.width) ||
        v.data().size() != B * packed.width * sizeof(float)) {
      return absl::InternalError("learner: values have the wrong shape");
    }
    const float* vals = reinterpret_cast<const float*>(v.data().data());
    out.values = Matrix(B, width);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t P = samples[b]->prompt_token_ids_size();
      for (int64_t t = 0; t < samples[b]->token_ids_size(); ++t) out.values.at(b, t) = vals[b * packed.width + P + t];
    }
    // During value pretraining the targets are Monte-Carlo returns (lambda 1).
    const bool pretraining = step <= spec_.trainer().value_pretrain_steps();
    const double lam_critic = pretraining ? 1.0 : (a.lambda_critic() > 0 ? a.lambda_critic() : 1.0);
    std::vector<double> lam_actor(B, a.lambda_actor() > 0 ? a.lambda_actor() : 0.95);
    if (a.length_adaptive_alpha() > 0) {
      for (int64_t b = 0; b < B; ++b) {
        lam_actor[b] = std::max(0.0, LengthAdaptiveLambda(a.length_adaptive_alpha(), std::max(1.0, lengths[b])));
      }
    }
    AdvantagesAndReturns gae = DecoupledGaePerRow(rewards, out.values, mask, gamma, lam_actor, lam_critic);
    out.advantages = std::move(gae.advantages);
    out.returns = std::move(gae.returns);
    out.has_critic = true;
    return out;
  }
  if (estimator == "gfpo") {
    GfpoResult g = Gfpo(scores, lengths, index, a.gfpo_k(),
                        a.gfpo_metric() == "token_efficiency" ? GfpoMetric::kTokenEfficiency : GfpoMetric::kLength,
                        kEpsilon);
    out.advantages = Matrix(B, width);
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t t = 0; t < width; ++t) out.advantages.at(b, t) = g.advantages[b] * mask.at(b, t);
    }
    return out;
  }
  return absl::UnimplementedError(
      absl::StrCat("algorithm.advantage_estimator: '", estimator, "' is not implemented"));
}

absl::Status RlLoop::SupervisedWarmup() {
  const int steps = spec_.trainer().sft_steps();
  const int batch = spec_.trainer().sft_batch_size() > 0 ? spec_.trainer().sft_batch_size() : kDefaultSftBatch;
  const double target = spec_.trainer().sft_target_accuracy();
  const int eval_every = spec_.trainer().sft_eval_every() > 0 ? spec_.trainer().sft_eval_every() : 25;
  bool close = false;  // the last evaluation reached half the target
  for (int s = 1; s <= steps; ++s) {
    RETURN_IF_ERROR(CheckCancelled());
    std::vector<std::vector<int>> seqs;
    std::vector<size_t> prompt_lens;
    size_t width = 0;
    for (int b = 0; b < batch; ++b) {
      const Problem& p = data_.train.Get(sft_cursor_.Next());
      ASSIGN_OR_RETURN(std::vector<int> prompt, tokenizer_.Encode(p.prompt));
      ASSIGN_OR_RETURN(std::vector<int> answer, tokenizer_.Encode(p.answer));
      std::vector<int> seq = {model::CharTokenizer::kBos};
      seq.insert(seq.end(), prompt.begin(), prompt.end());
      prompt_lens.push_back(seq.size());
      seq.insert(seq.end(), answer.begin(), answer.end());
      seq.push_back(model::CharTokenizer::kEos);
      width = std::max(width, seq.size());
      seqs.push_back(std::move(seq));
    }
    std::vector<int64_t> ids(batch * width, model::CharTokenizer::kPad);
    std::vector<float> mask(batch * width, 0.0f);
    for (int b = 0; b < batch; ++b) {
      for (size_t t = 0; t < seqs[b].size(); ++t) {
        ids[b * width + t] = seqs[b][t];
        mask[b * width + t] = t >= prompt_lens[b] ? 1.0f : 0.0f;
      }
    }
    grail::v1::SupervisedStepRequest req;
    req.set_step(s);
    *req.mutable_input_ids() = Int64Matrix(batch, width, ids);
    *req.mutable_loss_mask() = FloatMatrix(batch, width, mask);
    ASSIGN_OR_RETURN(auto resp, clients_.learner->SupervisedStep(req));
    version_ = resp.weights_version();
    summary_["sft_steps_taken"] = s;
    if (s % 25 == 0 || s == steps) {
      Report("sft", s, {{"sft_loss", resp.metrics().at("sft_loss")}, {"sft_steps", static_cast<double>(steps)}});
    }
    // A warm-up to a held-out criterion ends where the model is, not after a step count
    // whose outcome depends on the machine's floating-point kernels.
    if (target > 0 && (close || s % eval_every == 0 || s == steps)) {
      ASSIGN_OR_RETURN(auto fetched, clients_.learner->GetWeights(version_));
      RETURN_IF_ERROR(SyncActors(std::make_shared<const learner::LearnerClient::Weights>(std::move(fetched)),
                                 /*include_reference=*/false));
      ASSIGN_OR_RETURN(double accuracy, Evaluate());
      summary_["sft_heldout_accuracy"] = accuracy;
      Report("sft_eval", s, {{"heldout_accuracy", accuracy}, {"sft_steps", static_cast<double>(steps)}});
      if (accuracy >= target) break;
      // Accuracy can climb steeply once it starts (30 points in 10 steps): from half the
      // target on, every step is evaluated, so the warm-up stops within a step of it.
      close = accuracy >= target / 2;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<grail::v1::InitModelResponse> RlLoop::InitLearner(const grail::v1::RunSpec& spec) {
  // Actors keep the versions they hold across learner restarts; the new weights must be
  // newer than all of them or the actors would refuse them.
  int64_t floor = 0;
  for (const auto& actor : clients_.actors) {
    auto info = actor->GetInfo();
    if (info.ok()) floor = std::max(floor, info->weights_version() + 1);
  }
  grail::v1::InitModelRequest request;
  *request.mutable_spec() = spec;
  request.set_min_weights_version(std::max(floor, version_ + 1));
  return clients_.learner->InitModel(request);
}

std::string RlLoop::RunStateBefore(int step) {
  CollectorState c;
  {
    absl::MutexLock lock(&collector_mu_);
    auto it = collector_states_.find(step);
    if (it != collector_states_.end()) {
      c = it->second;
    } else {  // not started: the collector is idle until this lock is released
      absl::MutexLock ids(&ids_mu_);
      c = {train_cursor_.state(), next_prompt_id_, filtered_estimate_};
    }
    collector_states_.erase(collector_states_.begin(), collector_states_.lower_bound(step));
  }
  nlohmann::ordered_json j;
  j["format"] = "grail-run-state-v1";
  j["step"] = step - 1;
  j["train_cursor"] = {{"epoch", c.train_cursor.epoch}, {"offset", c.train_cursor.offset}};
  j["next_prompt_id"] = c.next_prompt_id;
  j["filtered_estimate"] = c.filtered_estimate;
  j["kl_in_reward_coef"] = kl_controller_.value();
  j["reference_checkpoint"] = reference_checkpoint_;
  return j.dump();
}

absl::Status RlLoop::SaveCheckpoint(int step) {
  const std::string root = spec_.checkpoint_dir().empty() ? run_id_ : spec_.checkpoint_dir();
  const std::string dir = absl::StrFormat("%s/step-%06d", root, step);
  if (step == 0) reference_checkpoint_ = dir;
  ASSIGN_OR_RETURN(std::string path, clients_.learner->SaveCheckpoint(dir, RunStateBefore(step + 1)));
  summary_["last_checkpoint_step"] = step;
  grail::v1::StepReport r;
  r.set_step(step);
  r.set_total_steps(spec_.trainer().total_steps());
  r.set_policy_version(version_);
  r.set_phase("checkpoint");
  r.set_state(grail::v1::RUN_STATE_RUNNING);
  r.set_message(path);
  report_(r);
  return absl::OkStatus();
}

absl::StatusOr<int> RlLoop::Resume(const grail::v1::InitModelResponse& init) {
  auto bad = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat("trainer.resume: model.path '", spec_.model().path(), "' ", why));
  };
  if (init.run_state().empty()) {
    return bad("is not a checkpoint with a run state (one written by a run with trainer.checkpoint_every)");
  }
  const nlohmann::json st = nlohmann::json::parse(init.run_state(), nullptr, /*allow_exceptions=*/false);
  if (!st.is_object() || st.value("format", "") != "grail-run-state-v1" || !st.contains("step") ||
      !st["step"].is_number_integer() || !st.contains("train_cursor") || !st["train_cursor"].is_object() ||
      !st.contains("next_prompt_id") || !st["next_prompt_id"].is_number_integer()) {
    return bad("has a run state this coordinator cannot read");
  }
  const int step = st["step"].get<int>();
  if (step < 0 || step >= spec_.trainer().total_steps()) {
    return absl::FailedPreconditionError(absl::StrCat("trainer.total_steps: the checkpoint is after step ", step,
                                                      "; nothing is left to run"));
  }
  // The reference gets the weights RL started from, kept in the run's step-0 checkpoint.
  reference_checkpoint_ = st.value("reference_checkpoint", "");
  if (reference_checkpoint_.empty()) return bad("names no reference checkpoint");
  grail::v1::RunSpec reference_spec = spec_;
  reference_spec.mutable_model()->set_path(reference_checkpoint_);
  reference_spec.mutable_trainer()->set_resume(false);
  ASSIGN_OR_RETURN(auto reference_init, InitLearner(reference_spec));
  version_ = reference_init.weights_version();
  ASSIGN_OR_RETURN(auto reference_weights, clients_.learner->GetWeights(version_));
  absl::Status loaded = WithRetries(
      [&] { return clients_.reference->LoadWeights(reference_weights.blob, reference_weights.version).status(); },
      [&] { metrics_->CountRetry("reference"); });
  if (!loaded.ok()) {
    return absl::Status(loaded.code(), absl::StrCat("reference: weight sync failed: ", loaded.message()));
  }
  {
    absl::MutexLock lock(&weights_mu_);
    reference_weights_ = std::make_shared<const learner::LearnerClient::Weights>(std::move(reference_weights));
  }
  // Back to the checkpoint being resumed (weights, optimizer state, step count).
  ASSIGN_OR_RETURN(auto resumed, InitLearner(spec_));
  version_ = resumed.weights_version();
  train_cursor_ = DatasetCursor(data_.train.size(), Mix(spec_.seed(), 1),
                                DatasetCursor::State{st["train_cursor"].value("epoch", uint64_t{0}),
                                                     st["train_cursor"].value("offset", uint64_t{0})});
  {
    absl::MutexLock lock(&ids_mu_);
    next_prompt_id_ = st["next_prompt_id"].get<int64_t>();
  }
  filtered_estimate_ = st.value("filtered_estimate", 0.2);
  kl_controller_ = KlController(st.value("kl_in_reward_coef", kl_controller_.value()), spec_.algorithm().kl_target(),
                                spec_.algorithm().kl_horizon() > 0 ? spec_.algorithm().kl_horizon() : 10000);
  return step;
}

absl::Status RlLoop::KeepWeights(int step) {
  WeightsPtr previous;
  {
    absl::MutexLock lock(&weights_mu_);
    if (!weights_by_step_.empty()) previous = weights_by_step_.rbegin()->second;
    // Batches are never generated with weights older than the step before the oldest kept.
    const int oldest_needed = step - 1 - std::max(0, spec_.trainer().max_staleness());
    while (!weights_by_step_.empty() && weights_by_step_.begin()->first < oldest_needed) {
      weights_by_step_.erase(weights_by_step_.begin());
    }
  }
  WeightsPtr weights = previous;
  if (previous == nullptr || previous->version != version_) {
    ASSIGN_OR_RETURN(auto fetched, clients_.learner->GetWeights(version_));
    weights = std::make_shared<const learner::LearnerClient::Weights>(std::move(fetched));
  }
  absl::MutexLock lock(&weights_mu_);
  weights_by_step_[step] = std::move(weights);
  return absl::OkStatus();
}

RlLoop::WeightsPtr RlLoop::WeightsAfter(int step) {
  absl::MutexLock lock(&weights_mu_);
  auto it = weights_by_step_.find(step);
  return it == weights_by_step_.end() ? nullptr : it->second;
}

absl::Status RlLoop::SyncActors(const WeightsPtr& weights, bool include_reference) {
  if (weights == nullptr) return absl::InternalError("weight sync: no weights kept for this step");
  std::vector<size_t> behind;
  {
    absl::MutexLock lock(&actors_mu_);
    for (size_t i = 0; i < actor_versions_.size(); ++i) {
      if (actor_versions_[i] < weights->version) behind.push_back(i);
    }
  }
  if (behind.empty() && !include_reference) return absl::OkStatus();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<absl::Status> results(behind.size() + (include_reference ? 1 : 0));
  // Failures are collected, not returned: an actor that misses this version is retried
  // before the next batch and serves nothing until it catches up.
  (void)ParallelFor(results.size(), [&](size_t j) -> absl::Status {
    const bool reference = j == behind.size();
    results[j] = WithRetries([&]() -> absl::Status {
      if (reference) return clients_.reference->LoadWeights(weights->blob, weights->version).status();
      return clients_.actors[behind[j]]->LoadWeights(weights->blob, weights->version).status();
    }, [&] { metrics_->CountRetry(reference ? "reference" : "actor"); });
    return absl::OkStatus();
  });
  metrics_->ObservePhase("actor_sync", Seconds(t0));
  if (include_reference) {
    if (!results.back().ok()) {
      return absl::Status(results.back().code(),
                          absl::StrCat("reference: weight sync failed: ", results.back().message()));
    }
    absl::MutexLock lock(&weights_mu_);
    reference_weights_ = weights;
  }
  absl::MutexLock lock(&actors_mu_);
  absl::Status last_failure;
  for (size_t j = 0; j < behind.size(); ++j) {
    if (results[j].ok()) {
      actor_versions_[behind[j]] = weights->version;
    } else {
      last_failure = absl::Status(results[j].code(), absl::StrCat("actor ", behind[j], ": weight sync failed: ",
                                                                  results[j].message()));
    }
  }
  int current = 0;
  for (size_t i = 0; i < actor_versions_.size(); ++i) {
    metrics_->SetActorVersion(static_cast<int>(i), static_cast<double>(actor_versions_[i]));
    current += actor_versions_[i] == weights->version;
  }
  metrics_->SetStaleActors(static_cast<double>(actor_versions_.size() - current));
  if (current == 0) {
    return absl::Status(last_failure.code(), absl::StrCat("weight sync: no actor holds version ", weights->version,
                                                          "; last failure: ", last_failure.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<RlLoop::Group>> RlLoop::SampleGroups(
    const std::vector<Row>& rows, int group_size, const grail::v1::SamplingParams& sampling,
    uint64_t seed, std::map<std::string, double>* times, int64_t weights_version) {
  const auto t0 = std::chrono::steady_clock::now();
  // The actors that may serve: those holding the wanted version (any loaded actor for -1).
  std::vector<size_t> eligible;
  {
    absl::MutexLock lock(&actors_mu_);
    for (size_t i = 0; i < actor_versions_.size(); ++i) {
      if (weights_version < 0 ? actor_versions_[i] >= 0 : actor_versions_[i] == weights_version) eligible.push_back(i);
    }
  }
  if (eligible.empty()) {
    return absl::UnavailableError(absl::StrCat("generate: no actor holds weights version ", weights_version));
  }
  const size_t A = eligible.size();
  const size_t chunks = std::min(A, rows.size());
  std::vector<std::vector<grail::v1::Sample>> results(chunks);
  RETURN_IF_ERROR(ParallelFor(chunks, [&](size_t c) -> absl::Status {
    grail::v1::GenerateRequest req;
    req.set_run_id(run_id_);
    req.set_step(current_step_);
    req.set_group_size(group_size);
    *req.mutable_sampling() = sampling;
    req.mutable_sampling()->set_seed(Mix(seed, c));
    for (size_t r = c; r < rows.size(); r += chunks) {
      auto* p = req.add_prompts();
      p->set_prompt_id(rows[r].prompt_id);
      p->mutable_token_ids()->Add(rows[r].tokens.begin(), rows[r].tokens.end());
    }
    absl::Status last;
    // Chunk c goes to eligible actor c; on failure the other eligible actors are tried in
    // turn. Samples of a failed attempt are discarded, so a retry can never count a sample
    // twice.
    for (size_t attempt = 0; attempt < A; ++attempt) {
      std::vector<grail::v1::Sample> got;
      last = clients_.actors[eligible[(c + attempt) % A]]->Generate(
          req, [&](grail::v1::Sample s) { got.push_back(std::move(s)); });
      for (const auto& sample : got) {
        if (last.ok() && weights_version >= 0 && sample.policy_version() != weights_version) {
          last = absl::InternalError(absl::StrCat("actor ", eligible[(c + attempt) % A], " sampled with version ",
                                                  sample.policy_version(), ", expected ", weights_version));
        }
      }
      if (last.ok()) {
        results[c] = std::move(got);
        return last;
      }
      absl::SleepFor(absl::Milliseconds(100));
    }
    return absl::Status(last.code(), absl::StrCat("generate: every actor failed: ", last.message()));
  }));
  (*times)["time_generate"] += Seconds(t0);
  metrics_->ObservePhase("generate", Seconds(t0));

  std::map<int64_t, size_t> by_prompt;
  std::vector<Group> groups;
  for (const Row& row : rows) {
    by_prompt[row.prompt_id] = groups.size();
    groups.push_back(Group{row, {}, {}, {}});
  }
  {
    absl::MutexLock ids_lock(&ids_mu_);
    for (auto& chunk : results) {
      for (auto& s : chunk) {
        auto it = by_prompt.find(s.prompt_id());
        if (it == by_prompt.end() || !seen_.insert({s.prompt_id(), s.sample_index()}).second) {
          return absl::InternalError(absl::StrCat("actor returned an unexpected or duplicate sample (prompt ",
                                                  s.prompt_id(), ", index ", s.sample_index(), ")"));
        }
        groups[it->second].samples.push_back(std::move(s));
      }
    }
  }
  for (const auto& g : groups) {
    if (static_cast<int>(g.samples.size()) != group_size) {
      return absl::InternalError(absl::StrCat("prompt ", g.row.prompt_id, ": ", g.samples.size(),
                                              " samples, expected ", group_size));
    }
  }
  metrics_->CountSamples("generated", static_cast<double>(rows.size() * group_size));
  const auto t1 = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(ScoreGroups(&groups));
  (*times)["time_score"] += Seconds(t1);
  metrics_->ObservePhase("score", Seconds(t1));
  return groups;
}

absl::Status RlLoop::ScoreGroups(std::vector<Group>* groups) {
  grail::v1::ScoreRequest req;
  for (const auto& g : *groups) {
    for (const auto& s : g.samples) {
      auto* item = req.add_items();
      item->set_prompt(g.row.problem->prompt);
      item->set_response(tokenizer_.Decode({s.token_ids().begin(), s.token_ids().end()}));
      item->set_answer(g.row.problem->answer);
      item->set_verifier(g.row.problem->verifier);
      item->set_constraints_json(g.row.problem->constraints_json);
      item->set_response_length(s.token_ids_size());
    }
  }
  // A reward scorer that is away (killed, restarting) is waited for up to recovery_timeout;
  // it keeps no state, so once it answers the run goes on.
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoSeconds(clients_.recovery_timeout);
  absl::StatusOr<grail::v1::ScoreResponse> resp;
  while (true) {
    resp = WithRetries([&] { return clients_.reward->Score(req); }, [&] { metrics_->CountRetry("reward"); });
    if (resp.ok() || !Transient(resp.status())) break;
    RETURN_IF_ERROR(CheckCancelled());
    if (std::chrono::steady_clock::now() >= deadline) {
      return NotRecovered("reward", resp.status(), clients_.recovery_timeout);
    }
    absl::SleepFor(absl::Seconds(1));
  }
  if (!resp.ok()) return Named("reward", resp.status());
  if (resp->scores_size() != req.items_size()) {
    return absl::InternalError("reward: answered a different number of items");
  }
  int k = 0;
  for (auto& g : *groups) {
    for (size_t i = 0; i < g.samples.size(); ++i, ++k) {
      const auto& sc = resp->scores(k);
      if (sc.failed()) {
        // A failed score is never a zero reward: the run stops and says why.
        return absl::FailedPreconditionError(absl::StrCat("reward: item for prompt ", g.row.prompt_id,
                                                          " could not be scored: ", sc.error()));
      }
      g.scores.push_back(sc.score());
      g.correct.push_back(sc.correct());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> RlLoop::Evaluate() {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = spec_.trainer().eval_size() > 0
                       ? std::min<size_t>(spec_.trainer().eval_size(), data_.heldout.size())
                       : data_.heldout.size();
  if (n == 0) return 0.0;
  std::vector<Row> rows;
  for (size_t i = 0; i < n; ++i) {
    const Problem& p = data_.heldout.Get(i);
    ASSIGN_OR_RETURN(std::vector<int> tokens, tokenizer_.Encode(p.prompt));
    tokens.insert(tokens.begin(), model::CharTokenizer::kBos);
    // Evaluation prompts use negative ids so they never collide with training samples.
    absl::MutexLock lock(&ids_mu_);
    rows.push_back(Row{-1 - next_prompt_id_++, &p, std::move(tokens)});
  }
  grail::v1::SamplingParams greedy = spec_.sampling();
  greedy.set_temperature(0);
  if (greedy.stop_token_ids().empty()) greedy.add_stop_token_ids(model::CharTokenizer::kEos);
  std::map<std::string, double> times;
  ASSIGN_OR_RETURN(std::vector<Group> groups, SampleGroups(rows, 1, greedy, 0, &times, /*weights_version=*/-1));
  double correct = 0;
  for (const auto& g : groups) correct += g.correct[0] ? 1 : 0;
  metrics_->ObservePhase("eval", Seconds(t0));
  return correct / n;
}

absl::StatusOr<std::vector<std::vector<float>>> RlLoop::ReferenceLogProbs(
    const std::vector<const grail::v1::Sample*>& samples) {
  const Packed packed = PackSequences(samples);
  const size_t B = samples.size(), width = packed.width;
  grail::v1::LogProbsRequest req;
  *req.mutable_input_ids() = Int64Matrix(B, width, packed.ids);
  *req.mutable_attention_mask() = Int64Matrix(B, width, packed.valid);
  req.set_temperature(spec_.sampling().temperature());
  // A reference scorer that restarted (no model, or another version than the one it was
  // given) gets its weights again; one that is away is waited for, up to recovery_timeout.
  const auto deadline = std::chrono::steady_clock::now() + absl::ToChronoSeconds(clients_.recovery_timeout);
  absl::StatusOr<grail::v1::LogProbsResponse> resp;
  while (true) {
    resp = WithRetries([&] { return clients_.reference->ComputeLogProbs(req); },
                       [&] { metrics_->CountRetry("reference"); });
    WeightsPtr expected;
    {
      absl::MutexLock lock(&weights_mu_);
      expected = reference_weights_;
    }
    const bool lost = expected != nullptr && (resp.ok() ? resp->weights_version() != expected->version
                                                        : absl::IsFailedPrecondition(resp.status()));
    if (resp.ok() && !lost) break;
    if (!lost && !Transient(resp.status())) return Named("reference", resp.status());
    RETURN_IF_ERROR(CheckCancelled());
    if (std::chrono::steady_clock::now() >= deadline) {
      return NotRecovered("reference",
                          resp.ok() ? absl::FailedPreconditionError("serves other weights") : resp.status(),
                          clients_.recovery_timeout);
    }
    if (lost) {
      absl::Status reloaded = clients_.reference->LoadWeights(expected->blob, expected->version).status();
      if (reloaded.ok()) {
        metrics_->CountRecovery("reference");
        grail::v1::StepReport event;
        event.set_step(current_step_);
        event.set_total_steps(spec_.trainer().total_steps());
        event.set_phase("recovered");
        event.set_state(grail::v1::RUN_STATE_RUNNING);
        event.set_message(absl::StrCat("reference scorer restarted; reloaded its weights (version ",
                                       expected->version, ")"));
        report_(event);
        continue;
      }
    }
    absl::SleepFor(absl::Seconds(1));
  }
  const auto& lp = resp->log_probs();
  if (lp.dtype() != grail::v1::DTYPE_FLOAT32 || lp.shape_size() != 2 || lp.shape(0) != static_cast<int64_t>(B) ||
      lp.shape(1) != static_cast<int64_t>(width) - 1 || lp.data().size() != B * (width - 1) * sizeof(float)) {
    return absl::InternalError("reference: log_probs has the wrong shape");
  }
  // Aligned with input_ids: column t holds log p(ids[t] | ids[:t]); column 0 is 0.
  std::vector<std::vector<float>> out(B, std::vector<float>(width, 0.0f));
  const float* v = reinterpret_cast<const float*>(lp.data().data());
  for (size_t b = 0; b < B; ++b) std::memcpy(out[b].data() + 1, v + b * (width - 1), (width - 1) * sizeof(float));
  return out;
}

absl::StatusOr<RlLoop::CollectedBatch> RlLoop::CollectBatch(int step, int64_t weights_version) {
  current_step_ = step;
  {
    // Recorded before anything is drawn, for a checkpoint taken after step - 1.
    absl::MutexLock lock(&collector_mu_);
    absl::MutexLock ids(&ids_mu_);
    collector_states_[step] = {train_cursor_.state(), next_prompt_id_, filtered_estimate_};
  }
  const auto& a = spec_.algorithm();
  const int G = a.group_size();
  const int target = spec_.trainer().prompts_per_step();
  const int rounds = spec_.trainer().max_sampling_rounds() > 0 ? spec_.trainer().max_sampling_rounds()
                                                               : kDefaultSamplingRounds;
  grail::v1::SamplingParams sampling = spec_.sampling();
  if (sampling.stop_token_ids().empty()) sampling.add_stop_token_ids(model::CharTokenizer::kEos);
  CollectedBatch out;
  std::map<std::string, double>& times = out.times;

  // Dynamic sampling: fresh prompts until the batch is full or the round bound is hit.
  // Informative surplus is discarded, not carried to the next step: carried groups would be
  // one policy version older than the step's bound allows.
  std::vector<Group> batch;
  int sampled_groups = 0, filtered_groups = 0, round = 0;
  double generated = 0, filtered = 0, discarded = 0;
  double& gen_tokens = out.generated_tokens;
  std::vector<double>& all_scores = out.scores;
  double all_correct = 0, len_sum = 0, len_max = 0, truncated = 0;
  for (; round < rounds && static_cast<int>(batch.size()) < target; ++round) {
    // Draw enough that, at the filtered fraction seen so far, the batch fills in one round.
    const int missing = target - static_cast<int>(batch.size());
    const int need = a.dynamic_sampling()
                         ? static_cast<int>(std::ceil(missing / (1.0 - std::min(filtered_estimate_, 0.75))))
                         : missing;
    std::vector<Row> rows;
    for (int i = 0; i < need; ++i) {
      const Problem& p = data_.train.Get(train_cursor_.Next());
      ASSIGN_OR_RETURN(std::vector<int> tokens, tokenizer_.Encode(p.prompt));
      tokens.insert(tokens.begin(), model::CharTokenizer::kBos);
      absl::MutexLock lock(&ids_mu_);
      rows.push_back(Row{next_prompt_id_++, &p, std::move(tokens)});
    }
    ASSIGN_OR_RETURN(std::vector<Group> groups, SampleGroups(rows, G, sampling, Mix(Mix(spec_.seed(), step), round),
                                                             &times, weights_version));
    for (auto& g : groups) {
      ++sampled_groups;
      generated += g.samples.size();
      for (size_t i = 0; i < g.samples.size(); ++i) {
        const auto& s = g.samples[i];
        all_scores.push_back(g.scores[i]);
        all_correct += g.correct[i];
        len_sum += s.token_ids_size();
        len_max = std::max<double>(len_max, s.token_ids_size());
        truncated += s.finish_reason() == grail::v1::FINISH_REASON_LENGTH;
        gen_tokens += s.token_ids_size();
      }
      std::vector<int64_t> index(g.scores.size(), 0);
      const bool informative = !a.dynamic_sampling() || GroupFilter(g.scores, index)[0];
      if (!informative) {
        ++filtered_groups;
        filtered += g.samples.size();
        metrics_->CountSamples("filtered", g.samples.size());
        continue;
      }
      if (static_cast<int>(batch.size()) < target) {
        batch.push_back(std::move(g));
      } else {
        discarded += g.samples.size();
        metrics_->CountSamples("discarded", g.samples.size());
      }
    }
  }
  const double n = static_cast<double>(all_scores.size());
  auto& st = out.stats;
  st["accuracy"] = n > 0 ? all_correct / n : 0;
  st["response_length_mean"] = n > 0 ? len_sum / n : 0;
  st["response_length_max"] = len_max;
  st["truncation_ratio"] = n > 0 ? truncated / n : 0;
  st["filtered_group_ratio"] = sampled_groups ? static_cast<double>(filtered_groups) / sampled_groups : 0;
  if (sampled_groups > 0) filtered_estimate_ = 0.5 * filtered_estimate_ + 0.5 * st["filtered_group_ratio"];
  st["groups_trained"] = static_cast<double>(batch.size());
  st["samples_generated"] = generated;
  st["samples_filtered"] = filtered;
  st["samples_discarded"] = discarded;
  st["sampling_rounds"] = round;
  st["batch_underfilled"] = static_cast<int>(batch.size()) < target ? 1 : 0;
  st["behaviour_policy_version"] = static_cast<double>(weights_version);
  out.groups = std::move(batch);
  // Reference log-probs belong to the rollout side: the reference is frozen, so in a
  // pipelined run they are computed while the learner trains.
  if (!out.groups.empty()) {
    std::vector<const grail::v1::Sample*> samples;
    for (const auto& g : out.groups) {
      for (const auto& s : g.samples) samples.push_back(&s);
    }
    const auto t_ref = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(out.ref_log_probs, ReferenceLogProbs(samples));
    times["time_reference"] = Seconds(t_ref);
    metrics_->ObservePhase("reference", times["time_reference"]);
  }
  return out;
}

absl::Status RlLoop::TrainOnBatch(int step, CollectedBatch collected) {
  const auto& a = spec_.algorithm();
  std::map<std::string, double> times = std::move(collected.times);
  const std::vector<Group>& batch = collected.groups;
  const std::vector<double>& all_scores = collected.scores;
  if (batch.empty()) {
    // Nothing informative after the bound: report it and move on without a policy update.
    std::map<std::string, double> m = collected.stats;
    m["step"] = step;
    m["samples_trained"] = 0;
    m["time_step"] = Seconds(last_step_end_);
    last_step_end_ = std::chrono::steady_clock::now();
    Report("rl", step, std::move(m));
    return absl::OkStatus();
  }

  // Advantages over the batch (group-relative).
  std::vector<const grail::v1::Sample*> samples;
  std::vector<double> scores;
  std::vector<int64_t> index;
  for (const auto& g : batch) {
    for (size_t i = 0; i < g.samples.size(); ++i) {
      samples.push_back(&g.samples[i]);
      scores.push_back(g.scores[i]);
      index.push_back(g.row.prompt_id);
    }
  }
  const std::vector<std::vector<float>>& ref_lp = collected.ref_log_probs;

  // KL in the reward: k1 = behaviour - reference log-prob on every response token.
  std::vector<std::vector<double>> k1(samples.size());
  double k1_sum = 0, k1_tokens = 0;
  for (size_t b = 0; b < samples.size(); ++b) {
    const int P = samples[b]->prompt_token_ids_size();
    for (int i = 0; i < samples[b]->token_ids_size(); ++i) {
      k1[b].push_back(samples[b]->behavior_log_probs(i) - ref_lp[b][P + i]);
      k1_sum += k1[b].back();
      ++k1_tokens;
    }
  }
  const double kl_coef = a.use_kl_in_reward() ? kl_controller_.value() : 0.0;
  ASSIGN_OR_RETURN(StepAdvantages adv, Advantages(step, samples, scores, index, k1, kl_coef));
  const double step_kl = k1_tokens > 0 ? k1_sum / k1_tokens : 0;
  if (a.use_kl_in_reward()) kl_controller_.Update(step_kl, static_cast<int64_t>(samples.size()));

  // Version lag of what is about to be trained: 0 in the synchronous loop, at most
  // max_staleness policy updates in a pipelined one (the producer's construction; checked).
  double lag_max = 0;
  for (const auto* sample : samples) {
    const double lag = static_cast<double>(version_ - sample->policy_version());
    metrics_->ObserveVersionLag(lag);
    lag_max = std::max(lag_max, lag);
  }

  // Experience, right-padded, per-token tensors aligned with input_ids.
  const Packed packed = PackSequences(samples);
  const size_t B = samples.size(), width = packed.width;
  std::vector<float> mask(B * width, 0), old_lp(B * width, 0), advantages(B * width, 0), ref(B * width, 0);
  std::vector<float> returns, values;
  if (adv.has_critic) returns.assign(B * width, 0), values.assign(B * width, 0);
  for (size_t b = 0; b < B; ++b) {
    const auto* s = samples[b];
    const size_t P = s->prompt_token_ids_size();
    for (int i = 0; i < s->token_ids_size(); ++i) {
      const size_t t = b * width + P + i;
      mask[t] = 1;
      old_lp[t] = s->behavior_log_probs(i);
      advantages[t] = static_cast<float>(adv.advantages.at(b, i));
      if (adv.has_critic) {
        returns[t] = static_cast<float>(adv.returns.at(b, i));
        values[t] = static_cast<float>(adv.values.at(b, i));
      }
    }
    std::copy(ref_lp[b].begin(), ref_lp[b].end(), ref.begin() + b * width);
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
  // Value pretraining: the first steps train only the critic (the policy does not move).
  const bool critic_only = adv.has_critic && step <= spec_.trainer().value_pretrain_steps();
  train.set_critic_only(critic_only);
  *e->mutable_old_log_probs() = FloatMatrix(B, width, old_lp);
  *e->mutable_advantages() = FloatMatrix(B, width, advantages);
  *e->mutable_ref_log_probs() = FloatMatrix(B, width, ref);
  const auto t_train = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(auto trained, clients_.learner->TrainStep(train));
  times["time_train"] = Seconds(t_train);
  metrics_->ObservePhase("train", times["time_train"]);
  version_ = trained.weights_version();
  metrics_->CountSamples("trained", static_cast<double>(B));

  std::map<std::string, double> m = std::move(times);
  for (const auto& [k, v] : collected.stats) m[k] = v;
  const double n = static_cast<double>(all_scores.size());
  double mean = 0, var = 0;
  for (double s : all_scores) mean += s;
  mean = n > 0 ? mean / n : 0;
  for (double s : all_scores) var += (s - mean) * (s - mean);
  m["step"] = step;
  m["policy_version"] = static_cast<double>(version_);
  m["reward_mean"] = mean;
  m["reward_std"] = n > 1 ? std::sqrt(var / (n - 1)) : 0;
  m["critic_only"] = critic_only ? 1 : 0;
  m["kl_behavior_reference"] = step_kl;
  m["version_lag_max"] = lag_max;
  m["version_lag_bound"] = spec_.trainer().max_staleness();
  if (a.use_kl_in_reward()) {
    m["kl_in_reward_coef"] = kl_coef;
    m["kl_in_reward_coef_next"] = kl_controller_.value();
  }
  m["samples_trained"] = static_cast<double>(B);
  // Step time: since the previous step ended, so that pipelined and synchronous runs compare.
  m["time_step"] = Seconds(last_step_end_);
  last_step_end_ = std::chrono::steady_clock::now();
  m["tokens_per_second"] = m["time_step"] > 0 ? collected.generated_tokens / m["time_step"] : 0;
  for (const auto& [k, v] : trained.metrics()) m[k] = v;
  Report("rl", step, std::move(m));
  return absl::OkStatus();
}

}  // namespace grail::coordinator
