#include "coordinator/rl_loop.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "algo/objectives.h"
#include "algo/run_spec.h"
#include "common/retry.h"
#include "common/status_macros.h"
#include "coordinator/experience.h"
#include "coordinator/retrying_clients.h"
#include "coordinator/run_state.h"
#include "coordinator/step_metrics.h"

namespace grail::coordinator {

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

algo::KlController NewKlController(const grail::v1::AlgorithmSpec& a, double value) {
  return algo::KlController(value, a.kl_target(), a.kl_horizon());
}

grail::v1::RunSpec Resolved(grail::v1::RunSpec spec) {
  algo::ResolveDefaults(&spec);
  return spec;
}

}  // namespace

RlLoop::RlLoop(std::string run_id, grail::v1::RunSpec spec, Splits data, ServiceClients clients,
               CoordinatorMetrics* metrics, ReportFn report, const std::atomic<bool>* cancelled,
               std::shared_ptr<const tokenizer::Tokenizer> tokenizer)
    : run_id_(std::move(run_id)),
      spec_(Resolved(std::move(spec))),
      data_(std::move(data)),
      clients_(std::move(clients)),
      metrics_(metrics),
      report_(std::move(report)),
      cancelled_(cancelled),
      tokenizer_(std::move(tokenizer)),
      sft_cursor_(data_.sft.empty() ? data_.train.size() : data_.sft.size(), MixSeed(spec_.seed(), 2)),
      preference_cursor_(1, MixSeed(spec_.seed(), 3)),
      kl_controller_(NewKlController(spec_.algorithm(), spec_.algorithm().kl_in_reward_coef())) {
  // Peers are called through retrying decorators: a few quick tries with backoff, and for
  // the stateless reward scorer a wait of up to recovery_timeout while it is away.
  RetryHooks cancellable{nullptr, [this] { return CheckCancelled(); }};
  RetryPolicy quick;
  RetryPolicy recovering;
  recovering.recovery_timeout = clients_.recovery_timeout;
  RetryHooks reward_hooks = cancellable;
  reward_hooks.on_retry = [this] { metrics_->CountRetry("reward"); };
  clients_.reward = RetryingRewardClient(clients_.reward, recovering, clients_.clock, reward_hooks);
  for (auto& actor : clients_.actors) {
    actor = RetryingActorClient(actor, quick, clients_.clock, {[this] { metrics_->CountRetry("actor"); }, nullptr});
  }
  weights_ = std::make_unique<WeightsTracker>(clients_.actors, clients_.learner.get(), metrics_,
                                              spec_.trainer().max_staleness());
  ReferenceSession::Options reference;
  reference.load_retries = quick;
  reference.call_retries = recovering;
  reference.clock = clients_.clock;
  reference.hooks = cancellable;
  reference.hooks.on_retry = [this] { metrics_->CountRetry("reference"); };
  reference.on_recovered = [this](const std::string& message) {
    grail::v1::StepReport event;
    event.set_step(collector_ != nullptr ? collector_->current_step() : 0);
    event.set_total_steps(spec_.trainer().total_steps());
    event.set_phase("recovered");
    event.set_state(grail::v1::RUN_STATE_RUNNING);
    event.set_message(message);
    report_(event);
  };
  reference.frozen_part = [this] { return weights_->FrozenPart(); };
  reference_ = std::make_unique<ReferenceSession>(clients_.reference, metrics_, std::move(reference));
}

RlLoop::~RlLoop() = default;

absl::Status RlLoop::CheckCancelled() const {
  if (cancelled_ != nullptr && cancelled_->load()) return absl::CancelledError("run cancelled");
  return absl::OkStatus();
}

void RlLoop::Report(const std::string& phase, int step, std::map<std::string, double> metrics,
                    const std::string& message) {
  grail::v1::StepReport r;
  r.set_step(step);
  r.set_total_steps(spec_.trainer().total_steps());
  r.set_policy_version(version_);
  r.set_phase(phase);
  r.set_state(grail::v1::RUN_STATE_RUNNING);
  if (!message.empty()) r.set_message(message);
  for (const auto& [k, v] : metrics) {
    (*r.mutable_metrics())[k] = v;
    if (phase == "rl" || k == "heldout_accuracy") metrics_->SetStepGauge(k, v);
  }
  report_(r);
}

absl::Status RlLoop::Run() {
  const auto start = std::chrono::steady_clock::now();
  if (tokenizer_ == nullptr) {
    ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> made, tokenizer::NewTokenizer(spec_.model().tokenizer()));
    tokenizer_ = std::move(made);
  }
  collector_ = std::make_unique<BatchCollector>(
      run_id_, spec_, data_, *tokenizer_,
      BatchCollector::Peers{clients_.actors, clients_.reward, weights_.get(), reference_.get(), clients_.clock}, metrics_);
  weights_->ForgetActorVersions();
  if (!spec_.reward().model().empty()) RETURN_IF_ERROR(LoadRewardModel());
  if (preference() && !spec_.preference().sampled_pairs().policy().empty()) {
    RETURN_IF_ERROR(MakeTrainingPairsFromPolicy(/*report=*/!spec_.trainer().resume()));
  }
  ASSIGN_OR_RETURN(auto init, InitLearner(spec_));
  version_ = init.weights_version();
  summary_["rows_skipped_too_long"] = static_cast<double>(data_.rows_skipped_too_long);
  summary_["rows_truncated"] = static_cast<double>(data_.rows_truncated);
  Report("init", 0, {{"num_parameters", static_cast<double>(init.num_parameters())},
                     {"rows_skipped_too_long", static_cast<double>(data_.rows_skipped_too_long)},
                     {"rows_truncated", static_cast<double>(data_.rows_truncated)}});
  int done = 0;  // RL steps already taken (a resumed run's checkpoint step)
  if (spec_.trainer().resume()) {
    ASSIGN_OR_RETURN(done, Resume(init));
    RETURN_IF_ERROR(weights_->KeepAndSync(done, version_));
    summary_["resumed_after_step"] = done;
    Report("resume", done, {{"resumed_after_step", static_cast<double>(done)}});
  } else {
    if (!data_.probes.empty()) {
      ASSIGN_OR_RETURN(auto start, clients_.learner->GetWeights(version_));
      RETURN_IF_ERROR(weights_->SyncActors(std::make_shared<const learner::LearnerClient::Weights>(std::move(start))));
      RETURN_IF_ERROR(TakeGreedyProbeResponses());
      RETURN_IF_ERROR(MaybeRecordProbes(0, /*last=*/true));
    }
    RETURN_IF_ERROR(SupervisedWarmup());
    RETURN_IF_ERROR(CheckCancelled());
    // The reference freezes the weights at which RL starts; with checkpoints on, they are
    // also saved (step 0) so that a resumed run can restore the reference.
    RETURN_IF_ERROR(weights_->KeepAndSync(0, version_));
    reference_sums_.clear();
    RETURN_IF_ERROR(reference_->Load(weights_->After(0)));
    if (preference() && !pairs_made_) RETURN_IF_ERROR(MakeTrainingPairs(/*report=*/true));
    if (spec_.trainer().checkpoint_every() > 0) RETURN_IF_ERROR(SaveCheckpoint(0));
  }
  ASSIGN_OR_RETURN(double before, collector_->Evaluate());
  summary_["heldout_accuracy_before"] = before;
  std::map<std::string, double> eval = {{"heldout_accuracy", before}};
  if (preference()) {
    ASSIGN_OR_RETURN(auto pref, EvaluatePreference());
    for (const auto& [k, v] : pref) eval[k] = v, summary_[k + "_before"] = v;
  }
  Report("eval", done, eval);
  last_step_end_ = std::chrono::steady_clock::now();
  const int k = spec_.trainer().max_staleness();
  RETURN_IF_ERROR(preference() ? RunPreference(done + 1) : k > 0 ? RunPipelined(k, done + 1) : RunSynchronous(done + 1));
  if (spec_.trainer().total_steps() == 0) {
    // Supervised training alone (an sft stage): the evaluation above is its result.
    summary_["heldout_accuracy_after"] = before;
    for (const auto& [k, v] : eval) summary_[k + "_after"] = v;
    summary_["wall_seconds"] = Seconds(start);
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(SyncActorsTo(spec_.trainer().total_steps()));
  ASSIGN_OR_RETURN(double after, collector_->Evaluate());
  summary_["heldout_accuracy_after"] = after;
  eval = {{"heldout_accuracy", after}};
  if (preference()) {
    ASSIGN_OR_RETURN(auto pref, EvaluatePreference());
    for (const auto& [k, v] : pref) eval[k] = v, summary_[k + "_after"] = v;
  }
  summary_["wall_seconds"] = Seconds(start);
  Report("eval", spec_.trainer().total_steps(), eval);
  return absl::OkStatus();
}

absl::Status RlLoop::RunSynchronous(int first_step) {
  for (int step = first_step; step <= spec_.trainer().total_steps(); ++step) {
    RETURN_IF_ERROR(CheckCancelled());
    RETURN_IF_ERROR(SyncActorsTo(step - 1));
    ASSIGN_OR_RETURN(CollectedBatch batch, collector_->Collect(step, weights_->After(step - 1)->version));
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
  absl::Mutex mu;
  std::map<int, absl::StatusOr<CollectedBatch>> ready ABSL_GUARDED_BY(mu);
  int kept ABSL_GUARDED_BY(mu) = first_step - 1;  // steps whose weights are kept
  bool stop ABSL_GUARDED_BY(mu) = false;
  std::thread producer([&] {
    for (int b = first_step; b <= total; ++b) {
      // A resumed run has no weights from before its start: its first batches are fresher.
      const int needs = std::max(first_step - 1, b - 1 - max_staleness);
      {
        absl::MutexLock lock(&mu);
        auto may_start = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return stop || kept >= needs; };
        mu.Await(absl::Condition(&may_start));
        if (stop) return;
      }
      const WeightsPtr weights = weights_->After(needs);
      absl::Status ready_to_sample = CheckCancelled();
      if (ready_to_sample.ok()) ready_to_sample = weights_->SyncActors(weights);
      absl::StatusOr<CollectedBatch> batch = ready_to_sample.ok() ? collector_->Collect(b, weights->version)
                                                                  : absl::StatusOr<CollectedBatch>(ready_to_sample);
      const bool failed = !batch.ok();
      {
        absl::MutexLock lock(&mu);
        ready.emplace(b, std::move(batch));
      }
      if (failed) return;
    }
  });
  absl::Status status;
  for (int step = first_step; step <= total && status.ok(); ++step) {
    absl::StatusOr<CollectedBatch> batch = absl::UnknownError("no batch");
    {
      absl::MutexLock lock(&mu);
      auto has_batch = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return ready.count(step) > 0; };
      mu.Await(absl::Condition(&has_batch));
      batch = std::move(ready.at(step));
      ready.erase(step);
    }
    status = batch.status();
    if (status.ok()) status = CheckCancelled();
    if (status.ok()) status = TrainOnBatch(step, std::move(*batch));
    if (status.ok()) status = AfterStep(step, /*final_weights_on_actors=*/false);
    if (status.ok()) {
      absl::MutexLock lock(&mu);
      kept = step;
    }
  }
  {
    absl::MutexLock lock(&mu);
    stop = true;
  }
  producer.join();
  return status;
}

absl::Status RlLoop::AfterStep(int step, bool final_weights_on_actors) {
  const auto t_sync = std::chrono::steady_clock::now();
  // The synchronous loop streams the new weights through to the actors as they arrive.
  RETURN_IF_ERROR(final_weights_on_actors ? weights_->KeepAndSync(step, version_) : KeepWeights(step));
  metrics_->ObservePhase("weight_sync", Seconds(t_sync));
  const int total = spec_.trainer().total_steps();
  RETURN_IF_ERROR(MaybeRecordProbes(step, step == total));
  const int every = spec_.trainer().checkpoint_every();
  if (every > 0 && (step % every == 0 || step == total)) RETURN_IF_ERROR(SaveCheckpoint(step));
  const int eval_every = spec_.trainer().eval_every();
  if (eval_every > 0 && step % eval_every == 0 && step != total) {
    // Mid-run evaluations of a pipelined run use the weights the actors hold (the
    // producer's), reported as eval_policy_version.
    const int64_t evaluated = final_weights_on_actors ? version_ : weights_->NewestActorVersion();
    ASSIGN_OR_RETURN(double acc, collector_->Evaluate());
    Report("eval", step, {{"heldout_accuracy", acc}, {"eval_policy_version", static_cast<double>(evaluated)}});
  }
  return absl::OkStatus();
}

absl::Status RlLoop::SupervisedWarmup() {
  const auto& t = spec_.trainer();
  const int steps = t.sft_steps();
  const int batch = t.sft_batch_size();
  const double target = t.sft_target_accuracy();
  const int eval_every = t.sft_eval_every();
  const int holds = std::max(1, t.sft_target_holds());
  bool close = false;  // the last evaluation reached half the target
  int held = 0;        // consecutive evaluations at or above the target
  for (int s = 1; s <= steps; ++s) {
    RETURN_IF_ERROR(CheckCancelled());
    std::vector<SupervisedRow> rows(batch);
    for (auto& r : rows) {
      if (!data_.sft.empty()) {
        r = data_.sft[sft_cursor_.Next()];
        continue;
      }
      // No dataset.sft_path: the RL rows' prompt and answer, loss on the answer and EOS.
      const Problem& p = data_.train.Get(sft_cursor_.Next());
      r.ids = p.prompt_ids;
      if (r.ids.empty()) {
        ASSIGN_OR_RETURN(r.ids, tokenizer_->Encode(p.prompt));
        if (tokenizer_->bos_id() >= 0) r.ids.insert(r.ids.begin(), tokenizer_->bos_id());
      }
      r.loss_mask.assign(r.ids.size(), 0);
      ASSIGN_OR_RETURN(std::vector<int> answer, tokenizer_->Encode(p.answer));
      if (tokenizer_->eos_id() >= 0) answer.push_back(tokenizer_->eos_id());
      r.ids.insert(r.ids.end(), answer.begin(), answer.end());
      r.loss_mask.resize(r.ids.size(), 1);
    }
    ASSIGN_OR_RETURN(auto resp, clients_.learner->SupervisedStep(SupervisedStepRequest(
                                    s, rows, tokenizer_->pad_id(), spec_.trainer().sft_pack_length())));
    version_ = resp.weights_version();
    summary_["sft_steps_taken"] = s;
    const int loss_every = eval_every > 0 ? eval_every : 25;
    if (!data_.sft_heldout.empty() && (s % loss_every == 0 || s == steps)) {
      ASSIGN_OR_RETURN(double heldout, SupervisedHeldoutLoss(s));
      summary_["sft_heldout_loss"] = heldout;
      Report("sft_eval", s, {{"sft_heldout_loss", heldout}, {"sft_loss", resp.metrics().at("sft_loss")}});
    }
    if (s % 25 == 0 || s == steps) {
      Report("sft", s, {{"sft_loss", resp.metrics().at("sft_loss")}, {"sft_steps", static_cast<double>(steps)}});
    }
    RETURN_IF_ERROR(MaybeRecordProbes(s, s == steps));
    // A warm-up to a held-out criterion ends where the model is, not after a step count
    // whose outcome depends on the machine's floating-point kernels.
    if (target > 0 && (close || s % eval_every == 0 || s == steps)) {
      ASSIGN_OR_RETURN(auto fetched, clients_.learner->GetWeights(version_));
      RETURN_IF_ERROR(weights_->SyncActors(std::make_shared<const learner::LearnerClient::Weights>(std::move(fetched))));
      ASSIGN_OR_RETURN(double accuracy, collector_->Evaluate());
      summary_["sft_heldout_accuracy"] = accuracy;
      Report("sft_eval", s, {{"heldout_accuracy", accuracy}, {"sft_steps", static_cast<double>(steps)}});
      held = accuracy >= target ? held + 1 : 0;
      if (held >= holds) break;
      // Accuracy can climb steeply once it starts (30 points in 10 steps): from half the
      // target on, every step is evaluated, so the warm-up stops within a step of it.
      close = accuracy >= target / 2;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> RlLoop::SupervisedHeldoutLoss(int step) {
  const auto& held = data_.sft_heldout;
  const size_t batch = std::max(1, spec_.trainer().sft_batch_size());
  double loss = 0, tokens = 0;
  for (size_t b = 0; b < held.size(); b += batch) {
    std::vector<SupervisedRow> rows(held.begin() + b, held.begin() + std::min(held.size(), b + batch));
    double n = 0;
    for (const auto& r : rows) n += std::count(r.loss_mask.begin(), r.loss_mask.end(), 1);
    auto req = SupervisedStepRequest(step, rows, tokenizer_->pad_id(), spec_.trainer().sft_pack_length());
    req.set_eval_only(true);
    ASSIGN_OR_RETURN(auto resp, clients_.learner->SupervisedStep(req));
    loss += resp.metrics().at("sft_loss") * n;
    tokens += n;
  }
  return tokens > 0 ? loss / tokens : 0.0;
}

namespace {

// The run's spec for loading another checkpoint into the learner (a reward model, a policy
// to sample): the model at `path`, fresh (no resume), without a critic.
grail::v1::RunSpec CheckpointSpec(const grail::v1::RunSpec& run, const std::string& path) {
  grail::v1::RunSpec spec = run;
  spec.mutable_model()->clear_config();
  spec.mutable_model()->set_path(path);
  spec.mutable_trainer()->set_resume(false);
  spec.clear_critic();
  return spec;
}

}  // namespace

absl::Status RlLoop::LoadRewardModel() {
  grail::v1::RunSpec rm = CheckpointSpec(spec_, spec_.reward().model());
  rm.mutable_algorithm()->set_advantage_estimator(grail::v1::ADVANTAGE_ESTIMATOR_GRPO);
  rm.mutable_preference()->set_objective(grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL);
  auto named = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("reward.model '", spec_.reward().model(), "': ", s.message()));
  };
  auto init = InitLearner(rm);
  if (!init.ok()) return named(init.status());
  version_ = init->weights_version();
  // The whole model: the reward scorer loads it once, and keeps no frozen part for it.
  auto weights = clients_.learner->GetWeights(version_, grail::v1::WEIGHTS_PART_WHOLE);
  if (!weights.ok()) return named(weights.status());
  auto loaded = clients_.reward->LoadRewardModel(weights->blob, weights->version);
  if (!loaded.ok()) return named(loaded.status());
  Report("reward_model", 0, {{"reward_model_bytes", static_cast<double>(weights->blob.size())}},
         spec_.reward().model());
  return absl::OkStatus();
}

absl::Status RlLoop::MakeTrainingPairsFromPolicy(bool report) {
  const std::string& path = spec_.preference().sampled_pairs().policy();
  grail::v1::RunSpec policy = CheckpointSpec(spec_, path);
  policy.clear_preference();  // a plain policy: no value head
  auto named = [&](const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("preference.sampled_pairs.policy '", path, "': ", s.message()));
  };
  auto init = InitLearner(policy);
  if (!init.ok()) return named(init.status());
  version_ = init->weights_version();
  auto weights = clients_.learner->GetWeights(version_);
  if (!weights.ok()) return named(weights.status());
  RETURN_IF_ERROR(weights_->SyncActors(std::make_shared<const learner::LearnerClient::Weights>(std::move(*weights))));
  RETURN_IF_ERROR(MakeTrainingPairs(report));
  pairs_made_ = true;
  return absl::OkStatus();
}

absl::Status RlLoop::TakeGreedyProbeResponses() {
  std::vector<std::vector<int>> prompts;
  for (const auto& p : data_.probes) prompts.push_back(p.prompt);
  ASSIGN_OR_RETURN(std::vector<std::vector<int>> greedy, collector_->GreedyResponses(prompts));
  probe_sequences_ = BuildProbeSequences(data_.probes, greedy);
  return absl::OkStatus();
}

absl::Status RlLoop::MaybeRecordProbes(int step, bool last) {
  const int every = spec_.probes().every();
  if (probe_sequences_.rows.empty() || every <= 0 || (step % every != 0 && !last)) return absl::OkStatus();
  constexpr size_t kBatch = 64;
  std::vector<grail::v1::ProbeRecord> records;
  for (size_t b = 0; b < probe_sequences_.rows.size(); b += kBatch) {
    const size_t e = std::min(probe_sequences_.rows.size(), b + kBatch);
    ASSIGN_OR_RETURN(auto scored, clients_.learner->ScoreSequences(
                                      ScoreSequencesRequest(probe_sequences_, b, e, tokenizer_->pad_id())));
    RETURN_IF_ERROR(AppendProbeRecords(probe_sequences_, b, e, scored, step, &records));
  }
  grail::v1::StepReport r;
  r.set_step(step);
  r.set_total_steps(spec_.trainer().total_steps());
  r.set_policy_version(version_);
  r.set_phase("probe");
  r.set_state(grail::v1::RUN_STATE_RUNNING);
  for (const auto& [k, v] : ProbeMeans(records)) (*r.mutable_metrics())[k] = v;
  for (auto& record : records) *r.add_probes() = std::move(record);
  report_(r);
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

absl::Status RlLoop::SaveCheckpoint(int step) {
  const std::string root = spec_.checkpoint_dir().empty() ? run_id_ : spec_.checkpoint_dir();
  const std::string dir = absl::StrFormat("%s/step-%06d", root, step);
  if (step == 0) reference_checkpoint_ = dir;
  grail::v1::LoopState state = collector_->StateBefore(step + 1);
  if (preference()) {  // the pairs' order instead of the prompts'
    state.mutable_train_cursor()->set_epoch(preference_cursor_.state().epoch);
    state.mutable_train_cursor()->set_offset(preference_cursor_.state().offset);
  }
  state.set_step(step);
  state.set_kl_in_reward_coef(kl_controller_.value());
  state.set_reference_checkpoint(reference_checkpoint_);
  ASSIGN_OR_RETURN(std::string path, clients_.learner->SaveCheckpoint(dir, EncodeLoopState(state)));
  summary_["last_checkpoint_step"] = step;
  Report("checkpoint", step, {}, path);
  return absl::OkStatus();
}

absl::StatusOr<int> RlLoop::Resume(const grail::v1::InitModelResponse& init) {
  auto bad = [&](const std::string& why) {
    return absl::FailedPreconditionError(absl::StrCat("trainer.resume: model.path '", spec_.model().path(), "' ", why));
  };
  if (init.run_state().empty()) {
    return bad("is not a checkpoint with a run state (one written by a run with trainer.checkpoint_every)");
  }
  auto decoded = DecodeLoopState(init.run_state());
  if (!decoded.ok()) return bad(absl::StrCat("has a run state this coordinator cannot read (", decoded.status().message(), ")"));
  const grail::v1::LoopState& state = *decoded;
  const int step = static_cast<int>(state.step());
  if (state.step() >= spec_.trainer().total_steps()) {
    return absl::FailedPreconditionError(absl::StrCat("trainer.total_steps: the checkpoint is after step ", step,
                                                      "; nothing is left to run"));
  }
  // The reference gets the weights RL started from, kept in the run's step-0 checkpoint.
  reference_checkpoint_ = state.reference_checkpoint();
  if (reference_checkpoint_.empty()) return bad("names no reference checkpoint");
  grail::v1::RunSpec reference_spec = spec_;
  reference_spec.mutable_model()->set_path(reference_checkpoint_);
  reference_spec.mutable_trainer()->set_resume(false);
  ASSIGN_OR_RETURN(auto reference_init, InitLearner(reference_spec));
  version_ = reference_init.weights_version();
  ASSIGN_OR_RETURN(auto fetched, clients_.learner->GetWeights(version_));
  auto reference_weights = std::make_shared<const learner::LearnerClient::Weights>(std::move(fetched));
  reference_sums_.clear();
  RETURN_IF_ERROR(reference_->Load(reference_weights));
  const bool sampled_pairs = preference() && spec_.preference().sampled_pairs().prompts() > 0 && !pairs_made_;
  if (!data_.probes.empty() || sampled_pairs) {
    // The greedy probe responses and the sampled pairs are the start weights' (the
    // reference's), as in the straight run; the recordings up to the checkpoint are in the
    // run's reports already.
    RETURN_IF_ERROR(weights_->SyncActors(reference_weights));
    if (!data_.probes.empty()) RETURN_IF_ERROR(TakeGreedyProbeResponses());
  }
  // The resumed run's pairs are the same, reported already.
  if (preference() && !pairs_made_) RETURN_IF_ERROR(MakeTrainingPairs(/*report=*/false));
  // Back to the checkpoint being resumed (weights, optimizer state, step count).
  ASSIGN_OR_RETURN(auto resumed, InitLearner(spec_));
  version_ = resumed.weights_version();
  collector_->Restore(state);
  if (preference()) {
    preference_cursor_ = DatasetCursor(std::max<size_t>(pairs_.size(), 1), MixSeed(spec_.seed(), 3),
                                       DatasetCursor::State{state.train_cursor().epoch(), state.train_cursor().offset()});
  }
  kl_controller_ = NewKlController(spec_.algorithm(), state.kl_in_reward_coef());
  return step;
}

absl::Status RlLoop::TrainOnBatch(int step, CollectedBatch collected) {
  const auto& a = spec_.algorithm();
  std::map<std::string, double> m = std::move(collected.times);
  for (const auto& [k, v] : collected.stats) m[k] = v;
  m["step"] = step;
  if (collected.groups.empty()) {
    // Nothing informative after the bound: report it and move on without a policy update.
    m["samples_trained"] = 0;
    m["time_step"] = Seconds(last_step_end_);
    last_step_end_ = std::chrono::steady_clock::now();
    Report("rl", step, std::move(m));
    return absl::OkStatus();
  }
  const SamplePtrs samples = collected.Samples();
  std::vector<double> scores;
  std::vector<int64_t> index;
  for (const auto& g : collected.groups) {
    scores.insert(scores.end(), g.scores.begin(), g.scores.end());
    index.insert(index.end(), g.samples.size(), g.prompt_id);
  }
  const BehaviourKl kl = BehaviourMinusReference(samples, collected.ref_log_probs);
  const double kl_coef = a.use_kl_in_reward() ? kl_controller_.value() : 0.0;
  const bool value_pretraining = step <= spec_.trainer().value_pretrain_steps();
  Matrix values;
  if (algo::FindEstimator(a.advantage_estimator())->needs_critic) {
    ASSIGN_OR_RETURN(auto resp, clients_.learner->ComputeValues(ValuesRequest(samples, tokenizer_->pad_id())));
    ASSIGN_OR_RETURN(values, ResponseValues(resp, samples));
  }
  ASSIGN_OR_RETURN(StepAdvantages adv,
                   EstimateAdvantages(a, value_pretraining, samples, scores, index, kl, kl_coef, &values));
  if (a.use_kl_in_reward()) kl_controller_.Update(kl.mean, static_cast<int64_t>(samples.size()));

  // Version lag of what is about to be trained: 0 in the synchronous loop, at most
  // max_staleness policy updates in a pipelined one (the producer's construction).
  double lag_max = 0;
  for (const auto* sample : samples) {
    const double lag = static_cast<double>(version_ - sample->policy_version());
    metrics_->ObserveVersionLag(lag);
    lag_max = std::max(lag_max, lag);
  }
  // Value pretraining: the first steps train only the critic (the policy does not move).
  const bool critic_only = adv.has_critic && value_pretraining;
  const auto t_train = std::chrono::steady_clock::now();
  ASSIGN_OR_RETURN(auto trained, clients_.learner->TrainStep(TrainStepRequest(step, samples, collected.ref_log_probs, adv, critic_only,
                                                                              spec_.reward().mask_truncated(),
                                                                              tokenizer_->pad_id())));
  m["time_train"] = Seconds(t_train);
  metrics_->ObservePhase("train", m["time_train"]);
  version_ = trained.weights_version();
  metrics_->CountSamples("trained", static_cast<double>(samples.size()));

  for (const auto& [k, v] : RewardStats(collected.scores)) m[k] = v;
  m["policy_version"] = static_cast<double>(version_);
  m["critic_only"] = critic_only ? 1 : 0;
  if (kl.measured) m["kl_behavior_reference"] = kl.mean;
  m["version_lag_max"] = lag_max;
  m["version_lag_bound"] = spec_.trainer().max_staleness();
  if (a.use_kl_in_reward()) {
    m["kl_in_reward_coef"] = kl_coef;
    m["kl_in_reward_coef_next"] = kl_controller_.value();
  }
  m["samples_trained"] = static_cast<double>(samples.size());
  // Step time: since the previous step ended, so that pipelined and synchronous runs compare.
  m["time_step"] = Seconds(last_step_end_);
  last_step_end_ = std::chrono::steady_clock::now();
  m["tokens_per_second"] = m["time_step"] > 0 ? collected.generated_tokens / m["time_step"] : 0;
  for (const auto& [k, v] : trained.metrics()) m[k] = v;
  Report("rl", step, std::move(m));
  return absl::OkStatus();
}

}  // namespace grail::coordinator
