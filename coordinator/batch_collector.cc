#include "coordinator/batch_collector.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/parallel.h"
#include "common/status_macros.h"
#include "coordinator/experience.h"
#include "coordinator/step_metrics.h"

namespace grail::coordinator {

namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// `status` with its message starting with `role`, unless the client already named the peer.
absl::Status Named(absl::string_view role, const absl::Status& status) {
  if (absl::StartsWith(status.message(), absl::StrCat(role, " "))) return status;
  return absl::Status(status.code(), absl::StrCat(role, ": ", status.message()));
}

}  // namespace

uint64_t MixSeed(uint64_t a, uint64_t b) {
  uint64_t x = a ^ (b + 0x9E3779B97F4A7C15ull + (a << 6) + (a >> 2));
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

SamplePtrs CollectedBatch::Samples() const {
  SamplePtrs out;
  for (const auto& g : groups) {
    for (const auto& s : g.samples) out.push_back(&s);
  }
  return out;
}

BatchCollector::BatchCollector(std::string run_id, const grail::v1::RunSpec& spec, const Splits& data,
                               const tokenizer::Tokenizer& tokenizer, Peers peers, CoordinatorMetrics* metrics)
    : run_id_(std::move(run_id)),
      spec_(spec),
      data_(data),
      tokenizer_(tokenizer),
      peers_(std::move(peers)),
      metrics_(metrics),
      train_cursor_(data.train.size(), MixSeed(spec.seed(), 1)) {}

grail::v1::LoopState BatchCollector::StateBefore(int step) {
  absl::MutexLock lock(&mu_);
  grail::v1::LoopState state;
  auto it = states_.find(step);
  if (it != states_.end()) {
    state = it->second;
  } else {  // not started: the collector cannot start it until this lock is released
    state.mutable_train_cursor()->set_epoch(train_cursor_.state().epoch);
    state.mutable_train_cursor()->set_offset(train_cursor_.state().offset);
    state.set_next_prompt_id(next_prompt_id_);
    state.set_filtered_estimate(filtered_estimate_);
  }
  states_.erase(states_.begin(), states_.lower_bound(step));
  return state;
}

void BatchCollector::Restore(const grail::v1::LoopState& state) {
  absl::MutexLock lock(&mu_);
  train_cursor_ = DatasetCursor(data_.train.size(), MixSeed(spec_.seed(), 1),
                                DatasetCursor::State{state.train_cursor().epoch(), state.train_cursor().offset()});
  next_prompt_id_ = state.next_prompt_id();
  filtered_estimate_ = state.filtered_estimate();
}

absl::StatusOr<BatchCollector::Row> BatchCollector::NewRow(const Problem& problem, bool heldout) {
  std::vector<int> tokens = problem.prompt_ids;
  if (tokens.empty()) {  // a dataset not tokenized at load (the built-in task)
    ASSIGN_OR_RETURN(tokens, tokenizer_.Encode(problem.prompt));
    if (tokenizer_.bos_id() >= 0) tokens.insert(tokens.begin(), tokenizer_.bos_id());
  }
  absl::MutexLock lock(&mu_);
  // Evaluation prompts use negative ids so they never collide with training samples.
  const int64_t id = next_prompt_id_++;
  return Row{heldout ? -1 - id : id, &problem, std::move(tokens)};
}

absl::StatusOr<std::vector<Group>> BatchCollector::SampleGroups(const std::vector<Row>& rows, int group_size,
                                                                const grail::v1::SamplingParams& sampling,
                                                                uint64_t seed, std::map<std::string, double>* times,
                                                                int64_t weights_version, bool score) {
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<size_t> eligible = peers_.weights->ActorsHolding(weights_version);
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
    req.mutable_sampling()->set_seed(MixSeed(seed, c));
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
      last = peers_.actors[eligible[(c + attempt) % A]]->Generate(
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
      peers_.clock->SleepFor(absl::Milliseconds(100));
    }
    return absl::Status(last.code(), absl::StrCat("generate: every actor failed: ", last.message()));
  }));
  (*times)["time_generate"] += Seconds(t0);
  metrics_->ObservePhase("generate", Seconds(t0));

  std::map<int64_t, size_t> by_prompt;
  std::vector<Group> groups;
  for (const Row& row : rows) {
    by_prompt[row.prompt_id] = groups.size();
    groups.push_back(Group{row.prompt_id, row.problem, {}, {}, {}});
  }
  {
    absl::MutexLock lock(&mu_);
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
      return absl::InternalError(absl::StrCat("prompt ", g.prompt_id, ": ", g.samples.size(),
                                              " samples, expected ", group_size));
    }
  }
  metrics_->CountSamples("generated", static_cast<double>(rows.size() * group_size));
  if (!score) return groups;
  const auto t1 = std::chrono::steady_clock::now();
  // Held-out accuracy is the task's verdict: against a reward model (reward.verifier rm)
  // rows with an answer are still judged by the math verifier.
  RETURN_IF_ERROR(ScoreGroups(&groups, /*heldout=*/weights_version < 0));
  (*times)["time_score"] += Seconds(t1);
  metrics_->ObservePhase("score", Seconds(t1));
  return groups;
}

absl::Status BatchCollector::ScoreGroups(std::vector<Group>* groups, bool heldout) {
  grail::v1::ScoreRequest req;
  *req.mutable_overlong() = spec_.reward().overlong();
  for (const auto& g : *groups) {
    for (const auto& s : g.samples) {
      auto* item = req.add_items();
      item->set_prompt(g.problem->prompt);
      item->set_response(tokenizer_.Decode({s.token_ids().begin(), s.token_ids().end()}));
      item->set_answer(g.problem->answer);
      std::string verifier = g.problem->verifier.empty() ? spec_.reward().verifier() : g.problem->verifier;
      if (heldout && verifier == "rm" && !g.problem->answer.empty()) verifier = "math";
      item->set_verifier(verifier);
      item->set_constraints_json(g.problem->constraints_json);
      item->set_response_length(s.token_ids_size());
    }
  }
  auto resp = peers_.reward->Score(req);
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
        return absl::FailedPreconditionError(absl::StrCat("reward: item for prompt ", g.prompt_id,
                                                          " could not be scored: ", sc.error()));
      }
      g.scores.push_back(sc.score());
      g.correct.push_back(sc.correct());
      g.answer_verdicts.push_back(sc.answer_checked() ? sc.answer_correct() : -1);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<double> BatchCollector::Evaluate() {
  const auto t0 = std::chrono::steady_clock::now();
  const size_t n = spec_.trainer().eval_size() > 0
                       ? std::min<size_t>(spec_.trainer().eval_size(), data_.heldout.size())
                       : data_.heldout.size();
  if (n == 0) return 0.0;
  std::vector<Row> rows;
  for (size_t i = 0; i < n; ++i) {
    ASSIGN_OR_RETURN(Row row, NewRow(data_.heldout.Get(i), /*heldout=*/true));
    rows.push_back(std::move(row));
  }
  grail::v1::SamplingParams greedy = spec_.sampling();
  greedy.set_temperature(0);
  if (greedy.stop_token_ids().empty()) {
    for (int id : tokenizer_.stop_ids()) greedy.add_stop_token_ids(id);
  }
  std::map<std::string, double> times;
  ASSIGN_OR_RETURN(std::vector<Group> groups, SampleGroups(rows, 1, greedy, 0, &times, /*weights_version=*/-1));
  double correct = 0;
  for (const auto& g : groups) correct += g.correct[0] ? 1 : 0;
  metrics_->ObservePhase("eval", Seconds(t0));
  return correct / n;
}

absl::StatusOr<std::vector<std::vector<int>>> BatchCollector::GreedyResponses(
    const std::vector<std::vector<int>>& prompts) {
  std::vector<Row> rows;
  for (const auto& p : prompts) {
    absl::MutexLock lock(&mu_);
    rows.push_back(Row{-1 - next_prompt_id_++, nullptr, p});
  }
  grail::v1::SamplingParams greedy = spec_.sampling();
  greedy.set_temperature(0);
  if (greedy.stop_token_ids().empty()) {
    for (int id : tokenizer_.stop_ids()) greedy.add_stop_token_ids(id);
  }
  std::map<std::string, double> times;
  ASSIGN_OR_RETURN(std::vector<Group> groups,
                   SampleGroups(rows, 1, greedy, 0, &times, /*weights_version=*/-1, /*score=*/false));
  std::vector<std::vector<int>> out;
  for (const auto& g : groups) out.emplace_back(g.samples[0].token_ids().begin(), g.samples[0].token_ids().end());
  return out;
}

absl::StatusOr<std::vector<Group>> BatchCollector::SampleScored(const std::vector<const Problem*>& problems,
                                                                int samples, uint64_t seed) {
  std::vector<Row> rows;
  for (const Problem* p : problems) {
    ASSIGN_OR_RETURN(Row row, NewRow(*p, /*heldout=*/true));  // negative ids: never training samples
    rows.push_back(std::move(row));
  }
  grail::v1::SamplingParams sampling = spec_.sampling();
  if (sampling.stop_token_ids().empty()) {
    for (int id : tokenizer_.stop_ids()) sampling.add_stop_token_ids(id);
  }
  std::map<std::string, double> times;
  return SampleGroups(rows, samples, sampling, seed, &times, /*weights_version=*/-1);
}

std::vector<PreferenceRow> PairsFromGroup(const Group& group, bool all_pairs) {
  std::vector<PreferenceRow> pairs;
  if (group.samples.empty() || group.scores.size() != group.samples.size()) return pairs;
  auto pair = [&](size_t chosen, size_t rejected) {
    PreferenceRow row;
    const auto& c = group.samples[chosen];
    row.prompt.assign(c.prompt_token_ids().begin(), c.prompt_token_ids().end());
    row.chosen.assign(c.token_ids().begin(), c.token_ids().end());
    row.rejected.assign(group.samples[rejected].token_ids().begin(), group.samples[rejected].token_ids().end());
    pairs.push_back(std::move(row));
  };
  if (!all_pairs) {
    size_t best = 0, worst = 0;
    for (size_t i = 1; i < group.scores.size(); ++i) {
      if (group.scores[i] > group.scores[best]) best = i;
      if (group.scores[i] < group.scores[worst]) worst = i;
    }
    if (group.scores[best] > group.scores[worst]) pair(best, worst);
    return pairs;
  }
  // The first sample of each distinct response.
  std::vector<size_t> distinct;
  std::set<std::vector<int>> seen;
  for (size_t i = 0; i < group.samples.size(); ++i) {
    const auto& ids = group.samples[i].token_ids();
    if (seen.insert(std::vector<int>(ids.begin(), ids.end())).second) distinct.push_back(i);
  }
  for (size_t a = 0; a < distinct.size(); ++a) {
    for (size_t b = a + 1; b < distinct.size(); ++b) {
      const size_t i = distinct[a], j = distinct[b];
      if (group.scores[i] > group.scores[j]) pair(i, j);
      if (group.scores[j] > group.scores[i]) pair(j, i);
    }
  }
  return pairs;
}

absl::StatusOr<CollectedBatch> BatchCollector::Collect(int step, int64_t weights_version) {
  current_step_ = step;
  double filtered_estimate;
  {
    // Recorded before anything is drawn, for a checkpoint taken after step - 1.
    absl::MutexLock lock(&mu_);
    grail::v1::LoopState& state = states_[step];
    state.mutable_train_cursor()->set_epoch(train_cursor_.state().epoch);
    state.mutable_train_cursor()->set_offset(train_cursor_.state().offset);
    state.set_next_prompt_id(next_prompt_id_);
    state.set_filtered_estimate(filtered_estimate_);
    filtered_estimate = filtered_estimate_;
  }
  const auto& a = spec_.algorithm();
  const int G = a.group_size();
  const int target = spec_.trainer().prompts_per_step();
  const int rounds = spec_.trainer().max_sampling_rounds();
  grail::v1::SamplingParams sampling = spec_.sampling();
  if (sampling.stop_token_ids().empty()) {
    for (int id : tokenizer_.stop_ids()) sampling.add_stop_token_ids(id);
  }
  CollectedBatch out;

  // Dynamic sampling: fresh prompts until the batch is full or the round bound is hit.
  // Informative surplus is discarded, not carried to the next step: carried groups would be
  // one policy version older than the step's bound allows.
  SamplingTally tally;
  int round = 0;
  for (; round < rounds && static_cast<int>(out.groups.size()) < target; ++round) {
    // Draw enough that, at the filtered fraction seen so far, the batch fills in one round.
    const int missing = target - static_cast<int>(out.groups.size());
    const int need = a.dynamic_sampling()
                         ? static_cast<int>(std::ceil(missing / (1.0 - std::min(filtered_estimate, 0.75))))
                         : missing;
    std::vector<Row> rows;
    for (int i = 0; i < need; ++i) {
      size_t index;
      {
        absl::MutexLock lock(&mu_);
        index = train_cursor_.Next();
      }
      ASSIGN_OR_RETURN(Row row, NewRow(data_.train.Get(index), /*heldout=*/false));
      rows.push_back(std::move(row));
    }
    ASSIGN_OR_RETURN(std::vector<Group> groups,
                     SampleGroups(rows, G, sampling, MixSeed(MixSeed(spec_.seed(), step), round), &out.times,
                                  weights_version));
    for (auto& g : groups) {
      tally.AddGroup(g.samples, g.scores, g.correct);
      tally.AnswerVerdicts(g.scores, g.answer_verdicts);
      std::vector<int64_t> index(g.scores.size(), 0);
      const bool informative = !a.dynamic_sampling() || algo::GroupFilter(g.scores, index)[0];
      if (!informative) {
        tally.Filtered(g.samples.size());
        metrics_->CountSamples("filtered", g.samples.size());
        continue;
      }
      if (static_cast<int>(out.groups.size()) < target) {
        out.groups.push_back(std::move(g));
      } else {
        tally.Discarded(g.samples.size());
        metrics_->CountSamples("discarded", g.samples.size());
      }
    }
  }
  out.stats = tally.Stats(static_cast<int>(out.groups.size()), target, round, weights_version);
  out.scores = tally.scores();
  out.generated_tokens = tally.generated_tokens();
  if (tally.sampled_groups() > 0) {
    absl::MutexLock lock(&mu_);
    filtered_estimate_ = 0.5 * filtered_estimate_ + 0.5 * out.stats["filtered_group_ratio"];
  }
  // Reference log-probs belong to the rollout side: the reference is frozen, so in a
  // pipelined run they are computed while the learner trains.
  if (!out.groups.empty() && StepNeedsReference(spec_.algorithm(), step)) {
    const auto t_ref = std::chrono::steady_clock::now();
    ASSIGN_OR_RETURN(out.ref_log_probs,
                     peers_.reference->LogProbs(out.Samples(), spec_.sampling().temperature(), tokenizer_.pad_id()));
    out.times["time_reference"] = Seconds(t_ref);
    metrics_->ObservePhase("reference", out.times["time_reference"]);
  }
  return out;
}

}  // namespace grail::coordinator
