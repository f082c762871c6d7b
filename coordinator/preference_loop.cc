// RlLoop's preference mode (spec.preference): offline preference optimisation on pairs
// instead of RL steps, after the same warm-up, reference freeze, checkpoints and held-out
// generation evaluations as an RL run.
#include <algorithm>
#include <chrono>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "coordinator/preference_batch.h"
#include "coordinator/rl_loop.h"

namespace grail::coordinator {
namespace {

bool NeedsReference(const grail::v1::PreferenceSpec& p) {
  return p.objective() == grail::v1::PREFERENCE_OBJECTIVE_DPO || p.objective() == grail::v1::PREFERENCE_OBJECTIVE_KTO;
}

}  // namespace

absl::Status RlLoop::RunPreference(int first_step) {
  const auto& t = spec_.trainer();
  const bool kto = spec_.preference().objective() == grail::v1::PREFERENCE_OBJECTIVE_KTO;
  if (pairs_.empty()) {
    return absl::FailedPreconditionError(
        spec_.preference().sampled_pairs().prompts() > 0
            ? "preference.sampled_pairs: no prompt's samples differed in score, so there are no training pairs"
            : "preference run: no training pairs");
  }
  for (int step = first_step; step <= t.total_steps(); ++step) {
    RETURN_IF_ERROR(CheckCancelled());
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<const PreferenceRow*> pairs;
    for (int i = 0; i < t.prompts_per_step(); ++i) pairs.push_back(&pairs_[preference_cursor_.Next()]);
    const PreferenceSequences seqs = BuildPreferenceSequences(pairs, kto);
    std::vector<float> ref;
    int scored = 0;
    if (NeedsReference(spec_.preference())) {
      // The reference holds the weights the run started from (after the warm-up).
      ASSIGN_OR_RETURN(ref, ReferenceSums(seqs, &scored));
    }
    const double reference_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ASSIGN_OR_RETURN(auto resp, clients_.learner->PreferenceStep(
                                    PreferenceStepRequest(step, seqs, ref, /*eval_only=*/false, tokenizer_->pad_id())));
    version_ = resp.weights_version();
    std::map<std::string, double> m(resp.metrics().begin(), resp.metrics().end());
    m["step"] = step;
    m["pairs"] = static_cast<double>(pairs.size());
    m["reference_seconds"] = reference_seconds;
    if (!ref.empty()) m["reference_cached"] = 1.0 - static_cast<double>(scored) / static_cast<double>(ref.size());
    m["step_seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    Report("preference", step, m);
    RETURN_IF_ERROR(MaybeRecordProbes(step, step == t.total_steps()));
    const int every = t.checkpoint_every();
    if (every > 0 && (step % every == 0 || step == t.total_steps())) RETURN_IF_ERROR(SaveCheckpoint(step));
    const int eval_every = t.eval_every();
    if (step == t.total_steps() || (eval_every > 0 && step % eval_every == 0)) RETURN_IF_ERROR(KeepWeights(step));
    if (eval_every > 0 && step % eval_every == 0 && step != t.total_steps()) {
      RETURN_IF_ERROR(SyncActorsTo(step));
      ASSIGN_OR_RETURN(double acc, collector_->Evaluate());
      ASSIGN_OR_RETURN(auto eval, EvaluatePreference());
      eval["heldout_accuracy"] = acc;
      Report("eval", step, eval);
    }
  }
  return absl::OkStatus();
}

absl::Status RlLoop::MakeTrainingPairs(bool report) {
  pairs_ = data_.pairs;
  const auto& sampled = spec_.preference().sampled_pairs();
  if (sampled.prompts() > 0) {
    const auto t0 = std::chrono::steady_clock::now();
    if (data_.train.size() == 0) return absl::FailedPreconditionError("preference.sampled_pairs: no training prompts");
    std::vector<const Problem*> problems;
    for (int i = 0; i < sampled.prompts(); ++i) problems.push_back(&data_.train.Get(i % data_.train.size()));
    const size_t dataset_pairs = pairs_.size();
    int tied = 0;
    double correct = 0, scored = 0;
    constexpr size_t kBatch = 256;
    for (size_t b = 0; b < problems.size(); b += kBatch) {
      const std::vector<const Problem*> batch(problems.begin() + b, problems.begin() + std::min(problems.size(), b + kBatch));
      ASSIGN_OR_RETURN(std::vector<Group> groups,
                       collector_->SampleScored(batch, sampled.samples(), MixSeed(spec_.seed(), 17 + b)));
      for (const Group& g : groups) {
        for (bool c : g.correct) correct += c, scored += 1;
        std::vector<PreferenceRow> pairs = PairsFromGroup(g, sampled.all_pairs());
        if (pairs.empty()) ++tied;
        for (auto& pair : pairs) pairs_.push_back(std::move(pair));
      }
    }
    if (report) {
      Report("sampled_pairs", 0,
             {{"sampled_pairs", static_cast<double>(pairs_.size() - dataset_pairs)},
              {"sampled_prompts_tied", static_cast<double>(tied)},
              {"sampled_accuracy", scored > 0 ? correct / scored : 0.0},
              {"dataset_pairs", static_cast<double>(dataset_pairs)},
              {"sampled_pairs_seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()}});
    }
  }
  preference_cursor_ = DatasetCursor(std::max<size_t>(pairs_.size(), 1), MixSeed(spec_.seed(), 3));
  return absl::OkStatus();
}

namespace {

// A sequence's key in the reference cache: its prompt and completion ids.
std::string SequenceKey(const grail::v1::Sample& s) {
  std::string key(reinterpret_cast<const char*>(s.prompt_token_ids().data()), s.prompt_token_ids_size() * 4);
  key.push_back('|');
  key.append(reinterpret_cast<const char*>(s.token_ids().data()), s.token_ids_size() * 4);
  return key;
}

}  // namespace

absl::StatusOr<std::vector<float>> RlLoop::ReferenceSums(const PreferenceSequences& seqs, int* scored) {
  std::vector<float> out(seqs.rows.size());
  PreferenceSequences missing;
  std::vector<size_t> where;
  std::vector<std::string> keys(seqs.rows.size());
  for (size_t r = 0; r < seqs.rows.size(); ++r) {
    keys[r] = SequenceKey(seqs.rows[r]);
    auto it = reference_sums_.find(keys[r]);
    if (it != reference_sums_.end()) {
      out[r] = it->second;
    } else {
      missing.rows.push_back(seqs.rows[r]);
      where.push_back(r);
    }
  }
  if (scored != nullptr) *scored = static_cast<int>(where.size());
  if (where.empty()) return out;
  ASSIGN_OR_RETURN(auto aligned, reference_->LogProbs(missing.Ptrs(), 1.0f, tokenizer_->pad_id()));
  const std::vector<float> sums = SummedCompletionLogProbs(missing, aligned);
  for (size_t i = 0; i < where.size(); ++i) {
    out[where[i]] = sums[i];
    reference_sums_[keys[where[i]]] = sums[i];
  }
  return out;
}

absl::StatusOr<std::map<std::string, double>> RlLoop::EvaluatePreference() {
  const auto& held = data_.heldout_pairs;
  std::map<std::string, double> out;
  if (held.empty()) return out;
  // Evaluations are pairs for every objective (kto too); the implicit reward of dpo and kto
  // (log pi/pi_ref) needs the reference's log-probs.
  const bool with_ref = NeedsReference(spec_.preference());
  constexpr size_t kBatch = 128;
  for (size_t b = 0; b < held.size(); b += kBatch) {
    std::vector<const PreferenceRow*> pairs;
    for (size_t i = b; i < std::min(held.size(), b + kBatch); ++i) pairs.push_back(&held[i]);
    const PreferenceSequences seqs = BuildPreferenceSequences(pairs, /*kto=*/false);
    std::vector<float> ref;
    if (with_ref) {
      ASSIGN_OR_RETURN(ref, ReferenceSums(seqs));
    }
    ASSIGN_OR_RETURN(auto resp, clients_.learner->PreferenceStep(
                                    PreferenceStepRequest(0, seqs, ref, /*eval_only=*/true, tokenizer_->pad_id())));
    if (!resp.metrics().count("preference_accuracy")) {
      return absl::InternalError("learner: no preference_accuracy in an evaluation");
    }
    const double weight = static_cast<double>(pairs.size()) / static_cast<double>(held.size());
    for (const char* k : {"preference_accuracy", "reward_accuracy"}) {
      auto it = resp.metrics().find(k);
      if (it != resp.metrics().end()) out[absl::StrCat("heldout_", k)] += it->second * weight;
    }
  }
  return out;
}

}  // namespace grail::coordinator
