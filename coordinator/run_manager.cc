#include "coordinator/run_manager.h"

#include <algorithm>
#include <cstdio>
#include <random>
#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "algo/run_spec.h"
#include "coordinator/batch_collector.h"
#include "coordinator/jsonl_data.h"
#include "coordinator/preference_batch.h"
#include "coordinator/probes.h"
#include "tokenizer/chat_encoding.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace grail::coordinator {
namespace {

const char* StateLabel(grail::v1::RunState s) {
  switch (s) {
    case grail::v1::RUN_STATE_PENDING: return "pending";
    case grail::v1::RUN_STATE_RUNNING: return "running";
    case grail::v1::RUN_STATE_SUCCEEDED: return "succeeded";
    case grail::v1::RUN_STATE_FAILED: return "failed";
    case grail::v1::RUN_STATE_CANCELLED: return "cancelled";
    default: return "unspecified";
  }
}

// Whether a run failed because its learner went away (a rank died or broke its group):
// the clients name the learner in every error of theirs.
bool LearnerGone(const absl::Status& s) {
  return (absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s)) && absl::StartsWith(s.message(), "learner ");
}

// The chat encoder for rows with "messages": the tokenizer's template, or the file
// dataset.chat_template names. Null for a tokenizer without chat support (char) when the
// spec names no template; rows with messages are then refused, naming the field.
absl::StatusOr<std::shared_ptr<const tokenizer::ChatEncoder>> MakeChatEncoder(
    const grail::v1::DatasetSpec& d, std::shared_ptr<const tokenizer::Tokenizer> tok, const std::string& data_root) {
  auto hf = std::dynamic_pointer_cast<const tokenizer::HfTokenizer>(tok);
  if (hf == nullptr) {
    if (!d.chat_template().empty()) {
      return absl::InvalidArgumentError("dataset.chat_template: needs a Hugging Face tokenizer (model.tokenizer)");
    }
    return nullptr;
  }
  std::string source;
  if (!d.chat_template().empty()) {
    ASSIGN_OR_RETURN(std::string path, ResolveUnderRoot(data_root, d.chat_template(), "dataset.chat_template"));
    std::ifstream in(path);
    if (!in) return absl::InvalidArgumentError(absl::StrCat("dataset.chat_template: cannot read '", d.chat_template(), "'"));
    source.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (source.size() > (1 << 20)) return absl::InvalidArgumentError("dataset.chat_template: larger than 1 MiB");
  } else if (hf->chat_template().empty()) {
    return nullptr;
  }
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::ChatEncoder> enc,
                   tokenizer::ChatEncoder::Create(hf, source, d.chat_template().empty() ? "model.tokenizer chat_template"
                                                                                       : "dataset.chat_template"));
  return std::shared_ptr<const tokenizer::ChatEncoder>(std::move(enc));
}

// Loads the run's tokenizer and datasets, tokenized, and checks that every prompt fits the
// model (rows over the bounds are skipped or truncated as dataset.overlong says).
absl::StatusOr<RunData> LoadData(const grail::v1::RunSpec& spec, const std::string& data_root) {
  const auto& d = spec.dataset();
  Splits splits{Dataset({}), Dataset({})};
  ASSIGN_OR_RETURN(std::unique_ptr<tokenizer::Tokenizer> made, tokenizer::NewTokenizer(spec.model().tokenizer(), data_root));
  std::shared_ptr<const tokenizer::Tokenizer> tok = std::move(made);
  int64_t context = 0;
  if (spec.model().has_config()) {
    context = algo::ContextLength(spec.model().config());
    if (spec.model().config().vocab_size() > 0 && tok->vocab_size() > spec.model().config().vocab_size()) {
      return absl::InvalidArgumentError(absl::StrCat("model.config.vocab_size: ", spec.model().config().vocab_size(),
                                                     " is smaller than the tokenizer's vocabulary of ", tok->vocab_size()));
    }
  }
  if (!d.builtin().empty()) {
    ArithmeticOptions o;
    o.seed = d.seed();
    o.max_digits = d.max_digits() > 0 ? d.max_digits() : 2;
    o.train_size = d.train_size();
    o.heldout_size = d.heldout_size();
    ASSIGN_OR_RETURN(splits, MakeArithmeticSplits(o));
    for (const Dataset* ds : {&splits.train, &splits.heldout}) {
      for (size_t i = 0; i < ds->size() && context > 0; ++i) {
        auto ids = tok->Encode(ds->Get(i).prompt);
        if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("dataset: prompt ", i, ": ", ids.status().message()));
        // BOS + prompt, plus room for at least one generated token.
        if (static_cast<int64_t>(ids->size()) + 2 > context) {
          return absl::InvalidArgumentError(absl::StrCat("dataset: prompt ", i, " has ", ids->size(),
                                                         " tokens, longer than model.config.max_position_embeddings ",
                                                         context, " allows"));
        }
      }
    }
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const tokenizer::ChatEncoder> chat, MakeChatEncoder(d, tok, data_root));
  tokenizer::ChatOptions chat_options;
  if (d.has_enable_thinking()) chat_options.enable_thinking = d.enable_thinking();
  const RowEncoder encoder(tok, chat, chat_options);
  LengthLimits limits;
  limits.max_prompt = d.max_prompt_tokens();
  limits.max_response = d.max_response_tokens();
  limits.context = context;
  limits.truncate = d.overlong() == "truncate";
  LoadCounts counts;
  if (d.builtin().empty()) {
    ASSIGN_OR_RETURN(std::string path, ResolveUnderRoot(data_root, d.jsonl_path(), "dataset.jsonl_path"));
    ASSIGN_OR_RETURN(splits, LoadRlRows(JsonlFile{path, d.jsonl_path(), "dataset.jsonl_path"}, d.seed(),
                                        d.heldout_size(), &encoder, limits, &counts));
  }
  if (!d.sft_path().empty()) {
    ASSIGN_OR_RETURN(std::string path, ResolveUnderRoot(data_root, d.sft_path(), "dataset.sft_path"));
    LoadCounts sft_counts;
    ASSIGN_OR_RETURN(std::vector<SupervisedRow> sft, LoadSupervisedRows(JsonlFile{path, d.sft_path(), "dataset.sft_path"},
                                                                        encoder, limits, &sft_counts));
    // Held out as the RL rows are: min(500, a tenth), after a seeded shuffle.
    std::mt19937_64 rng(MixSeed(d.seed(), 13));
    std::shuffle(sft.begin(), sft.end(), rng);
    const size_t held = static_cast<size_t>(algo::DefaultHeldoutSize(static_cast<int64_t>(sft.size())));
    splits.sft_heldout.assign(sft.begin(), sft.begin() + held);
    splits.sft.assign(sft.begin() + held, sft.end());
    counts.skipped_too_long += sft_counts.skipped_too_long;
    counts.truncated += sft_counts.truncated;
  }
  if (spec.preference().objective() != grail::v1::PREFERENCE_OBJECTIVE_UNSPECIFIED) {
    if (!d.pairs_path().empty()) {
      ASSIGN_OR_RETURN(std::string path, ResolveUnderRoot(data_root, d.pairs_path(), "dataset.pairs_path"));
      LoadCounts pair_counts;
      ASSIGN_OR_RETURN(std::vector<PreferenceRow> pairs,
                       LoadPreferenceRows(JsonlFile{path, d.pairs_path(), "dataset.pairs_path"}, encoder, limits,
                                          &pair_counts));
      counts.skipped_too_long += pair_counts.skipped_too_long;
      counts.truncated += pair_counts.truncated;
      RETURN_IF_ERROR(SplitPairs(std::move(pairs), d.seed(), d.heldout_size(), &splits));
    } else if (!d.builtin().empty()) {
      // The built-in task's own pairs: training pairs from the training problems, held-out
      // pairs from the held-out ones.
      const PairStyle style = spec.preference().objective() == grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL
                                  ? PairStyle::kVaried
                                  : PairStyle::kNearMiss;
      ASSIGN_OR_RETURN(splits.pairs, ArithmeticPairs(splits.train, *tok, MixSeed(d.seed(), 11), style));
      ASSIGN_OR_RETURN(splits.heldout_pairs, ArithmeticPairs(splits.heldout, *tok, MixSeed(d.seed(), 12), style));
    } else if (spec.preference().sampled_pairs().prompts() == 0) {
      return absl::InvalidArgumentError(
          "dataset.pairs_path: a preference run over a JSONL dataset needs its pairs (or preference.sampled_pairs)");
    }
  }
  const auto& probes = spec.probes();
  if (probes.every() > 0) {
    if (!probes.path().empty()) {
      ASSIGN_OR_RETURN(std::string path, ResolveUnderRoot(data_root, probes.path(), "probes.path"));
      LoadCounts probe_counts;
      ASSIGN_OR_RETURN(splits.probes, LoadProbeRows(JsonlFile{path, probes.path(), "probes.path"}, encoder, limits,
                                                    &probe_counts));
    } else if (!d.builtin().empty()) {
      // The pairs a preference run over the built-in task trains on (the same seed).
      std::vector<PreferenceRow> pairs = splits.pairs;
      if (pairs.empty() || !d.pairs_path().empty() ||
          spec.preference().objective() == grail::v1::PREFERENCE_OBJECTIVE_REWARD_MODEL) {
        ASSIGN_OR_RETURN(pairs, ArithmeticPairs(splits.train, *tok, MixSeed(d.seed(), 11)));
      }
      ASSIGN_OR_RETURN(splits.probes, ArithmeticProbes(splits.train, pairs, *tok, probes.size() > 0 ? probes.size() : 16));
    } else {
      return absl::InvalidArgumentError("probes.path: a run over a JSONL dataset needs its probe file");
    }
  }
  splits.rows_skipped_too_long = counts.skipped_too_long;
  splits.rows_truncated = counts.truncated;
  return RunData{std::move(splits), std::move(tok)};
}

// trainer.sft_epochs as steps: passes over the SFT rows (the RL training rows without
// dataset.sft_path) at sft_batch_size. The learner's schedule then sees plain sft_steps.
absl::Status ResolveSftEpochs(const Splits& data, grail::v1::RunSpec* spec) {
  auto* t = spec->mutable_trainer();
  if (t->sft_epochs() <= 0) return absl::OkStatus();
  const int64_t rows = static_cast<int64_t>(!data.sft.empty() ? data.sft.size() : data.train.size());
  const int64_t batch = std::max(1, t->sft_batch_size());
  const int64_t steps = std::max<int64_t>(1, (t->sft_epochs() * rows + batch - 1) / batch);
  if (steps > algo::SpecLimits::kMaxSteps) {
    return absl::InvalidArgumentError(absl::StrCat("trainer.sft_epochs: ", t->sft_epochs(), " passes over ", rows,
                                                   " rows take ", steps, " steps, above the limit of ",
                                                   algo::SpecLimits::kMaxSteps));
  }
  t->set_sft_steps(static_cast<int>(steps));
  t->set_sft_epochs(0);
  return absl::OkStatus();
}

// Where a stage's checkpoints go: <checkpoint_dir or run id>/<stage>; a run without stages
// keeps its own directory ("" in the plan: RlLoop falls back to the run id).
std::string StageCheckpointDir(const std::string& run_id, const grail::v1::RunSpec& spec, const std::string& stage) {
  if (stage.empty()) return spec.checkpoint_dir();
  return absl::StrCat(spec.checkpoint_dir().empty() ? run_id : spec.checkpoint_dir(), "/", stage);
}

// The spec that continues `stage` from one of its checkpoints.
grail::v1::RunSpec ResumeSpec(const grail::v1::RunSpec& stage, const std::string& checkpoint) {
  grail::v1::RunSpec resume = stage;
  resume.mutable_model()->clear_config();
  resume.mutable_model()->set_path(checkpoint);
  resume.mutable_trainer()->set_resume(true);
  return resume;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RunManager>> RunManager::Create(RunManagerOptions options, ServiceClients clients,
                                                              CoordinatorMetrics* metrics) {
  std::unique_ptr<RunManager> m(new RunManager(std::move(options), std::move(clients), metrics));
  if (m->options_.store == nullptr) return m;
  ASSIGN_OR_RETURN(std::vector<RunStore::StoredRun> stored, m->options_.store->LoadAll());
  absl::MutexLock lock(&m->mu_);
  for (auto& r : stored) {
    auto record = std::make_unique<RunRecord>();
    record->run = std::move(r.run);
    record->reports = std::move(r.reports);
    const std::string id = record->run.run_id();
    m->runs_[id] = std::move(record);
  }
  return m;
}

void RunManager::PersistLocked(const RunRecord& record) {
  if (options_.store == nullptr) return;
  absl::Status s = options_.store->PutRun(record.run);
  if (!s.ok()) std::fprintf(stderr, "grail-coordinator: %s\n", s.ToString().c_str());
}

void RunManager::AddReportLocked(RunRecord* record, const grail::v1::StepReport& report) {
  record->reports.push_back(report);
  *record->run.mutable_last_report() = report;
  if (report.phase() == "checkpoint" && !report.message().empty()) {
    record->run.set_last_checkpoint(report.message());
    record->run.set_last_checkpoint_stage(report.stage());
    // A stage's checkpoint after its last step is its final one: the stage is done and the
    // next starts from it (a restart does not run it again).
    if (!report.stage().empty() && report.step() == report.total_steps()) {
      (*record->run.mutable_stage_checkpoints())[report.stage()] = report.message();
    }
  }
  if (options_.store == nullptr) return;
  absl::Status s = options_.store->PutReport(record->run.run_id(), record->reports.size() - 1, report);
  if (!s.ok()) std::fprintf(stderr, "grail-coordinator: %s\n", s.ToString().c_str());
  PersistLocked(*record);
}

std::vector<std::string> RunManager::Recover() {
  std::vector<std::string> resumed;
  absl::MutexLock lock(&mu_);
  for (auto& [id, record] : runs_) {
    RunRecord* r = record.get();
    if (Terminal(r->run) || r->thread.joinable()) continue;
    const grail::v1::RunSpec& spec = r->run.spec();
    auto fail = [&](const std::string& why) {
      r->run.set_state(grail::v1::RUN_STATE_FAILED);
      r->run.set_error(why);
      grail::v1::StepReport final_report = r->run.last_report();
      final_report.set_phase("done");
      final_report.set_state(grail::v1::RUN_STATE_FAILED);
      final_report.set_message(why);
      AddReportLocked(r, final_report);
      metrics_->SetRunState("failed");
    };
    // A staged run without a checkpoint starts its first stage again; a run of one stage
    // needs trainer.checkpoint_every to come back.
    if (r->run.last_checkpoint().empty() && spec.stages_size() == 0) {
      fail("FAILED_PRECONDITION: the coordinator restarted and the run had no committed checkpoint to resume "
           "from (trainer.checkpoint_every)");
      continue;
    }
    auto plan = PlanStages(id, spec);
    if (!plan.ok()) {
      fail(absl::StrCat("the coordinator restarted and could not reload the run's data: ", plan.status().ToString()));
      continue;
    }
    PrepareResumeLocked(r, r->run.last_checkpoint().empty()
                               ? std::string("coordinator restarted; starting the run's first stage again")
                               : absl::StrCat("coordinator restarted; resuming from ", r->run.last_checkpoint()));
    metrics_->CountRecovery("coordinator");
    metrics_->SetRunState("running");
    r->thread = std::thread([this, r, plan = std::move(*plan)]() mutable { Execute(r, std::move(plan)); });
    resumed.push_back(id);
  }
  return resumed;
}

RunManager::~RunManager() {
  CancelAll();
  std::vector<std::thread*> threads;
  {
    absl::MutexLock lock(&mu_);
    for (auto& [id, r] : runs_) threads.push_back(&r->thread);
  }
  for (auto* t : threads) {
    if (t->joinable()) t->join();
  }
}

bool RunManager::Terminal(const grail::v1::Run& run) const {
  return run.state() == grail::v1::RUN_STATE_SUCCEEDED || run.state() == grail::v1::RUN_STATE_FAILED ||
         run.state() == grail::v1::RUN_STATE_CANCELLED;
}

absl::StatusOr<std::string> RunManager::Submit(const grail::v1::RunSpec& submitted) {
  RETURN_IF_ERROR(algo::ValidateRunSpec(submitted));
  // From here on the run's spec is the resolved one: stored, shown and sent with every
  // default filled in.
  grail::v1::RunSpec spec = submitted;
  algo::ResolveDefaults(&spec);
  if (clients_.actors.empty()) return absl::FailedPreconditionError("no actors configured (--actors)");
  // Every stage's data is loaded (and checked) now: a bad file fails the submit, not a
  // later stage.
  ASSIGN_OR_RETURN(std::vector<StagePlan> plan, PlanStages("", spec));
  absl::MutexLock lock(&mu_);
  for (const auto& [id, r] : runs_) {
    if (!Terminal(r->run)) {
      return absl::FailedPreconditionError(absl::StrCat("run ", id, " is still active; cancel it or wait"));
    }
  }
  std::string id;
  if (options_.store != nullptr) {
    ASSIGN_OR_RETURN(id, options_.store->NextRunId());
  } else {
    id = absl::StrFormat("run-%06d", next_id_++);
  }
  auto record = std::make_unique<RunRecord>();
  record->run.set_run_id(id);
  *record->run.mutable_spec() = spec;
  record->run.set_state(grail::v1::RUN_STATE_RUNNING);
  record->run.set_create_time_unix_ms(absl::ToUnixMillis(absl::Now()));
  RunRecord* raw = record.get();
  runs_[id] = std::move(record);
  PersistLocked(*raw);
  metrics_->SetRunState("running");
  for (auto& stage : plan) stage.spec.set_checkpoint_dir(StageCheckpointDir(id, spec, stage.name));
  raw->thread = std::thread([this, raw, plan = std::move(plan)]() mutable { Execute(raw, std::move(plan)); });
  return id;
}

absl::StatusOr<std::vector<StagePlan>> RunManager::PlanStages(const std::string& run_id,
                                                              const grail::v1::RunSpec& spec) const {
  std::vector<StagePlan> plan;
  if (spec.stages_size() == 0) {
    ASSIGN_OR_RETURN(RunData data, LoadData(spec, options_.data_root));
    grail::v1::RunSpec resolved = spec;
    RETURN_IF_ERROR(ResolveSftEpochs(data.splits, &resolved));
    plan.push_back(StagePlan{"", std::move(resolved), "", std::move(data)});
    return plan;
  }
  for (int i = 0; i < spec.stages_size(); ++i) {
    const auto& stage = spec.stages(i);
    grail::v1::RunSpec stage_spec = algo::StageRunSpec(spec, i);
    stage_spec.set_checkpoint_dir(StageCheckpointDir(run_id, spec, stage.name()));
    auto data = LoadData(stage_spec, options_.data_root);
    absl::Status s = data.ok() ? ResolveSftEpochs(data->splits, &stage_spec) : data.status();
    if (!s.ok()) {
      return absl::Status(s.code(), absl::StrCat("stages[", i, "] (", stage.name(), "): ", s.message()));
    }
    const std::string from = !stage.from().empty() ? stage.from() : i > 0 ? spec.stages(i - 1).name() : "";
    plan.push_back(StagePlan{stage.name(), std::move(stage_spec), from, std::move(*data)});
  }
  return plan;
}

absl::Status RunManager::ExecuteStage(RunRecord* record, const StagePlan& stage, grail::v1::RunSpec spec,
                                      std::map<std::string, double>* summary) {
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    id = record->run.run_id();
  }
  absl::Status status;
  const grail::v1::RunSpec start = spec;
  for (int attempt = 0;; ++attempt) {
    RlLoop loop(
        id, spec, stage.data.splits, clients_, metrics_,
        [this, record, name = stage.name](grail::v1::StepReport report) {
          report.set_stage(name);
          absl::MutexLock lock(&mu_);
          AddReportLocked(record, report);
        },
        &record->cancelled, stage.data.tokenizer);
    status = loop.Run();
    *summary = loop.summary();
    // A learner that died mid-run: once it serves again (a supervisor restarted it), the
    // run continues from its last committed checkpoint, as after a coordinator restart.
    if (status.ok() || record->cancelled || !LearnerGone(status) || attempt >= kMaxRecoveriesPerRun) break;
    std::string checkpoint;
    {
      absl::MutexLock lock(&mu_);
      if (record->run.last_checkpoint_stage() == stage.name) checkpoint = record->run.last_checkpoint();
    }
    // A stage without a checkpoint of its own starts again from where it started; a run of
    // one stage needs trainer.checkpoint_every to come back.
    if (checkpoint.empty() && stage.name.empty()) break;
    absl::Status back = clients_.learner->WaitUntilServing(clients_.recovery_timeout);
    if (!back.ok()) {
      status = absl::Status(status.code(), absl::StrCat(status.message(), "; it did not come back: ", back.message()));
      break;
    }
    absl::MutexLock lock(&mu_);
    PrepareResumeLocked(record, absl::StrCat("learner restarted (", status.message(), "); ",
                                             checkpoint.empty() ? "starting the stage again"
                                                                : absl::StrCat("resuming from ", checkpoint)));
    spec = checkpoint.empty() ? start : ResumeSpec(stage.spec, checkpoint);
    metrics_->CountRecovery("learner");
  }
  return status;
}

void RunManager::Execute(RunRecord* record, std::vector<StagePlan> plan) {
  absl::Status status;
  std::map<std::string, double> summary;  // the run's: its stages' under "<stage>." keys
  const bool staged = plan.size() > 1 || !plan.front().name.empty();
  for (const StagePlan& stage : plan) {
    grail::v1::RunSpec spec = stage.spec;
    {
      absl::MutexLock lock(&mu_);
      grail::v1::Run& run = record->run;
      if (run.stage_checkpoints().count(stage.name)) continue;  // finished before a restart
      if (!run.last_checkpoint().empty() && run.last_checkpoint_stage() == stage.name) {
        spec = ResumeSpec(stage.spec, run.last_checkpoint());
      } else if (!stage.from.empty()) {
        auto from = run.stage_checkpoints().find(stage.from);
        if (from == run.stage_checkpoints().end()) {
          status = absl::InternalError(
              absl::StrCat("stage '", stage.name, "': stage '", stage.from, "' left no final checkpoint to start from"));
          break;
        }
        spec.mutable_model()->clear_config();
        spec.mutable_model()->set_path(from->second);
      }
      // reward.model may name an earlier reward_model stage: its final checkpoint.
      auto rm = run.stage_checkpoints().find(spec.reward().model());
      if (staged && rm != run.stage_checkpoints().end()) spec.mutable_reward()->set_model(rm->second);
      // So may preference.sampled_pairs.policy: an earlier stage's final checkpoint.
      auto policy = run.stage_checkpoints().find(spec.preference().sampled_pairs().policy());
      if (staged && policy != run.stage_checkpoints().end()) {
        spec.mutable_preference()->mutable_sampled_pairs()->set_policy(policy->second);
      }
      run.set_stage(stage.name);
      PersistLocked(*record);
    }
    std::map<std::string, double> stage_summary;
    status = ExecuteStage(record, stage, spec, &stage_summary);
    if (!staged) {
      summary = std::move(stage_summary);
    } else {
      for (const auto& [k, v] : stage_summary) summary[absl::StrCat(stage.name, ".", k)] = v;
      if (!summary.count("heldout_accuracy_before") && stage_summary.count("heldout_accuracy_before")) {
        summary["heldout_accuracy_before"] = stage_summary.at("heldout_accuracy_before");
      }
      if (stage_summary.count("heldout_accuracy_after")) {
        summary["heldout_accuracy_after"] = stage_summary.at("heldout_accuracy_after");
      }
    }
    if (!status.ok()) {
      if (staged && !absl::IsCancelled(status)) {
        status = absl::Status(status.code(), absl::StrCat("stage '", stage.name, "': ", status.message()));
      }
      break;
    }
    absl::MutexLock lock(&mu_);
    if (staged && !record->run.stage_checkpoints().count(stage.name)) {
      // Every stage ends with a checkpoint (algo::StageRunSpec); this keeps the record whole
      // should its report have been missed.
      (*record->run.mutable_stage_checkpoints())[stage.name] = record->run.last_checkpoint();
    }
    for (const auto& [k, v] : summary) (*record->run.mutable_summary())[k] = v;
    PersistLocked(*record);
  }
  absl::MutexLock lock(&mu_);
  for (const auto& [k, v] : summary) (*record->run.mutable_summary())[k] = v;
  if (record->run.recoveries() > 0) {
    // A resumed run keeps the accuracy measured before its first RL step.
    auto& s = *record->run.mutable_summary();
    for (const auto& r : record->reports) {
      if (r.phase() == "eval" && r.metrics().count("heldout_accuracy")) {
        s["heldout_accuracy_before"] = r.metrics().at("heldout_accuracy");
        break;
      }
    }
    s["recoveries"] = record->run.recoveries();
  }
  grail::v1::RunState state = status.ok() ? grail::v1::RUN_STATE_SUCCEEDED
                              : absl::IsCancelled(status) ? grail::v1::RUN_STATE_CANCELLED
                                                          : grail::v1::RUN_STATE_FAILED;
  record->run.set_state(state);
  if (!status.ok()) record->run.set_error(status.ToString());
  grail::v1::StepReport final_report = record->run.last_report();
  final_report.set_phase("done");
  final_report.set_state(state);
  final_report.set_message(status.ok() ? "" : status.ToString());
  AddReportLocked(record, final_report);
  metrics_->SetRunState(StateLabel(state));
}

void RunManager::PrepareResumeLocked(RunRecord* r, const std::string& why) {
  // The reports after the checkpoint describe steps that are trained again. A stage that
  // starts again (it has no checkpoint of its own) drops its own reports only.
  size_t keep = r->reports.size();
  if (!r->run.stage().empty() && r->run.last_checkpoint_stage() != r->run.stage()) {
    keep = 0;
    while (keep < r->reports.size() && r->reports[keep].stage() != r->run.stage()) ++keep;
  } else {
    while (keep > 0 && !(r->reports[keep - 1].phase() == "checkpoint" &&
                         r->reports[keep - 1].message() == r->run.last_checkpoint())) {
      --keep;
    }
  }
  r->reports.resize(keep);
  if (options_.store != nullptr) {
    absl::Status s = options_.store->TruncateReports(r->run.run_id(), keep);
    if (!s.ok()) std::fprintf(stderr, "grail-coordinator: %s\n", s.ToString().c_str());
  }
  r->run.set_recoveries(r->run.recoveries() + 1);
  grail::v1::StepReport event = r->reports.empty() ? grail::v1::StepReport() : r->reports.back();
  event.set_phase("recovered");
  event.set_state(grail::v1::RUN_STATE_RUNNING);
  event.clear_metrics();
  event.clear_probes();
  event.set_message(why);
  AddReportLocked(r, event);
}

absl::StatusOr<grail::v1::Run> RunManager::Get(const std::string& run_id) const {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("run_id: no run '", run_id, "'"));
  return it->second->run;
}

std::vector<grail::v1::Run> RunManager::List() const {
  absl::MutexLock lock(&mu_);
  std::vector<grail::v1::Run> out;
  for (const auto& [id, r] : runs_) out.push_back(r->run);
  return out;
}

absl::StatusOr<std::vector<grail::v1::ProbeRecord>> RunManager::Probes(const std::string& run_id) const {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("run_id: no run '", run_id, "'"));
  std::vector<grail::v1::ProbeRecord> out;
  for (const auto& r : it->second->reports) {
    for (const auto& p : r.probes()) {
      out.push_back(p);
      out.back().set_stage(r.stage());
    }
  }
  return out;
}

absl::Status RunManager::Cancel(const std::string& run_id) {
  absl::MutexLock lock(&mu_);
  auto it = runs_.find(run_id);
  if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("run_id: no run '", run_id, "'"));
  it->second->cancelled = true;
  return absl::OkStatus();
}

void RunManager::CancelAll() {
  absl::MutexLock lock(&mu_);
  for (auto& [id, r] : runs_) r->cancelled = true;
}

absl::Status RunManager::Watch(const std::string& run_id,
                               const std::function<bool(const grail::v1::StepReport&)>& on_report,
                               const std::function<bool()>& still_wanted) {
  size_t sent = 0;
  while (true) {
    std::vector<grail::v1::StepReport> fresh;
    bool done;
    {
      absl::MutexLock lock(&mu_);
      auto it = runs_.find(run_id);
      if (it == runs_.end()) return absl::NotFoundError(absl::StrCat("run_id: no run '", run_id, "'"));
      RunRecord* r = it->second.get();
      auto ready = [r, sent]() { return r->reports.size() > sent; };
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(500));
      fresh.assign(r->reports.begin() + sent, r->reports.end());
      sent = r->reports.size();
      done = Terminal(r->run);  // the final report is added together with the state
    }
    for (const auto& report : fresh) {
      if (!on_report(report)) return absl::CancelledError("watcher went away");
    }
    if (done) return absl::OkStatus();
    if (!still_wanted()) return absl::CancelledError("watcher went away");
  }
}

}  // namespace grail::coordinator
