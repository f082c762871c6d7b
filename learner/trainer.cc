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
  return s;
}

// Per-token log-probs aligned with input_ids: column t is log p(ids[:, t] | ids[:, :t]);
// column 0 is 0. Right padding needs no attention mask under causal attention.
torch::Tensor AlignedLogProbs(model::CausalLm& model, const torch::Tensor& ids,
                              torch::Tensor* entropy = nullptr) {
  const int64_t B = ids.size(0), T = ids.size(1);
  auto valid = torch::ones({B, T}, torch::kBool);
  auto positions = torch::arange(T, torch::kInt64).unsqueeze(0).expand({B, T});
  auto logits = model->Logits(model->Hidden(ids, positions, valid)).narrow(1, 0, T - 1);
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

class TorchTrainer : public Trainer {
 public:
  explicit TorchTrainer(const TrainerOptions& options) : options_(options) {}

  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::RunSpec& spec) override {
    std::shared_ptr<model::CausalLm> built;
    if (!spec.model().path().empty()) {
      ASSIGN_OR_RETURN(std::string dir,
                       ResolveUnderRoot(options_.data_root, spec.model().path(), "model.path"));
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
    ++version_;
    response.set_weights_version(version_);
    return response;
  }

  absl::StatusOr<Weights> GetWeights() override {
    absl::MutexLock lock(&mu_);
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    Weights w;
    ASSIGN_OR_RETURN(w.blob, model::ModelToSafetensors(*model_));
    w.version = version_;
    return w;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(
      const grail::v1::SupervisedStepRequest& request) override {
    absl::MutexLock lock(&mu_);
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    auto& m = *model_;
    ASSIGN_OR_RETURN(torch::Tensor ids, TokenIds(request.input_ids(), "input_ids", m->config().vocab_size,
                                                 m->config().max_position_embeddings));
    ASSIGN_OR_RETURN(torch::Tensor mask, FloatMatrix(request.loss_mask(), "loss_mask", ids));
    try {
      m->train();
      sft_optimizer_->zero_grad();
      auto lp = AlignedLogProbs(m, ids);
      auto loss = -MaskedMean(lp, mask);
      loss.backward();
      const double grad_norm = torch::nn::utils::clip_grad_norm_(m->parameters(), settings_.grad_clip);
      sft_optimizer_->step();
      ++version_;
      grail::v1::TrainStepResponse response;
      response.set_weights_version(version_);
      auto& metrics = *response.mutable_metrics();
      metrics["sft_loss"] = loss.item<double>();
      metrics["grad_norm"] = grad_norm;
      return response;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("supervised step failed: ", e.what_without_backtrace()));
    }
  }

  absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir) override {
    absl::MutexLock lock(&mu_);
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
      grail::v1::TrainStepResponse response;
      if (returns.defined()) CriticStepLocked(ids, mask, returns, old_values, &response);
      if (request.critic_only()) {
        response.set_weights_version(version_);
        return response;
      }
      auto policy = RlStepLocked(m, ids, mask, old_lp, adv, ref_lp);
      for (const auto& [k, v] : response.metrics()) (*policy.mutable_metrics())[k] = v;
      return policy;
    } catch (const c10::Error& err) {
      return absl::InternalError(absl::StrCat("train step failed: ", err.what_without_backtrace()));
    }
  }

 private:
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

  void CriticStepLocked(const torch::Tensor& ids, const torch::Tensor& mask, const torch::Tensor& returns,
                        const torch::Tensor& old_values, grail::v1::TrainStepResponse* response)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto& c = *critic_;
    c->train();
    critic_optimizer_->zero_grad();
    auto vpreds = AlignedValues(c, ids);
    ValueLossResult vl = ValueLoss(vpreds, returns, old_values, mask, settings_.cliprange_value, settings_.loss_agg);
    vl.loss.backward();
    torch::nn::utils::clip_grad_norm_(c->parameters(), settings_.grad_clip);
    critic_optimizer_->step();
    torch::NoGradGuard no_grad;
    auto residual = returns - vpreds.detach();
    auto var = [&](const torch::Tensor& x) {
      auto mean = MaskedMean(x, mask);
      return MaskedMean((x - mean).square(), mask);
    };
    const double var_returns = var(returns).item<double>();
    auto& metrics = *response->mutable_metrics();
    metrics["value_loss"] = vl.loss.item<double>();
    metrics["vf_clipfrac"] = vl.clipfrac;
    metrics["explained_variance"] = var_returns > 0 ? 1.0 - var(residual).item<double>() / var_returns : 0.0;
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

  grail::v1::TrainStepResponse RlStepLocked(model::CausalLm& m, const torch::Tensor& ids,
                                            const torch::Tensor& mask, const torch::Tensor& old_lp,
                                            const torch::Tensor& adv, const torch::Tensor& ref_lp)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++rl_steps_;
    const double warm = settings_.warmup_steps > 0
                            ? std::min(1.0, static_cast<double>(rl_steps_) / settings_.warmup_steps)
                            : 1.0;
    const double lr = settings_.learning_rate * warm;
    for (auto& group : rl_optimizer_->param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    m->train();
    const int64_t B = ids.size(0);
    const int64_t mb = std::max<int64_t>(1, std::min<int64_t>(settings_.mini_batches, B));
    double loss_sum = 0, clip_sum = 0, clip_low_sum = 0, kl_sum = 0, ent_sum = 0, grad_sum = 0,
           ref_kl_sum = 0;
    int updates = 0;
    for (int epoch = 0; epoch < settings_.ppo_epochs; ++epoch) {
      for (int64_t k = 0; k < mb; ++k) {
        const int64_t begin = B * k / mb, end = B * (k + 1) / mb;
        if (end <= begin) continue;
        auto sl = [&](const torch::Tensor& t) { return t.narrow(0, begin, end - begin); };
        rl_optimizer_->zero_grad();
        torch::Tensor entropy;
        auto lp = AlignedLogProbs(m, sl(ids), &entropy);
        PolicyLossResult pg = PolicyLoss(settings_.policy_loss, sl(old_lp), lp, sl(adv), sl(mask),
                                         settings_.loss_agg, settings_.clip);
        auto loss = pg.loss;
        if (settings_.entropy_coef > 0) {
          loss = loss - settings_.entropy_coef * AggregateLoss(entropy, sl(mask), settings_.loss_agg);
        }
        if (ref_lp.defined()) {
          auto kl = AggregateLoss(KlPenalty(lp, sl(ref_lp), settings_.kl), sl(mask), settings_.loss_agg);
          if (settings_.kl_coef > 0) loss = loss + settings_.kl_coef * kl;
          ref_kl_sum += kl.item<double>();
        }
        loss.backward();
        grad_sum += torch::nn::utils::clip_grad_norm_(m->parameters(), settings_.grad_clip);
        rl_optimizer_->step();
        loss_sum += loss.item<double>();
        clip_sum += pg.clipfrac;
        clip_low_sum += pg.clipfrac_lower;
        kl_sum += pg.ppo_kl;
        ent_sum += MaskedMean(entropy.detach(), sl(mask)).item<double>();
        ++updates;
      }
    }
    ++version_;
    grail::v1::TrainStepResponse response;
    response.set_weights_version(version_);
    auto& metrics = *response.mutable_metrics();
    const double n = std::max(1, updates);
    metrics["loss"] = loss_sum / n;
    metrics["pg_clipfrac"] = clip_sum / n;
    metrics["pg_clipfrac_lower"] = clip_low_sum / n;
    metrics["ppo_kl"] = kl_sum / n;
    metrics["entropy"] = ent_sum / n;
    metrics["grad_norm"] = grad_sum / n;
    metrics["learning_rate"] = lr;
    if (ref_lp.defined()) metrics["kl"] = ref_kl_sum / n;
    return response;
  }

  TrainerOptions options_;
  absl::Mutex mu_;
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
