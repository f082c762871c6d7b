#include "learner/trainer.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <type_traits>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "learner/trainable.h"
#include "learner/checkpoint_manifest.h"
#include "learner/collective.h"
#include "learner/critic.h"
#include "learner/experience_tensors.h"
#include "learner/group_step.h"
#include "learner/policy_update.h"
#include "learner/preference_step.h"
#include "learner/train_settings.h"
#include "learner/training_checkpoint.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "model/tensor_convert.h"
#include "model/transformer.h"

namespace grail::learner {
namespace {

// Every public method runs inside one guard: a LibTorch exception (or any other) becomes an
// INTERNAL status naming the operation, never a crash of the learner.
template <typename Fn>
auto Guarded(const char* what, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat(what, " failed: ", e.what_without_backtrace()));
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat(what, " failed: ", e.what()));
  }
}

class TorchTrainer : public Trainer {
 public:
  explicit TorchTrainer(const TrainerOptions& options)
      : options_(options),
        group_(options.group ? options.group : NewSingleRankCollective(), options.on_group_failure) {}

  using Trainer::InitModel;
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest& request) override {
    return Guarded("model init", [&] { return InitModelImpl(request); });
  }
  using Trainer::GetWeights;
  absl::StatusOr<Weights> GetWeights(grail::v1::WeightsPart part) override {
    return Guarded("get weights", [&]() -> absl::StatusOr<Weights> {
      absl::MutexLock lock(&mu_);
      RETURN_IF_ERROR(ReadyLocked());
      const torch::ScalarType dtype = settings_.bf16_weights ? torch::kBFloat16 : torch::kFloat32;
      Weights w;
      w.version = version_;
      bool frozen = false;
      for (const auto& p : (*model_)->parameters()) frozen |= !p.requires_grad();
      if (part == grail::v1::WEIGHTS_PART_WHOLE || !frozen) {
        if (part == grail::v1::WEIGHTS_PART_FROZEN) {
          return absl::FailedPreconditionError("weights: the model has no frozen parameters");
        }
        ASSIGN_OR_RETURN(w.blob, model::ModelToSafetensors(*model_, dtype, BlobMetadataLocked()));
      } else if (part == grail::v1::WEIGHTS_PART_FROZEN) {
        RETURN_IF_ERROR(FrozenPartLocked(dtype));
        w.blob = frozen_blob_;
      } else {
        RETURN_IF_ERROR(FrozenPartLocked(dtype));
        ASSIGN_OR_RETURN(w.blob, model::ModelPartToSafetensors(*model_, model::WeightsPart::kTrainable,
                                                              frozen_digest_, dtype, BlobMetadataLocked()));
      }
      return w;
    });
  }
  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(const grail::v1::SupervisedStepRequest& request) override {
    return Guarded("supervised step", [&] { return SupervisedStepImpl(request); });
  }
  absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStep(const grail::v1::PreferenceStepRequest& request) override {
    return Guarded("preference step", [&] { return PreferenceStepImpl(request); });
  }
  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) override {
    return Guarded("checkpoint", [&] { return SaveCheckpointImpl(dir, run_state); });
  }
  absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(
      const grail::v1::ComputeValuesRequest& request) override {
    return Guarded("values", [&]() -> absl::StatusOr<grail::v1::ComputeValuesResponse> {
      absl::MutexLock lock(&mu_);
      RETURN_IF_ERROR(EnsureCriticLocked());
      auto& c = critic_->model();
      ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(request.input_ids(), "input_ids", c->config().vocab_size,
                                                   c->config().max_position_embeddings));
      grail::v1::ComputeValuesResponse response;
      ASSIGN_OR_RETURN(*response.mutable_values(), model::TensorToProto(critic_->Values(ids)));
      return response;
    });
  }
  absl::StatusOr<grail::v1::ScoreSequencesResponse> ScoreSequences(
      const grail::v1::ScoreSequencesRequest& request) override {
    return Guarded("score sequences", [&]() -> absl::StatusOr<grail::v1::ScoreSequencesResponse> {
      absl::MutexLock lock(&mu_);
      RETURN_IF_ERROR(ReadyLocked());
      ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(request.input_ids(), "input_ids", (*model_)->config().vocab_size,
                                                   (*model_)->config().max_position_embeddings));
      torch::NoGradGuard no_grad;
      (*model_)->eval();
      torch::Tensor max_log_probs;
      torch::Tensor log_probs = AlignedLogProbs(*model_, ids, nullptr, 1.0, &max_log_probs);
      grail::v1::ScoreSequencesResponse response;
      ASSIGN_OR_RETURN(*response.mutable_log_probs(), model::TensorToProto(log_probs));
      ASSIGN_OR_RETURN(*response.mutable_max_log_probs(), model::TensorToProto(max_log_probs));
      return response;
    });
  }
  absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(const grail::v1::TrainStepRequest& request) override {
    return Guarded("train step", [&] { return TrainStepImpl(request); });
  }

 private:
  // A reward model's weights and checkpoints name the run's tokenizer, so that the reward
  // scorer reads texts the way the model was trained (model::kTokenizerMetadataKey).
  absl::Status FrozenPartLocked(torch::ScalarType dtype) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (!frozen_blob_.empty()) return absl::OkStatus();
    ASSIGN_OR_RETURN(frozen_digest_, model::FrozenPartDigest(*model_, dtype));
    ASSIGN_OR_RETURN(frozen_blob_, model::ModelPartToSafetensors(*model_, model::WeightsPart::kFrozen, frozen_digest_,
                                                                dtype, BlobMetadataLocked()));
    return absl::OkStatus();
  }

  std::map<std::string, std::string> BlobMetadataLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (settings_.preference.objective() != grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL) return {};
    return {{model::kTokenizerMetadataKey, settings_.tokenizer}};
  }

  absl::Status ReadyLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    RETURN_IF_ERROR(group_.broken());
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    return absl::OkStatus();
  }

  absl::StatusOr<grail::v1::InitModelResponse> InitModelImpl(const grail::v1::InitModelRequest& request) {
    const grail::v1::RunSpec& spec = request.spec();
    ASSIGN_OR_RETURN(TrainSettings settings, SettingsFromSpec(spec));
    std::shared_ptr<model::CausalLm> built;
    std::string dir;
    if (!spec.model().path().empty()) {
      ASSIGN_OR_RETURN(dir, ResolveUnderRoot(options_.data_root, spec.model().path(), "model.path"));
      // Nothing is loaded from a checkpoint that was never committed or does not match its
      // manifest's digests.
      RETURN_IF_ERROR(VerifyCheckpointDir(dir, spec.model().path()));
      ASSIGN_OR_RETURN(model::CausalLm loaded, model::LoadModelDir(dir));
      built = std::make_shared<model::CausalLm>(std::move(loaded));
    } else {
      model::ModelConfig config = model::ModelConfigFromProto(spec.model().config());
      absl::Status valid = config.Validate();
      if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat("model.config.", valid.message()));
      built = std::make_shared<model::CausalLm>(config);
      (*built)->InitWeights(spec.model().init_seed());
    }
    if (settings.preference.objective() == grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL &&
        !(*built)->config().value_head) {
      // A reward-model run trains the model with a scalar head on top (a fresh head, the
      // decoder's weights as given).
      model::ModelConfig config = (*built)->config();
      config.value_head = true;
      auto rm = std::make_shared<model::CausalLm>(config);
      (*rm)->InitWeights(spec.model().init_seed() + 1);
      CopyMatchingParameters(*built, *rm);
      built = std::move(rm);
    }
    std::string adapter_dir;
    if (!spec.model().peft().path().empty()) {
      ASSIGN_OR_RETURN(adapter_dir, ResolveUnderRoot(options_.data_root, spec.model().peft().path(), "model.peft.path"));
    }
    ASSIGN_OR_RETURN(built, WithAdapters(spec.model(), std::move(built), spec.model().init_seed() + 2, adapter_dir));
    RETURN_IF_ERROR(SelectTrainable(spec.model(), *built));

    grail::v1::InitModelResponse response;
    response.set_num_parameters((*built)->NumParameters());
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(group_.broken());
    // Every rank starts from rank 0's parameters, whatever each rank built.
    RETURN_IF_ERROR(group_.AgreeAndSum(StepKind::kInit, 0, version_, {}).status());
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> params;
      for (auto& p : (*built)->parameters()) params.push_back(p.data());
      RETURN_IF_ERROR(group_.Check(group_.collective().Broadcast(params, 0, "model broadcast")));
    }
    (*built)->SetGradientCheckpointing(settings.gradient_checkpointing);
    model_ = std::move(built);
    frozen_blob_.clear();
    frozen_digest_.clear();
    settings_ = settings;
    // Frozen parameters (model.peft, model.trainable) get no optimizer state.
    auto params = TrainableParameters(*model_);
    sft_optimizer_ = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(settings_.sft_learning_rate).weight_decay(0.0));
    rl_optimizer_ = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(settings_.learning_rate).weight_decay(settings_.weight_decay));
    // The critic is built when it is first used (after any supervised warm-up), so that
    // critic.init: policy starts it from the policy RL begins with.
    critic_.reset();
    rl_steps_ = 0;
    // Versions only grow within a learner process, so that actors holding an earlier run's
    // weights accept the new model.
    version_ = std::max<int64_t>(version_ + 1, request.min_weights_version());
    // Resuming (trainer.resume) from a checkpoint written by SaveCheckpoint also restores the
    // RL optimizer's moments, the RL step count (learning-rate schedule) and the weights
    // version: a restarted learner group continues exactly where the checkpoint was taken. A
    // new run from a checkpoint takes its weights only.
    if (!dir.empty() && spec.trainer().resume()) {
      if (!std::filesystem::exists(std::filesystem::path(dir) / "manifest.json")) {
        return absl::FailedPreconditionError(
            absl::StrCat("trainer.resume: model.path '", spec.model().path(), "' has no checkpoint manifest"));
      }
      ASSIGN_OR_RETURN(TrainingState state, RestoreTrainingState(dir, *model_, *rl_optimizer_));
      rl_steps_ = state.rl_steps;
      version_ = std::max(version_, state.weights_version);
      response.set_run_state(state.run_state);
    }
    if (spec.model().quantize() == "nf4") {
      (*model_)->QuantizeFrozen(spec.model().has_double_quant() ? spec.model().double_quant() : true);
      frozen_blob_.clear();
      frozen_digest_.clear();
    }
    response.set_frozen_resident_bytes((*model_)->FrozenResidentBytes());
    response.set_weights_version(version_);
    return response;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStepImpl(const grail::v1::SupervisedStepRequest& request) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(ReadyLocked());
    auto& m = *model_;
    ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(request.input_ids(), "input_ids", m->config().vocab_size,
                                                 m->config().max_position_embeddings));
    ASSIGN_OR_RETURN(torch::Tensor mask, FloatMatrixLike(request.loss_mask(), "loss_mask", ids));
    torch::Tensor segments;
    if (request.has_segment_ids()) {
      if (m->config().num_virtual_tokens > 0) {
        return absl::InvalidArgumentError("segment_ids: packed rows cannot take prompt tuning's virtual tokens");
      }
      ASSIGN_OR_RETURN(segments, SegmentIds(request.segment_ids(), "segment_ids", ids));
    }
    const double local_tokens = mask.sum().item<double>();
    ASSIGN_OR_RETURN(std::vector<double> global,
                     group_.AgreeAndSum(StepKind::kSupervised, request.step(), version_, {local_tokens}));
    const double weight = ShareOf(local_tokens, global[0]);
    const bool train = !request.eval_only();
    double allreduce_seconds = 0, grad_norm = 0, lr = 0;
    train ? m->train() : m->eval();
    std::optional<torch::NoGradGuard> no_grad;
    if (!train) no_grad.emplace();
    if (train) {
      lr = SftLearningRate(settings_, request.step());
      for (auto& g : sft_optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      sft_optimizer_->zero_grad();
    }
    // The token-mean cross-entropy over the batch, accumulated over micro-batches of rows:
    // each one's share is its masked sum over the batch's tokens, so the update is the same.
    const int64_t B = ids.size(0);
    const int64_t chunks = std::min<int64_t>(train ? settings_.sft_grad_accumulation : 1, B);
    double loss_value = 0;
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t b0 = B * c / chunks, b1 = B * (c + 1) / chunks;
      auto lp = AlignedLogProbs(m, ids.slice(0, b0, b1), nullptr, 1.0, nullptr, false,
                                segments.defined() ? segments.slice(0, b0, b1) : torch::Tensor());
      auto loss = -(lp * mask.slice(0, b0, b1)).sum() / (local_tokens + 1e-8) * weight;
      if (train) loss.backward();
      loss_value += loss.item<double>();
    }
    if (train) {
      RETURN_IF_ERROR(group_.Check(
          AllReduceGradients(group_.collective(), TrainableParameters(m), options_.bucket_bytes, &allreduce_seconds)));
      grad_norm = torch::nn::utils::clip_grad_norm_(TrainableParameters(m), settings_.grad_clip);
      sft_optimizer_->step();
      ++version_;
    }
    ASSIGN_OR_RETURN(std::vector<double> summed, group_.Sum({loss_value}));
    grail::v1::TrainStepResponse response;
    response.set_weights_version(version_);
    auto& metrics = *response.mutable_metrics();
    metrics["sft_loss"] = summed[0];
    if (train) {
      metrics["grad_norm"] = grad_norm;
      metrics["allreduce_seconds"] = allreduce_seconds;
      metrics["learning_rate"] = lr;
    }
    return response;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStepImpl(const grail::v1::PreferenceStepRequest& request) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(ReadyLocked());
    const auto& pref = settings_.preference;
    if (pref.objective() == grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED) {
      return absl::FailedPreconditionError("preference step: the run spec names no preference.objective");
    }
    auto& m = *model_;
    ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(request.input_ids(), "input_ids", m->config().vocab_size,
                                                 m->config().max_position_embeddings));
    ASSIGN_OR_RETURN(torch::Tensor mask, FloatMatrixLike(request.completion_mask(), "completion_mask", ids));
    ASSIGN_OR_RETURN(PreferenceBatch batch, DecodePreferenceBatch(request, pref.objective(), ids, mask));
    ASSIGN_OR_RETURN(std::vector<double> global,
                     group_.AgreeAndSum(StepKind::kPreference, request.step(), version_,
                                        {static_cast<double>(batch.pairs)}));
    const double weight = ShareOf(batch.pairs, global[0]);
    const bool train = !request.eval_only();
    train ? m->train() : m->eval();
    std::optional<torch::NoGradGuard> no_grad;
    if (!train) no_grad.emplace();
    // One forward pass over chosen and rejected: summed completion log-probs per row, or for
    // a reward model the score (value head) at each row's last completion token.
    const torch::Tensor seq = pref.objective() == grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL
                                  ? LastTokenScores(m, ids, mask)
                                  : (AlignedLogProbs(m, ids) * mask).sum(1);
    ASSIGN_OR_RETURN(PreferenceObjectiveResult r, PreferenceObjective(pref, seq, batch, !train));
    double allreduce_seconds = 0, grad_norm = 0;
    if (train) {
      // A preference step is the run's policy update: the RL optimizer (checkpointed with
      // the run), its warm-up and schedule, and its step count.
      const double lr = RlLearningRate(settings_, ++rl_steps_);
      for (auto& g : rl_optimizer_->param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
      rl_optimizer_->zero_grad();
      (r.loss * weight).backward();
      RETURN_IF_ERROR(group_.Check(
          AllReduceGradients(group_.collective(), TrainableParameters(m), options_.bucket_bytes, &allreduce_seconds)));
      grad_norm = torch::nn::utils::clip_grad_norm_(TrainableParameters(m), settings_.grad_clip);
      rl_optimizer_->step();
      ++version_;
      r.metrics["learning_rate"] = lr;
    }
    if (r.loss.defined()) r.metrics["loss"] = r.loss.item<double>();
    // Every metric is a mean over pairs: the group's is the pair-weighted sum of the ranks'.
    std::vector<std::string> names;
    std::vector<double> local;
    for (const auto& [k, v] : r.metrics) names.push_back(k), local.push_back(v * weight);
    ASSIGN_OR_RETURN(std::vector<double> summed, group_.Sum(local));
    grail::v1::TrainStepResponse response;
    response.set_weights_version(version_);
    auto& metrics = *response.mutable_metrics();
    for (size_t i = 0; i < names.size(); ++i) metrics[names[i]] = summed[i];
    if (train) {
      metrics["grad_norm"] = grad_norm;
      metrics["allreduce_seconds"] = allreduce_seconds;
    }
    return response;
  }

  absl::StatusOr<std::string> SaveCheckpointImpl(const std::string& dir, const std::string& run_state) {
    if (run_state.size() > (64 << 10)) return absl::InvalidArgumentError("run_state: larger than 64 KiB");
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(ReadyLocked());
    ASSIGN_OR_RETURN(std::string path, ResolveUnderRoot(options_.data_root, dir, "dir"));
    RETURN_IF_ERROR(WriteTrainingCheckpoint(path, dir, *model_, *rl_optimizer_,
                                            TrainingState{version_, rl_steps_, run_state}, BlobMetadataLocked()));
    return path;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> TrainStepImpl(const grail::v1::TrainStepRequest& request) {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(ReadyLocked());
    auto& m = *model_;
    ASSIGN_OR_RETURN(ExperienceTensors x, DecodeExperience(request.experience(), m->config().vocab_size,
                                                           m->config().max_position_embeddings));
    if (x.returns.defined()) {
      if (!settings_.critic) {
        return absl::InvalidArgumentError("experience.returns: this run has no critic (critic.enabled is false)");
      }
      RETURN_IF_ERROR(EnsureCriticLocked());
    } else if (request.critic_only()) {
      return absl::InvalidArgumentError("experience.returns: critic_only needs returns and values");
    }
    // Token and row counts of the whole local shard and of each mini-batch slice, summed
    // over the group: every rank's loss uses the global normalisers.
    const int64_t B = x.ids.size(0);
    const int mb = settings_.mini_batches;
    std::vector<double> counts = {x.mask.sum().item<double>(), static_cast<double>(B)};
    for (int k = 0; k < mb; ++k) {
      const int64_t begin = B * k / mb, end = B * (k + 1) / mb;
      counts.push_back(end > begin ? x.mask.narrow(0, begin, end - begin).sum().item<double>() : 0.0);
      counts.push_back(static_cast<double>(end - begin));
    }
    ASSIGN_OR_RETURN(std::vector<double> global,
                     group_.AgreeAndSum(request.critic_only() ? StepKind::kCritic : StepKind::kRl, request.step(),
                                        version_, counts));
    std::vector<ShardWeights> weights;
    for (size_t i = 0; i < counts.size(); i += 2) {
      weights.push_back({ShareOf(counts[i], global[i]), ShareOf(counts[i + 1], global[i + 1])});
    }
    grail::v1::TrainStepResponse response;
    double allreduce_seconds = 0;
    if (x.returns.defined()) {
      RETURN_IF_ERROR(critic_->Step(x.ids, x.mask, x.returns, x.old_values, weights[0], group_,
                                    options_.bucket_bytes, &allreduce_seconds, &response));
    }
    if (request.critic_only()) {
      response.set_weights_version(version_);
      (*response.mutable_metrics())["allreduce_seconds"] = allreduce_seconds;
      return response;
    }
    PolicyBatch batch{x.ids, x.mask, x.old_log_probs, x.advantages, x.ref_log_probs, {}};
    for (int k = 0; k < mb; ++k) batch.slices.push_back({weights[k + 1], global[2 * k + 3]});
    // Truncated importance sampling: the samples may come from older policies (async
    // rollouts). The ratio is clipped against the current policy's log-probs, and each
    // token's advantage is weighted by min(p_current / p_behaviour, tis_cap). With one
    // mini-batch the first forward pass of the step is taken before any update, so it
    // provides the current log-probs; otherwise they take a separate pass.
    TisStats tis;
    const bool tis_in_first_pass = settings_.tis_cap > 0 && mb == 1;
    if (settings_.tis_cap > 0 && !tis_in_first_pass) {
      torch::NoGradGuard no_grad;
      tis = ApplyTis(settings_.tis_cap, AlignedLogProbs(m, x.ids, nullptr, settings_.temperature), x.mask, weights[0],
                     &batch.old_log_probs, &batch.advantages);
    }
    ++rl_steps_;
    auto metrics = UpdatePolicy(m, *rl_optimizer_, settings_, rl_steps_, group_, options_.bucket_bytes,
                                std::move(batch), &allreduce_seconds, tis_in_first_pass ? &tis : nullptr);
    RETURN_IF_ERROR(metrics.status());
    ++version_;
    grail::v1::TrainStepResponse policy;
    policy.set_weights_version(version_);
    auto& out = *policy.mutable_metrics();
    for (const auto& [k, v] : *metrics) out[k] = v;
    if (settings_.tis_cap > 0) {
      ASSIGN_OR_RETURN(std::vector<double> summed, group_.Sum({tis.weight, tis.capped}));
      out["tis_weight_mean"] = summed[0];
      out["tis_capped_ratio"] = summed[1];
    }
    for (const auto& [k, v] : response.metrics()) out[k] = v;
    out["allreduce_seconds"] = allreduce_seconds;
    return policy;
  }

  // Builds the critic on first use, from the current policy.
  absl::Status EnsureCriticLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    if (!settings_.critic) return absl::FailedPreconditionError("no critic: critic.enabled is false for this run");
    if (critic_ != nullptr) return absl::OkStatus();
    ASSIGN_OR_RETURN(critic_, Critic::Create(*model_, settings_));
    return absl::OkStatus();
  }

  const TrainerOptions options_;
  absl::Mutex mu_;
  GroupStep group_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<model::CausalLm> model_ ABSL_GUARDED_BY(mu_);
  TrainSettings settings_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<torch::optim::AdamW> sft_optimizer_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<torch::optim::AdamW> rl_optimizer_ ABSL_GUARDED_BY(mu_);
  // The frozen part never changes while the model lives: written and digested once.
  std::string frozen_blob_ ABSL_GUARDED_BY(mu_);
  std::string frozen_digest_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Critic> critic_ ABSL_GUARDED_BY(mu_);
  int64_t rl_steps_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& options) {
  if (options.num_threads <= 0) return absl::InvalidArgumentError("threads: must be > 0");
  at::set_num_threads(options.num_threads);
  return std::unique_ptr<Trainer>(new TorchTrainer(options));
}

}  // namespace grail::learner
