#include "learner/trainer.h"

#include <ATen/Parallel.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "common/weights_stream.h"
#include "learner/checkpoint_manifest.h"
#include "learner/collective.h"
#include "learner/losses.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "model/tensor_convert.h"
#include "model/transformer.h"

namespace grail::learner {
namespace {

// Settings of a run with the documented defaults filled in.
struct TrainSettings {
  double learning_rate = 1e-4;
  double sft_learning_rate = 1e-3;
  double weight_decay = 0.0;
  double grad_clip = 1.0;
  int warmup_steps = 0;
  bool cosine = false;       // RL rate decays along a cosine after the warm-up
  double min_lr_ratio = 0.1;
  int total_steps = 0;
  int ppo_epochs = 1;
  int mini_batches = 1;
  PolicyLossKind policy_loss = PolicyLossKind::kPpo;
  LossAgg loss_agg = LossAgg::kTokenMean;
  KlSpec kl;
  ClipOptions clip;
  double kl_coef = 0.0;
  double entropy_coef = 0.0;
  bool critic = false;
  bool critic_from_policy = true;
  double critic_learning_rate = 1e-4;
  double cliprange_value = 0.5;
  uint64_t critic_seed = 1;
  double tis_cap = 0;  // > 0: truncated importance sampling against the behaviour log-probs
  double temperature = 1.0;  // the rollout sampling temperature (greedy counts as 1)
};

absl::StatusOr<TrainSettings> SettingsFromSpec(const grail::v1::RunSpec& spec) {
  TrainSettings s;
  const auto& t = spec.trainer();
  const auto& a = spec.algorithm();
  if (t.learning_rate() > 0) s.learning_rate = t.learning_rate();
  if (t.sft_learning_rate() > 0) s.sft_learning_rate = t.sft_learning_rate();
  s.weight_decay = t.weight_decay();
  if (t.grad_clip() > 0) s.grad_clip = t.grad_clip();
  s.warmup_steps = t.warmup_steps();
  if (!t.lr_schedule().empty() && t.lr_schedule() != "constant" && t.lr_schedule() != "cosine") {
    return absl::InvalidArgumentError("trainer.lr_schedule: must be constant or cosine");
  }
  s.cosine = t.lr_schedule() == "cosine";
  if (t.min_lr_ratio() > 0) s.min_lr_ratio = t.min_lr_ratio();
  s.total_steps = t.total_steps();
  if (spec.sampling().temperature() > 0) s.temperature = spec.sampling().temperature();
  if (t.ppo_epochs() > 0) s.ppo_epochs = t.ppo_epochs();
  if (t.mini_batches() > 0) s.mini_batches = t.mini_batches();
  if (a.clip_ratio_low() > 0) s.clip.clip_ratio_low = a.clip_ratio_low();
  if (a.clip_ratio_high() > 0) s.clip.clip_ratio_high = a.clip_ratio_high();
  if (a.clip_ratio_c() > 0) s.clip.clip_ratio_c = a.clip_ratio_c();
  s.kl_coef = a.kl_coef();
  s.entropy_coef = a.entropy_coef();
  ASSIGN_OR_RETURN(s.policy_loss, ParsePolicyLoss(a.policy_loss()));
  ASSIGN_OR_RETURN(s.loss_agg, ParseLossAgg(a.loss_agg_mode()));
  ASSIGN_OR_RETURN(s.kl, ParseKl(a.kl_estimator()));
  const auto& c = spec.critic();
  s.critic = c.enabled();
  if (!c.init().empty() && c.init() != "policy" && c.init() != "random") {
    return absl::InvalidArgumentError(absl::StrCat("critic.init: '", c.init(), "' is not policy or random"));
  }
  s.critic_from_policy = c.init() != "random";
  s.critic_learning_rate = c.learning_rate() > 0 ? c.learning_rate() : s.learning_rate;
  if (c.value_clip() > 0) s.cliprange_value = c.value_clip();
  s.critic_seed = spec.model().init_seed() + 1;
  if (a.tis_cap() < 0) return absl::InvalidArgumentError("algorithm.tis_cap: must be >= 0");
  s.tis_cap = a.tis_cap() > 0 ? a.tis_cap() : (spec.trainer().max_staleness() > 0 ? 2.0 : 0.0);
  return s;
}

// Per-token log-probs aligned with input_ids: column t is log p(ids[:, t] | ids[:, :t]);
// column 0 is 0. Right padding needs no attention mask under causal attention.
// `temperature` (> 0) scales the logits as the actors' sampler does, so that RL log-probs
// are taken under the same distribution as the behaviour log-probs.
torch::Tensor AlignedLogProbs(model::CausalLm& model, const torch::Tensor& ids,
                              torch::Tensor* entropy = nullptr, double temperature = 1.0) {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto valid = torch::ones({B, T}, torch::kBool);
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto logits = model->Logits(model->Hidden(ids, positions, valid)).narrow(1, 0, T - 1);
  if (temperature > 0 && temperature != 1.0) logits = logits / temperature;
  auto log_softmax = torch::log_softmax(logits, -1);
  auto lp = log_softmax.gather(-1, ids.narrow(1, 1, T - 1).unsqueeze(-1)).squeeze(-1);
  if (entropy != nullptr) {
    auto ent = -(log_softmax.exp() * log_softmax).sum(-1);
    *entropy = torch::cat({torch::zeros({B, 1}), ent}, 1);
  }
  return torch::cat({torch::zeros({B, 1}), lp}, 1);
}

// Values aligned with input_ids: column t is the value head at position t-1; column 0 is 0.
torch::Tensor AlignedValues(model::CausalLm& critic, const torch::Tensor& ids) {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto valid = torch::ones({B, T}, torch::kBool);
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto v = critic->Values(critic->Hidden(ids, positions, valid)).narrow(1, 0, T - 1);
  return torch::cat({torch::zeros({B, 1}), v}, 1);
}

absl::StatusOr<torch::Tensor> FloatMatrix(const grail::v1::Tensor& t, const std::string& field,
                                          const torch::Tensor& like) {
  RETURN_IF_ERROR(ValidateTensorAs(t, field, 2, {grail::v1::DTYPE_FLOAT32}));
  ASSIGN_OR_RETURN(torch::Tensor out, model::TensorFromProto(t, field));
  if (out.sizes() != like.sizes()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape: must equal input_ids.shape"));
  }
  if (!torch::isfinite(out).all().item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": contains NaN or Inf"));
  }
  return out;
}

absl::StatusOr<torch::Tensor> TokenIds(const grail::v1::Tensor& t, const std::string& field,
                                       int64_t vocab, int64_t context) {
  RETURN_IF_ERROR(ValidateTensorAs(t, field, 2, {grail::v1::DTYPE_INT64}));
  ASSIGN_OR_RETURN(torch::Tensor ids, model::TensorFromProto(t, field));
  if (ids.size(0) == 0 || ids.size(1) < 2) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".shape: need at least 1 row and 2 columns"));
  }
  if (ids.size(1) > context) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".shape[1]: ", ids.size(1), " exceeds the model context ", context));
  }
  if (ids.min().item<int64_t>() < 0 || ids.max().item<int64_t>() >= vocab) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": token ids must be in [0, ", vocab, ")"));
  }
  return ids;
}

// What one rank's share of a batch weighs in the group's loss: local / global token count
// for token means, local / global row count for sequence means, 1 for
// seq-mean-token-sum-norm (a sum over rows with a constant divisor).
struct ShardWeights {
  double tokens = 1;
  double rows = 1;
  double For(LossAgg agg) const {
    switch (agg) {
      case LossAgg::kTokenMean:
        return tokens;
      case LossAgg::kSeqMeanTokenSum:
      case LossAgg::kSeqMeanTokenMean:
        return rows;
      case LossAgg::kSeqMeanTokenSumNorm:
        return 1.0;
    }
    return tokens;
  }
};

double Ratio(double local, double global) { return global > 0 ? local / global : 0.0; }

// Step kinds in the collective step header.
enum StepKind { kInitStep = 1, kSupervisedStep = 2, kRlStep = 3, kCriticStep = 4 };

class TorchTrainer : public Trainer {
 public:
  explicit TorchTrainer(const TrainerOptions& options)
      : options_(options), group_(options.group ? options.group : NewSingleRankCollective()) {}

  using Trainer::InitModel;
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest& request) override {
    const grail::v1::RunSpec& spec = request.spec();
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
      if (!valid.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("model.config.", valid.message()));
      }
      try {
        built = std::make_shared<model::CausalLm>(config);
        (*built)->InitWeights(spec.model().init_seed());
      } catch (const c10::Error& e) {
        return absl::InternalError(absl::StrCat("model init failed: ", e.what_without_backtrace()));
      }
    }
    ASSIGN_OR_RETURN(TrainSettings settings, SettingsFromSpec(spec));
    grail::v1::InitModelResponse response;
    response.set_num_parameters((*built)->NumParameters());
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    // Every rank starts from rank 0's parameters, whatever each rank built.
    RETURN_IF_ERROR(AgreeAndSumLocked(kInitStep, 0, {}).status());
    {
      torch::NoGradGuard no_grad;
      std::vector<torch::Tensor> params;
      for (auto& p : (*built)->parameters()) params.push_back(p.data());
      RETURN_IF_ERROR(GroupCall(group_->Broadcast(params, 0, "model broadcast")));
    }
    model_ = std::move(built);
    settings_ = settings;
    auto params = (*model_)->parameters();
    sft_optimizer_ = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(settings_.sft_learning_rate).weight_decay(0.0));
    rl_optimizer_ = std::make_unique<torch::optim::AdamW>(
        params, torch::optim::AdamWOptions(settings_.learning_rate).weight_decay(settings_.weight_decay));
    // The critic is built when it is first used (after any supervised warm-up), so that
    // critic.init: policy starts it from the policy RL begins with.
    critic_.reset();
    critic_optimizer_.reset();
    rl_steps_ = 0;
    // Versions only grow within a learner process, so that actors holding an earlier run's
    // weights accept the new model.
    version_ = std::max<int64_t>(version_ + 1, request.min_weights_version());
    // Resuming (trainer.resume) from a checkpoint written by SaveCheckpoint also restores the
    // RL optimizer's moments, the RL step count (learning-rate warm-up) and the weights
    // version: a restarted learner group continues exactly where the checkpoint was taken. A
    // new run from a checkpoint takes its weights only.
    if (!dir.empty() && spec.trainer().resume()) {
      if (!std::filesystem::exists(std::filesystem::path(dir) / "manifest.json")) {
        return absl::FailedPreconditionError(
            absl::StrCat("trainer.resume: model.path '", spec.model().path(), "' has no checkpoint manifest"));
      }
      ASSIGN_OR_RETURN(std::string run_state, RestoreTrainingStateLocked(dir));
      response.set_run_state(run_state);
    }
    response.set_weights_version(version_);
    return response;
  }

  absl::StatusOr<Weights> GetWeights() override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    Weights w;
    ASSIGN_OR_RETURN(w.blob, model::ModelToSafetensors(*model_));
    w.version = version_;
    return w;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(
      const grail::v1::SupervisedStepRequest& request) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    auto& m = *model_;
    ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(request.input_ids(), "input_ids", m->config().vocab_size,
                                                 m->config().max_position_embeddings));
    ASSIGN_OR_RETURN(torch::Tensor mask, FloatMatrix(request.loss_mask(), "loss_mask", ids));
    try {
      const double local_tokens = mask.sum().item<double>();
      ASSIGN_OR_RETURN(std::vector<double> global,
                       AgreeAndSumLocked(kSupervisedStep, request.step(), {local_tokens}));
      const double weight = Ratio(local_tokens, global[0]);
      double allreduce_seconds = 0;
      m->train();
      sft_optimizer_->zero_grad();
      auto lp = AlignedLogProbs(m, ids);
      auto loss = -MaskedMean(lp, mask) * weight;
      loss.backward();
      RETURN_IF_ERROR(GroupCall(
          AllReduceGradients(*group_, m->parameters(), options_.bucket_bytes, &allreduce_seconds)));
      const double grad_norm = torch::nn::utils::clip_grad_norm_(m->parameters(), settings_.grad_clip);
      sft_optimizer_->step();
      ++version_;
      ASSIGN_OR_RETURN(std::vector<double> summed, SumLocked({loss.item<double>()}));
      grail::v1::TrainStepResponse response;
      response.set_weights_version(version_);
      auto& metrics = *response.mutable_metrics();
      metrics["sft_loss"] = summed[0];
      metrics["grad_norm"] = grad_norm;
      metrics["allreduce_seconds"] = allreduce_seconds;
      return response;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("supervised step failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) override {
    if (run_state.size() > (64 << 10)) return absl::InvalidArgumentError("run_state: larger than 64 KiB");
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    ASSIGN_OR_RETURN(std::string path, ResolveUnderRoot(options_.data_root, dir, "dir"));
    namespace fs = std::filesystem;
    if (fs::exists(fs::path(path) / "COMMITTED")) {
      return absl::AlreadyExistsError(absl::StrCat("dir: a checkpoint is already committed at ", path));
    }
    const std::string tmp = absl::StrCat(path, ".tmp-", getpid());
    std::error_code ec;
    fs::remove_all(tmp, ec);
    fs::create_directories(tmp, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", tmp, ": ", ec.message()));
    ASSIGN_OR_RETURN(std::string model_blob, model::ModelToSafetensors(*model_));
    ASSIGN_OR_RETURN(std::string optimizer_blob, OptimizerToSafetensors());
    const std::string config = model::ToHfConfigJson((*model_)->config());
    nlohmann::ordered_json manifest;
    manifest["format"] = "grail-checkpoint-v1";
    manifest["weights_version"] = version_;
    manifest["rl_steps"] = rl_steps_;
    manifest["run_state"] = run_state;
    manifest["files"] = {{"model.safetensors", Sha256Hex(model_blob)},
                         {"optimizer.safetensors", Sha256Hex(optimizer_blob)},
                         {"config.json", Sha256Hex(config)}};
    for (const auto& [name, bytes] : std::vector<std::pair<std::string, const std::string*>>{
             {"model.safetensors", &model_blob}, {"optimizer.safetensors", &optimizer_blob},
             {"config.json", &config}}) {
      RETURN_IF_ERROR(model::WriteFileAtomically(tmp + "/" + name, *bytes));
    }
    const std::string manifest_text = manifest.dump(2);
    RETURN_IF_ERROR(model::WriteFileAtomically(tmp + "/manifest.json", manifest_text));
    RETURN_IF_ERROR(model::WriteFileAtomically(tmp + "/COMMITTED", Sha256Hex(manifest_text)));
    fs::remove_all(path, ec);  // an uncommitted leftover
    fs::create_directories(fs::path(path).parent_path(), ec);
    fs::rename(tmp, path, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot move checkpoint into ", path, ": ", ec.message()));
    return path;
  }

  absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(
      const grail::v1::ComputeValuesRequest& request) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(EnsureCriticLocked());
    auto& c = *critic_;
    ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(request.input_ids(), "input_ids", c->config().vocab_size,
                                                 c->config().max_position_embeddings));
    try {
      torch::NoGradGuard no_grad;
      grail::v1::ComputeValuesResponse response;
      ASSIGN_OR_RETURN(*response.mutable_values(), model::TensorToProto(AlignedValues(c, ids)));
      return response;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("values failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(const grail::v1::TrainStepRequest& request) override {
    absl::MutexLock lock(&mu_);
    RETURN_IF_ERROR(broken_);
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    auto& m = *model_;
    const auto& e = request.experience();
    ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(e.input_ids(), "experience.input_ids",
                                                 m->config().vocab_size,
                                                 m->config().max_position_embeddings));
    ASSIGN_OR_RETURN(torch::Tensor mask, FloatMatrix(e.response_mask(), "experience.response_mask", ids));
    ASSIGN_OR_RETURN(torch::Tensor old_lp, FloatMatrix(e.old_log_probs(), "experience.old_log_probs", ids));
    ASSIGN_OR_RETURN(torch::Tensor adv, FloatMatrix(e.advantages(), "experience.advantages", ids));
    torch::Tensor ref_lp;
    if (e.has_ref_log_probs()) {
      ASSIGN_OR_RETURN(ref_lp, FloatMatrix(e.ref_log_probs(), "experience.ref_log_probs", ids));
    }
    torch::Tensor returns, old_values;
    if (e.has_returns() || e.has_values()) {
      if (!settings_.critic) {
        return absl::InvalidArgumentError("experience.returns: this run has no critic (critic.enabled is false)");
      }
      RETURN_IF_ERROR(EnsureCriticLocked());
      ASSIGN_OR_RETURN(returns, FloatMatrix(e.returns(), "experience.returns", ids));
      ASSIGN_OR_RETURN(old_values, FloatMatrix(e.values(), "experience.values", ids));
    } else if (request.critic_only()) {
      return absl::InvalidArgumentError("experience.returns: critic_only needs returns and values");
    }
    try {
      // Token and row counts of the whole local shard and of each mini-batch slice, summed
      // over the group: every rank's loss uses the global normalisers.
      const int64_t B = ids.size(0);
      const int mb = settings_.mini_batches;
      std::vector<double> counts = {mask.sum().item<double>(), static_cast<double>(B)};
      for (int k = 0; k < mb; ++k) {
        const int64_t begin = B * k / mb, end = B * (k + 1) / mb;
        counts.push_back(end > begin ? mask.narrow(0, begin, end - begin).sum().item<double>() : 0.0);
        counts.push_back(static_cast<double>(end - begin));
      }
      ASSIGN_OR_RETURN(std::vector<double> global,
                       AgreeAndSumLocked(request.critic_only() ? kCriticStep : kRlStep, request.step(), counts));
      std::vector<ShardWeights> weights;
      for (size_t i = 0; i < counts.size(); i += 2) {
        weights.push_back({Ratio(counts[i], global[i]), Ratio(counts[i + 1], global[i + 1])});
      }
      grail::v1::TrainStepResponse response;
      double allreduce_seconds = 0;
      if (returns.defined()) {
        RETURN_IF_ERROR(CriticStepLocked(ids, mask, returns, old_values, weights[0], &allreduce_seconds, &response));
      }
      if (request.critic_only()) {
        response.set_weights_version(version_);
        (*response.mutable_metrics())["allreduce_seconds"] = allreduce_seconds;
        return response;
      }
      std::vector<std::pair<ShardWeights, double>> slices;  // per mini-batch: weights, global rows
      for (int k = 0; k < mb; ++k) slices.push_back({weights[k + 1], global[2 * k + 3]});
      // Truncated importance sampling: the samples may come from older policies (async
      // rollouts). The ratio is clipped against the current policy's log-probs, and each
      // token's advantage is weighted by min(p_current / p_behaviour, tis_cap).
      // With one mini-batch the first forward pass of the step is taken before any update,
      // so it provides the current log-probs; otherwise they take a separate pass.
      TisStats tis;
      const bool tis_in_first_pass = settings_.tis_cap > 0 && mb == 1;
      if (settings_.tis_cap > 0 && !tis_in_first_pass) {
        torch::NoGradGuard no_grad;
        tis = ApplyTis(AlignedLogProbs(m, ids, nullptr, settings_.temperature), mask, weights[0], &old_lp, &adv);
      }
      ASSIGN_OR_RETURN(auto policy, RlStepLocked(m, ids, mask, old_lp, adv, ref_lp, slices, &allreduce_seconds,
                                                 tis_in_first_pass ? &tis : nullptr));
      if (settings_.tis_cap > 0) {
        ASSIGN_OR_RETURN(std::vector<double> summed, SumLocked({tis.weight, tis.capped}));
        (*policy.mutable_metrics())["tis_weight_mean"] = summed[0];
        (*policy.mutable_metrics())["tis_capped_ratio"] = summed[1];
      }
      for (const auto& [k, v] : response.metrics()) (*policy.mutable_metrics())[k] = v;
      (*policy.mutable_metrics())["allreduce_seconds"] = allreduce_seconds;
      return policy;
    } catch (const c10::Error& err) {
      return absl::InternalError(absl::StrCat("train step failed: ", err.what_without_backtrace()));
    }
  }

 private:
  // Records the first collective failure: the group is unusable from then on.
  absl::Status GroupCall(absl::Status status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (status.ok() || !broken_.ok()) return status;
    broken_ = status;
    if (options_.on_group_failure) options_.on_group_failure(status);
    return status;
  }

  // Sums `values` over the ranks.
  absl::StatusOr<std::vector<double>> SumLocked(const std::vector<double>& values)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (group_->world_size() == 1 || values.empty()) return values;
    auto t = torch::tensor(values, torch::kFloat64);
    RETURN_IF_ERROR(GroupCall(group_->AllReduceSum({t}, "metric sum")));
    return std::vector<double>(t.data_ptr<double>(), t.data_ptr<double>() + t.numel());
  }

  // The step header: checks that every rank is taking the same kind of step, with the same
  // step number, from the same weights version, and returns `counts` summed over ranks. The
  // check sums x and x*x of each field: both sums equal world_size times those of one rank
  // only if every rank has the same x.
  absl::StatusOr<std::vector<double>> AgreeAndSumLocked(StepKind kind, int64_t step, std::vector<double> counts)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const std::vector<double> fields = {static_cast<double>(kind), static_cast<double>(step),
                                        static_cast<double>(version_)};
    const size_t n = counts.size();
    for (double f : fields) {
      counts.push_back(f);
      counts.push_back(f * f);
    }
    ASSIGN_OR_RETURN(std::vector<double> sum, SumLocked(counts));
    const double w = group_->world_size();
    for (size_t i = 0; i < fields.size(); ++i) {
      if (sum[n + 2 * i] != w * fields[i] || sum[n + 2 * i + 1] != w * fields[i] * fields[i]) {
        static const char* const kNames[] = {"step kind", "step number", "weights version"};
        return GroupCall(absl::FailedPreconditionError(absl::StrCat(
            "learner group: ranks disagree on the ", kNames[i], " (rank ", group_->rank(), " has ", fields[i],
            "): every rank must get the same sequence of calls")));
      }
    }
    sum.resize(n);
    return sum;
  }

  // Builds the critic on first use: the policy's decoder plus a scalar value head, with the
  // decoder copied from the current policy (critic.init: policy) or freshly initialised.
  absl::Status EnsureCriticLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    if (!settings_.critic) return absl::FailedPreconditionError("no critic: critic.enabled is false for this run");
    if (critic_ != nullptr) return absl::OkStatus();
    try {
      model::ModelConfig critic_config = (*model_)->config();
      critic_config.value_head = true;
      auto critic = std::make_shared<model::CausalLm>(critic_config);
      (*critic)->InitWeights(settings_.critic_seed);
      if (settings_.critic_from_policy) {
        torch::NoGradGuard no_grad;
        auto source = (*model_)->named_parameters();
        for (auto& item : (*critic)->named_parameters()) {
          if (const torch::Tensor* from = source.find(item.key()); from != nullptr) item.value().copy_(*from);
        }
      }
      critic_ = std::move(critic);
      critic_optimizer_ = std::make_unique<torch::optim::AdamW>(
          (*critic_)->parameters(), torch::optim::AdamWOptions(settings_.critic_learning_rate).weight_decay(0.0));
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("critic init failed: ", e.what_without_backtrace()));
    }
    return absl::OkStatus();
  }

  absl::Status CriticStepLocked(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& returns,
                                const torch::Tensor& old_values, const ShardWeights& shard,
                                double* allreduce_seconds, grail::v1::TrainStepResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto& c = *critic_;
    c->train();
    critic_optimizer_->zero_grad();
    auto vpreds = AlignedValues(c, ids);
    ValueLossResult vl = ValueLoss(vpreds, returns, old_values, mask, settings_.cliprange_value, settings_.loss_agg);
    auto value_loss = vl.loss * shard.For(settings_.loss_agg);
    value_loss.backward();
    RETURN_IF_ERROR(GroupCall(
        AllReduceGradients(*group_, c->parameters(), options_.bucket_bytes, allreduce_seconds)));
    torch::nn::utils::clip_grad_norm_(c->parameters(), settings_.grad_clip);
    critic_optimizer_->step();
    torch::NoGradGuard no_grad;
    auto residual = returns - vpreds.detach();
    auto var = [&](const torch::Tensor& x) {
      auto mean = MaskedMean(x, mask);
      return MaskedMean((x - mean).square(), mask);
    };
    // Explained variance: the token-weighted mean of the ranks' own (exact with one rank).
    const double var_returns = var(returns).item<double>();
    const double explained = var_returns > 0 ? 1.0 - var(residual).item<double>() / var_returns : 0.0;
    ASSIGN_OR_RETURN(std::vector<double> summed,
                     SumLocked({value_loss.item<double>(), vl.clipfrac * shard.tokens, explained * shard.tokens}));
    auto& metrics = *response->mutable_metrics();
    metrics["value_loss"] = summed[0];
    metrics["vf_clipfrac"] = summed[1];
    metrics["explained_variance"] = summed[2];
    return absl::OkStatus();
  }

  // Returns the checkpoint's run_state.
  absl::StatusOr<std::string> RestoreTrainingStateLocked(const std::string& dir) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ASSIGN_OR_RETURN(std::string manifest_text, model::ReadFileToString(dir + "/manifest.json"));
    nlohmann::json manifest = nlohmann::json::parse(manifest_text, nullptr, /*allow_exceptions=*/false);
    if (!manifest.is_object() || manifest.value("format", "") != "grail-checkpoint-v1" ||
        !manifest.contains("files") || !manifest["files"].is_object()) {
      return absl::InvalidArgumentError(absl::StrCat("model.path: ", dir, "/manifest.json is not a grail checkpoint manifest"));
    }
    ASSIGN_OR_RETURN(std::string blob, model::ReadFileToString(dir + "/optimizer.safetensors"));
    if (Sha256Hex(blob) != manifest["files"].value("optimizer.safetensors", "")) {
      return absl::DataLossError(absl::StrCat("model.path: ", dir, "/optimizer.safetensors does not match its digest"));
    }
    ASSIGN_OR_RETURN(model::SafetensorsFile file, model::SafetensorsFile::Parse(std::move(blob)));
    const auto& tensors = file.tensors();
    auto load = [&](const std::string& name, const torch::Tensor& like) -> absl::StatusOr<torch::Tensor> {
      auto it = tensors.find(name);
      if (it == tensors.end()) return absl::DataLossError(absl::StrCat("optimizer.safetensors: missing ", name));
      const auto& t = it->second;
      if (t.dtype != model::SafetensorsDType(like.scalar_type()) || t.shape != like.sizes().vec()) {
        return absl::DataLossError(absl::StrCat("optimizer.safetensors: ", name, " has the wrong dtype or shape"));
      }
      return torch::from_blob(const_cast<char*>(t.data.data()), like.sizes(), like.options()).clone();
    };
    auto& state = rl_optimizer_->state();
    for (const auto& item : (*model_)->named_parameters()) {
      const std::string key = item.key();
      if (tensors.find("exp_avg/" + key) == tensors.end()) continue;  // no state yet when saved
      ASSIGN_OR_RETURN(torch::Tensor exp_avg, load("exp_avg/" + key, item.value()));
      ASSIGN_OR_RETURN(torch::Tensor exp_avg_sq, load("exp_avg_sq/" + key, item.value()));
      ASSIGN_OR_RETURN(torch::Tensor step, load("step/" + key, torch::zeros({1}, torch::kInt64)));
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(step.item<int64_t>());
      s->exp_avg(exp_avg);
      s->exp_avg_sq(exp_avg_sq);
      state[c10::guts::to_string(item.value().unsafeGetTensorImpl())] = std::move(s);
    }
    rl_steps_ = manifest.value("rl_steps", int64_t{0});
    version_ = std::max<int64_t>(version_, manifest.value("weights_version", int64_t{0}));
    return manifest.value("run_state", std::string());
  }

  // AdamW moments of the RL optimizer, "exp_avg/<param>" and "exp_avg_sq/<param>", plus a
  // "step/<param>" scalar; parameters without state yet are skipped.
  absl::StatusOr<std::string> OptimizerToSafetensors() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::map<std::string, model::SafetensorsTensor> tensors;
    std::vector<torch::Tensor> keep;
    auto& state = rl_optimizer_->state();
    auto add = [&](const std::string& name, torch::Tensor t) {
      keep.push_back(t.detach().to(torch::kCPU).contiguous());
      const auto& k = keep.back();
      tensors[name] = {model::SafetensorsDType(k.scalar_type()), k.sizes().vec(),
                       absl::string_view(static_cast<const char*>(k.data_ptr()), k.nbytes())};
    };
    for (const auto& item : (*model_)->named_parameters()) {
      // LibTorch 1.13 keys optimizer state by the parameter's TensorImpl address as text.
      auto it = state.find(c10::guts::to_string(item.value().unsafeGetTensorImpl()));
      if (it == state.end()) continue;
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      add("exp_avg/" + item.key(), s.exp_avg());
      add("exp_avg_sq/" + item.key(), s.exp_avg_sq());
      add("step/" + item.key(), torch::full({1}, static_cast<int64_t>(s.step()), torch::kInt64));
    }
    return model::SerializeSafetensors(tensors);
  }

  struct TisStats {
    double weight = 0;  // token-weighted share of this rank's mean IS weight
    double capped = 0;  // ... and of the fraction of capped tokens
  };

  // Truncated importance sampling: `current` are the current policy's log-probs. Weights each
  // token's advantage by min(exp(current - behaviour), tis_cap) and makes `current` the
  // ratio's reference.
  TisStats ApplyTis(const torch::Tensor& current, const torch::Tensor& mask, const ShardWeights& shard,
                    torch::Tensor* old_lp, torch::Tensor* adv) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    torch::NoGradGuard no_grad;
    auto ratio = (current - *old_lp).clamp(-20.0, 20.0).exp();
    auto w = ratio.clamp_max(settings_.tis_cap) * mask;
    *adv = *adv * w;
    *old_lp = current.detach();
    TisStats t;
    t.weight = shard.tokens * MaskedMean(w, mask).item<double>();
    t.capped = shard.tokens * MaskedMean((ratio > settings_.tis_cap).to(mask.scalar_type()), mask).item<double>();
    return t;
  }

  // slices[k]: the weights of this rank's k-th mini-batch slice, and the slice's row count
  // over the whole group (0 = the mini-batch is empty everywhere and is skipped). With
  // `tis` (one mini-batch only), truncated importance sampling uses the first forward pass.
  absl::StatusOr<grail::v1::TrainStepResponse> RlStepLocked(
      model::CausalLm& m, const torch::Tensor& ids, const torch::Tensor& mask, torch::Tensor old_lp,
      torch::Tensor adv, const torch::Tensor& ref_lp,
      const std::vector<std::pair<ShardWeights, double>>& slices, double* allreduce_seconds, TisStats* tis)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++rl_steps_;
    const double warm = settings_.warmup_steps > 0
                            ? std::min(1.0, static_cast<double>(rl_steps_) / settings_.warmup_steps)
                            : 1.0;
    double decay = 1.0;
    if (settings_.cosine && settings_.total_steps > settings_.warmup_steps && rl_steps_ > settings_.warmup_steps) {
      const double progress = std::min(1.0, static_cast<double>(rl_steps_ - settings_.warmup_steps) /
                                                (settings_.total_steps - settings_.warmup_steps));
      decay = settings_.min_lr_ratio + (1 - settings_.min_lr_ratio) * 0.5 * (1 + std::cos(M_PI * progress));
    }
    const double lr = settings_.learning_rate * warm * decay;
    for (auto& group : rl_optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    m->train();
    const int64_t B = ids.size(0);
    const int64_t mb = static_cast<int64_t>(slices.size());
    // Sequence-level objectives average over rows whatever the aggregation mode.
    const bool row_objective =
        settings_.policy_loss == PolicyLossKind::kGspo || settings_.policy_loss == PolicyLossKind::kGmpo;
    // Weighted sums over this rank's slices; summed over ranks at the end.
    double loss_sum = 0, clip_sum = 0, clip_low_sum = 0, kl_sum = 0, ent_sum = 0, ref_kl_sum = 0;
    double grad_sum = 0;  // the same on every rank (norm of the summed gradient)
    int updates = 0;
    for (int epoch = 0; epoch < settings_.ppo_epochs; ++epoch) {
      for (int64_t k = 0; k < mb; ++k) {
        const auto& [shard, global_rows] = slices[k];
        if (global_rows == 0) continue;
        const int64_t begin = B * k / mb, end = B * (k + 1) / mb;
        rl_optimizer_->zero_grad();
        if (end > begin) {
          auto sl = [&](const torch::Tensor& t) { return t.narrow(0, begin, end - begin); };
          const double w_agg = shard.For(settings_.loss_agg);
          const double w_pg = row_objective ? shard.rows : w_agg;
          torch::Tensor entropy;
          auto lp = AlignedLogProbs(m, sl(ids), &entropy, settings_.temperature);
          if (tis != nullptr && epoch == 0) *tis = ApplyTis(lp.detach(), mask, shard, &old_lp, &adv);
          PolicyLossResult pg = PolicyLoss(settings_.policy_loss, sl(old_lp), lp, sl(adv), sl(mask),
                                           settings_.loss_agg, settings_.clip);
          auto loss = pg.loss * w_pg;
          if (settings_.entropy_coef > 0) {
            loss = loss - settings_.entropy_coef * w_agg * AggregateLoss(entropy, sl(mask), settings_.loss_agg);
          }
          if (ref_lp.defined()) {
            auto kl = AggregateLoss(KlPenalty(lp, sl(ref_lp), settings_.kl), sl(mask), settings_.loss_agg);
            if (settings_.kl_coef > 0) loss = loss + settings_.kl_coef * w_agg * kl;
            ref_kl_sum += w_agg * kl.item<double>();
          }
          loss.backward();
          loss_sum += loss.item<double>();
          clip_sum += shard.tokens * pg.clipfrac;
          clip_low_sum += shard.tokens * pg.clipfrac_lower;
          kl_sum += shard.tokens * pg.ppo_kl;
          ent_sum += shard.tokens * MaskedMean(entropy.detach(), sl(mask)).item<double>();
        }
        RETURN_IF_ERROR(GroupCall(
            AllReduceGradients(*group_, m->parameters(), options_.bucket_bytes, allreduce_seconds)));
        grad_sum += torch::nn::utils::clip_grad_norm_(m->parameters(), settings_.grad_clip);
        rl_optimizer_->step();
        ++updates;
      }
    }
    ++version_;
    ASSIGN_OR_RETURN(std::vector<double> sums,
                     SumLocked({loss_sum, clip_sum, clip_low_sum, kl_sum, ent_sum, ref_kl_sum}));
    grail::v1::TrainStepResponse response;
    response.set_weights_version(version_);
    auto& metrics = *response.mutable_metrics();
    const double n = std::max(1, updates);
    metrics["loss"] = sums[0] / n;
    metrics["pg_clipfrac"] = sums[1] / n;
    metrics["pg_clipfrac_lower"] = sums[2] / n;
    metrics["ppo_kl"] = sums[3] / n;
    metrics["entropy"] = sums[4] / n;
    metrics["grad_norm"] = grad_sum / n;
    metrics["learning_rate"] = lr;
    if (ref_lp.defined()) metrics["kl"] = sums[5] / n;
    return response;
  }

  TrainerOptions options_;
  std::shared_ptr<Collective> group_;
  absl::Mutex mu_;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<model::CausalLm> model_ ABSL_GUARDED_BY(mu_);
  TrainSettings settings_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<torch::optim::AdamW> sft_optimizer_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<torch::optim::AdamW> rl_optimizer_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<model::CausalLm> critic_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<torch::optim::AdamW> critic_optimizer_ ABSL_GUARDED_BY(mu_);
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
