// grail-algo: runs the project's RL math on conformance cases (shared/conformance/FORMAT.md)
// with the same library functions the coordinator and learner call.
//
// Estimators come from algo/advantages, overlong_penalty from reward/verifiers, policy_loss,
// value_loss and kl from learner/losses, and the preference objectives (dpo, simpo, orpo,
// kto, bt_reward) from learner/preference_losses (evaluated in float64 with autograd for the
// gradients).

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/cli.h"
#include "common/status_macros.h"
#include "algo/advantages.h"
#include "algo/objectives.h"
#include "learner/losses.h"
#include "learner/preference_losses.h"
#include "reward/verifiers.h"

namespace {

using grail::algo::Matrix;
using nlohmann::json;

constexpr char kUsage[] =
    "grail-algo: evaluate the project's RL math on conformance cases.\n"
    "Usage: grail-algo eval CASES.jsonl\n"
    "Prints one JSON line per case: {\"id\": ..., \"outputs\": {...}} or {\"id\": ..., \"error\": ...};\n"
    "exits non-zero if any case could not be computed.";

absl::StatusOr<const json*> Field(const json& obj, const char* name) {
  if (!obj.is_object() || !obj.contains(name)) {
    return absl::InvalidArgumentError(absl::StrCat("missing '", name, "'"));
  }
  return &obj[name];
}

absl::StatusOr<Matrix> ToMatrix(const json& obj, const char* name) {
  ASSIGN_OR_RETURN(const json* j, Field(obj, name));
  if (!j->is_array() || j->empty() || !(*j)[0].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a matrix"));
  }
  Matrix m(static_cast<int64_t>(j->size()), static_cast<int64_t>((*j)[0].size()));
  for (int64_t r = 0; r < m.rows; ++r) {
    const json& row = (*j)[r];
    if (!row.is_array() || static_cast<int64_t>(row.size()) != m.cols) {
      return absl::InvalidArgumentError(absl::StrCat("'", name, "' row ", r, " has the wrong length"));
    }
    for (int64_t c = 0; c < m.cols; ++c) {
      if (!row[c].is_number()) return absl::InvalidArgumentError(absl::StrCat("'", name, "' has a non-number"));
      m.at(r, c) = row[c].get<double>();
    }
  }
  return m;
}

template <typename T>
absl::StatusOr<std::vector<T>> ToVector(const json& obj, const char* name) {
  ASSIGN_OR_RETURN(const json* j, Field(obj, name));
  if (!j->is_array()) return absl::InvalidArgumentError(absl::StrCat("'", name, "' is not a list"));
  std::vector<T> out;
  for (const auto& e : *j) {
    if (!e.is_number()) return absl::InvalidArgumentError(absl::StrCat("'", name, "' has a non-number"));
    out.push_back(e.get<T>());
  }
  return out;
}

absl::StatusOr<double> Param(const json& params, const char* name) {
  ASSIGN_OR_RETURN(const json* j, Field(params, name));
  if (!j->is_number()) return absl::InvalidArgumentError(absl::StrCat("param '", name, "' is not a number"));
  return j->get<double>();
}

json FromMatrix(const Matrix& m) {
  json out = json::array();
  for (int64_t r = 0; r < m.rows; ++r) {
    json row = json::array();
    for (int64_t c = 0; c < m.cols; ++c) row.push_back(m.at(r, c));
    out.push_back(row);
  }
  return out;
}

torch::Tensor ToTensor(const Matrix& m, bool requires_grad = false) {
  auto t = torch::tensor(m.data, torch::kFloat64).view({m.rows, m.cols}).clone();
  return t.set_requires_grad(requires_grad);
}

json FromTensor(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat64).contiguous();
  json out = json::array();
  for (int64_t r = 0; r < c.size(0); ++r) {
    json row = json::array();
    for (int64_t k = 0; k < c.size(1); ++k) row.push_back(c[r][k].item<double>());
    out.push_back(row);
  }
  return out;
}

absl::StatusOr<torch::Tensor> VectorTensor(const json& in, const char* name, bool requires_grad = false) {
  ASSIGN_OR_RETURN(std::vector<double> v, ToVector<double>(in, name));
  return torch::tensor(v, torch::kFloat64).clone().set_requires_grad(requires_grad);
}

json FromVector(const torch::Tensor& t) {
  auto c = t.detach().to(torch::kFloat64).contiguous();
  json out = json::array();
  for (int64_t i = 0; i < c.size(0); ++i) out.push_back(c[i].item<double>());
  return out;
}

// The preference objectives (learner/preference_losses), float64 with autograd.
absl::StatusOr<json> EvaluatePreferenceFn(const std::string& fn, const json& params, const json& in) {
  namespace learner = grail::learner;
  json out;
  if (fn == "kto") {
    ASSIGN_OR_RETURN(torch::Tensor policy, VectorTensor(in, "policy_logps", true));
    ASSIGN_OR_RETURN(torch::Tensor ref, VectorTensor(in, "ref_logps"));
    ASSIGN_OR_RETURN(torch::Tensor label, VectorTensor(in, "label"));
    ASSIGN_OR_RETURN(torch::Tensor kl_policy, VectorTensor(in, "kl_policy_logps"));
    ASSIGN_OR_RETURN(torch::Tensor kl_ref, VectorTensor(in, "kl_ref_logps"));
    ASSIGN_OR_RETURN(double beta, Param(params, "beta"));
    ASSIGN_OR_RETURN(double wd, Param(params, "desirable_weight"));
    ASSIGN_OR_RETURN(double wu, Param(params, "undesirable_weight"));
    auto r = learner::KtoLoss(beta, wd, wu, policy, ref, label, kl_policy, kl_ref);
    r.loss.backward();
    out["loss"] = r.loss.item<double>();
    out["grad_policy_logps"] = FromVector(policy.grad());
    out["kl"] = r.kl;
    return out;
  }
  if (fn == "bt_reward") {
    ASSIGN_OR_RETURN(torch::Tensor chosen, VectorTensor(in, "chosen_scores", true));
    ASSIGN_OR_RETURN(torch::Tensor rejected, VectorTensor(in, "rejected_scores", true));
    torch::Tensor margin;
    if (params.value("margin_from_input", false)) {
      ASSIGN_OR_RETURN(margin, VectorTensor(in, "margin"));
    }
    ASSIGN_OR_RETURN(double center, Param(params, "center_coef"));
    auto r = learner::BtRewardLoss(chosen, rejected, margin, center);
    r.loss.backward();
    out["loss"] = r.loss.item<double>();
    out["grad_chosen_scores"] = FromVector(chosen.grad());
    out["grad_rejected_scores"] = FromVector(rejected.grad());
    out["accuracy"] = r.accuracy;
    return out;
  }
  learner::PairLogps pair;
  ASSIGN_OR_RETURN(pair.policy_chosen, VectorTensor(in, "policy_chosen_logps", true));
  ASSIGN_OR_RETURN(pair.policy_rejected, VectorTensor(in, "policy_rejected_logps", true));
  ASSIGN_OR_RETURN(pair.chosen_lengths, VectorTensor(in, "chosen_lengths"));
  ASSIGN_OR_RETURN(pair.rejected_lengths, VectorTensor(in, "rejected_lengths"));
  auto grads = [&](const torch::Tensor& loss) {
    loss.backward();
    out["loss"] = loss.item<double>();
    out["grad_policy_chosen_logps"] = FromVector(pair.policy_chosen.grad());
    out["grad_policy_rejected_logps"] = FromVector(pair.policy_rejected.grad());
  };
  if (fn == "orpo") {
    ASSIGN_OR_RETURN(double lambda, Param(params, "lambda"));
    auto r = learner::OrpoLoss(lambda, pair);
    grads(r.loss);
    out["log_odds_ratio"] = r.log_odds_ratio;
    out["nll"] = r.nll;
    return out;
  }
  ASSIGN_OR_RETURN(double beta, Param(params, "beta"));
  learner::PreferenceLossResult r;
  if (fn == "simpo") {
    ASSIGN_OR_RETURN(double gamma, Param(params, "gamma"));
    r = learner::SimpoLoss(beta, gamma, pair);
  } else {
    ASSIGN_OR_RETURN(pair.ref_chosen, VectorTensor(in, "ref_chosen_logps"));
    ASSIGN_OR_RETURN(pair.ref_rejected, VectorTensor(in, "ref_rejected_logps"));
    ASSIGN_OR_RETURN(learner::DpoLossType type, learner::ParseDpoLossType(params.value("loss_type", "")));
    ASSIGN_OR_RETURN(double smoothing, Param(params, "label_smoothing"));
    r = learner::DpoLoss(type, beta, smoothing, pair);
  }
  grads(r.loss);
  out["chosen_rewards"] = FromVector(r.chosen_rewards);
  out["rejected_rewards"] = FromVector(r.rejected_rewards);
  out["reward_accuracy"] = r.reward_accuracy;
  return out;
}

absl::StatusOr<json> EvaluateLearnerFn(const std::string& fn, const json& params, const json& in) {
  namespace learner = grail::learner;
  json out;
  if (fn == "policy_loss") {
    ASSIGN_OR_RETURN(Matrix old_lp, ToMatrix(in, "old_log_prob"));
    ASSIGN_OR_RETURN(Matrix lp_m, ToMatrix(in, "log_prob"));
    ASSIGN_OR_RETURN(Matrix adv, ToMatrix(in, "advantages"));
    ASSIGN_OR_RETURN(Matrix mask, ToMatrix(in, "response_mask"));
    ASSIGN_OR_RETURN(learner::PolicyLossKind kind, learner::ParsePolicyLoss(params.value("loss", "")));
    ASSIGN_OR_RETURN(learner::LossAgg agg, learner::ParseLossAgg(params.value("loss_agg_mode", "")));
    learner::ClipOptions clip;
    ASSIGN_OR_RETURN(clip.clip_ratio_low, Param(params, "clip_ratio_low"));
    ASSIGN_OR_RETURN(clip.clip_ratio_high, Param(params, "clip_ratio_high"));
    ASSIGN_OR_RETURN(clip.clip_ratio_c, Param(params, "clip_ratio_c"));
    auto lp = ToTensor(lp_m, true);
    auto r = learner::PolicyLoss(kind, ToTensor(old_lp), lp, ToTensor(adv), ToTensor(mask), agg, clip);
    r.loss.backward();
    out["loss"] = r.loss.item<double>();
    out["grad_log_prob"] = FromTensor(lp.grad());
    out["pg_clipfrac"] = r.clipfrac;
    out["ppo_kl"] = r.ppo_kl;
    if (kind == learner::PolicyLossKind::kPpo) out["pg_clipfrac_lower"] = r.clipfrac_lower;
  } else if (fn == "value_loss") {
    ASSIGN_OR_RETURN(Matrix vpreds_m, ToMatrix(in, "vpreds"));
    ASSIGN_OR_RETURN(Matrix returns, ToMatrix(in, "returns"));
    ASSIGN_OR_RETURN(Matrix values, ToMatrix(in, "values"));
    ASSIGN_OR_RETURN(Matrix mask, ToMatrix(in, "response_mask"));
    ASSIGN_OR_RETURN(double cliprange, Param(params, "cliprange_value"));
    ASSIGN_OR_RETURN(learner::LossAgg agg, learner::ParseLossAgg(params.value("loss_agg_mode", "")));
    auto vpreds = ToTensor(vpreds_m, true);
    auto r = learner::ValueLoss(vpreds, ToTensor(returns), ToTensor(values), ToTensor(mask), cliprange, agg);
    r.loss.backward();
    out["loss"] = r.loss.item<double>();
    out["vf_clipfrac"] = r.clipfrac;
    out["grad_vpreds"] = FromTensor(vpreds.grad());
  } else {
    ASSIGN_OR_RETURN(Matrix lp_m, ToMatrix(in, "log_prob"));
    ASSIGN_OR_RETURN(Matrix ref, ToMatrix(in, "ref_log_prob"));
    ASSIGN_OR_RETURN(learner::KlSpec spec, learner::ParseKl(params.value("estimator", "")));
    auto lp = ToTensor(lp_m, true);
    auto kl = learner::KlPenalty(lp, ToTensor(ref), spec);
    kl.sum().backward();
    out["kl"] = FromTensor(kl);
    out["grad_log_prob"] = FromTensor(lp.grad());
  }
  return out;
}

json FromFlags(const std::vector<bool>& v) {
  json out = json::array();
  for (bool b : v) out.push_back(b ? 1.0 : 0.0);
  return out;
}

// The registered estimator a conformance case's "fn" names: grpo with norm_by_std false is
// Dr. GRPO. Null for functions that are not estimators.
const grail::algo::Estimator* EstimatorForCase(const std::string& fn, const json& params) {
  if (fn == "grpo" && !params.value("norm_by_std", true)) return grail::algo::FindEstimator("dr_grpo");
  return grail::algo::FindEstimator(fn);
}

absl::StatusOr<json> Evaluate(const json& c) {
  ASSIGN_OR_RETURN(const json* fn_json, Field(c, "fn"));
  if (!fn_json->is_string()) return absl::InvalidArgumentError("'fn' is not a string");
  const std::string fn = fn_json->get<std::string>();
  const json params = c.value("params", json::object());
  ASSIGN_OR_RETURN(const json* inputs_ptr, Field(c, "inputs"));
  const json& in = *inputs_ptr;
  json out;
  if (const grail::algo::Estimator* estimator = EstimatorForCase(fn, params); estimator != nullptr) {
    // Advantage estimators come from the registry the coordinator's loop uses.
    grail::algo::EstimatorInputs e;
    if (estimator->id == grail::v1::ADVANTAGE_ESTIMATOR_GFPO) {
      ASSIGN_OR_RETURN(e.scores, ToVector<double>(in, "scores"));
      ASSIGN_OR_RETURN(e.lengths, ToVector<double>(in, "response_length"));
      ASSIGN_OR_RETURN(double k, Param(params, "k"));
      e.gfpo_k = static_cast<int>(k);
      const std::string metric = params.value("metric", "");
      if (metric != "length" && metric != "token_efficiency") {
        return absl::InvalidArgumentError(absl::StrCat("gfpo metric '", metric, "' is not supported"));
      }
      e.gfpo_metric = metric == "length" ? grail::algo::GfpoMetric::kLength : grail::algo::GfpoMetric::kTokenEfficiency;
      e.mask = Matrix(static_cast<int64_t>(e.scores.size()), 1, 1.0);
      e.rewards = Matrix(static_cast<int64_t>(e.scores.size()), 1);
    } else {
      ASSIGN_OR_RETURN(e.rewards, ToMatrix(in, "token_level_rewards"));
      ASSIGN_OR_RETURN(e.mask, ToMatrix(in, "response_mask"));
    }
    if (in.contains("index")) {
      ASSIGN_OR_RETURN(e.index, ToVector<int64_t>(in, "index"));
    }
    if (params.contains("epsilon")) {
      ASSIGN_OR_RETURN(e.epsilon, Param(params, "epsilon"));
    }
    if (params.contains("gamma")) {
      ASSIGN_OR_RETURN(e.gamma, Param(params, "gamma"));
    }
    Matrix values;
    if (estimator->needs_critic) {
      ASSIGN_OR_RETURN(values, ToMatrix(in, "values"));
      e.values = &values;
      ASSIGN_OR_RETURN(double lam_actor, Param(params, "lam_actor"));
      ASSIGN_OR_RETURN(e.lambda_critic, Param(params, "lam_critic"));
      e.lambda_actor.assign(e.rewards.rows, lam_actor);
    }
    grail::algo::EstimatorOutput res = estimator->fn(e);
    if (estimator->id == grail::v1::ADVANTAGE_ESTIMATOR_GFPO) {
      out["advantages"] = res.row_advantages;
      out["kept"] = FromFlags(res.kept);
    } else {
      out["advantages"] = FromMatrix(res.advantages);
      if (res.returns.rows > 0) out["returns"] = FromMatrix(res.returns);
    }
  } else if (fn == "group_filter") {
    ASSIGN_OR_RETURN(std::vector<double> scores, ToVector<double>(in, "scores"));
    ASSIGN_OR_RETURN(std::vector<int64_t> index, ToVector<int64_t>(in, "index"));
    out["kept"] = FromFlags(grail::algo::GroupFilter(scores, index));
  } else if (fn == "overlong_penalty") {
    ASSIGN_OR_RETURN(std::vector<int> lengths, ToVector<int>(in, "response_length"));
    ASSIGN_OR_RETURN(double max_len, Param(params, "max_response_length"));
    ASSIGN_OR_RETURN(double buffer, Param(params, "buffer_length"));
    ASSIGN_OR_RETURN(double factor, Param(params, "penalty_factor"));
    json penalty = json::array();
    for (int len : lengths) {
      penalty.push_back(grail::reward::OverlongPenalty(len, static_cast<int>(max_len), static_cast<int>(buffer), factor));
    }
    out["penalty"] = penalty;
  } else if (fn == "policy_loss" || fn == "value_loss" || fn == "kl") {
    try {
      return EvaluateLearnerFn(fn, params, in);
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(e.what_without_backtrace());
    }
  } else if (fn == "dpo" || fn == "simpo" || fn == "orpo" || fn == "kto" || fn == "bt_reward") {
    try {
      return EvaluatePreferenceFn(fn, params, in);
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(e.what_without_backtrace());
    }
  } else {
    return absl::UnimplementedError(absl::StrCat("fn '", fn, "' is not supported"));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = grail::ParseCommandLineOrExit(argc, argv, kUsage);
  if (args.size() != 3 || args[1] != "eval") {
    std::cerr << kUsage << std::endl;
    return 2;
  }
  std::ifstream in(args[2]);
  if (!in) {
    std::cerr << "grail-algo: cannot read " << args[2] << std::endl;
    return 2;
  }
  std::string line;
  int line_no = 0, failed = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json c = json::parse(line, nullptr, /*allow_exceptions=*/false);
    json out;
    out["id"] = c.is_object() && c.contains("id") ? c["id"] : json(line_no);
    absl::StatusOr<json> result = c.is_discarded() ? absl::InvalidArgumentError("not JSON") : Evaluate(c);
    if (result.ok()) {
      out["outputs"] = *result;
    } else {
      out["error"] = absl::StrCat("line ", line_no, ": ", result.status().message());
      ++failed;
    }
    std::cout << out.dump() << "\n";
  }
  std::cout.flush();
  return failed == 0 ? 0 : 1;
}
