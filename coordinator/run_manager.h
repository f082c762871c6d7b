#ifndef GRAIL_COORDINATOR_RUN_MANAGER_H_
#define GRAIL_COORDINATOR_RUN_MANAGER_H_

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/rl_loop.h"
#include "tokenizer/tokenizer.h"
#include "coordinator/run_store.h"
#include "proto/grail/v1/coordinator.pb.h"

namespace grail::coordinator {

// What a run reads, loaded once at submit (or when a restarted coordinator resumes it) and
// shared by every attempt: its tokenizer and its data splits.
struct RunData {
  Splits splits;
  std::shared_ptr<const tokenizer::Tokenizer> tokenizer;
};

// One stage of a run as it executes: a run without stages is one stage named "".
struct StagePlan {
  std::string name;
  grail::v1::RunSpec spec;  // algo::StageRunSpec's, with the stage's checkpoint_dir
  std::string from;         // the stage whose final checkpoint it starts from ("": the run's model)
  RunData data;
};

struct RunManagerOptions {
  // Dataset files named in run specs resolve under this directory.
  std::string data_root = ".";
  // Where runs, reports and the run-id counter are kept; null = in memory only (tests).
  std::shared_ptr<RunStore> store;
};

// Accepts runs, executes each on its own thread with an RlLoop (one active run at a time,
// since the services hold one model), and keeps every run's state and step reports for
// Get, List and Watch. With a store, every run and report is written through to it: a new
// manager over the same store lists every run as before, and Recover() continues the runs
// that were active from their last committed checkpoint (or fails them, saying why).
// Thread-safe.
class RunManager {
 public:
  // Loads every run the store holds (none without a store); fails when the store cannot be
  // read, since starting over it would hand out run ids again.
  static absl::StatusOr<std::unique_ptr<RunManager>> Create(RunManagerOptions options, ServiceClients clients,
                                                            CoordinatorMetrics* metrics);
  ~RunManager();  // cancels active runs and joins their threads

  // Validates the spec (INVALID_ARGUMENT naming the field: unknown estimator, group_size < 2,
  // a missing dataset file, a prompt longer than the model context, ...) and starts the run.
  // FAILED_PRECONDITION while another run is active.
  absl::StatusOr<std::string> Submit(const grail::v1::RunSpec& spec) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<grail::v1::Run> Get(const std::string& run_id) const ABSL_LOCKS_EXCLUDED(mu_);
  std::vector<grail::v1::Run> List() const ABSL_LOCKS_EXCLUDED(mu_);
  absl::Status Cancel(const std::string& run_id) ABSL_LOCKS_EXCLUDED(mu_);
  // The probe records of the run's reports (RunSpec.probes), each naming its stage.
  absl::StatusOr<std::vector<grail::v1::ProbeRecord>> Probes(const std::string& run_id) const
      ABSL_LOCKS_EXCLUDED(mu_);

  // Calls on_report for every report of the run so far and then for each new one, until the
  // run ends (OK) or `still_wanted` returns false (CANCELLED).
  absl::Status Watch(const std::string& run_id,
                     const std::function<bool(const grail::v1::StepReport&)>& on_report,
                     const std::function<bool()>& still_wanted) ABSL_LOCKS_EXCLUDED(mu_);

  // Cancels every active run (used on shutdown).
  void CancelAll() ABSL_LOCKS_EXCLUDED(mu_);

  // Restarts each run that was active
  // when the previous coordinator stopped: from its last committed checkpoint with
  // trainer.resume, under the same run id, its reports after that checkpoint dropped (those
  // steps are trained again, and counted once); FAILED with the reason when it has none.
  // Returns the ids of the runs resumed.
  std::vector<std::string> Recover() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  RunManager(RunManagerOptions options, ServiceClients clients, CoordinatorMetrics* metrics)
      : options_(std::move(options)), clients_(std::move(clients)), metrics_(metrics) {}

  struct RunRecord {
    grail::v1::Run run;
    std::vector<grail::v1::StepReport> reports;
    std::atomic<bool> cancelled{false};
    std::thread thread;
  };

  // The stages of a run (its spec resolved), each with its data loaded and checked.
  absl::StatusOr<std::vector<StagePlan>> PlanStages(const std::string& run_id, const grail::v1::RunSpec& spec) const;
  // Runs the record's stages in order to the run's end: finished stages (in
  // run.stage_checkpoints) are skipped, the stage run.last_checkpoint belongs to resumes
  // from it, and any other starts from the final checkpoint of the stage it follows.
  void Execute(RunRecord* record, std::vector<StagePlan> plan) ABSL_LOCKS_EXCLUDED(mu_);
  // Runs one stage with `spec` (fresh or resumed), surviving learner restarts.
  absl::Status ExecuteStage(RunRecord* record, const StagePlan& stage, grail::v1::RunSpec spec,
                            std::map<std::string, double>* summary) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends a report to the record (and the store).
  void AddReportLocked(RunRecord* record, const grail::v1::StepReport& report) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void PersistLocked(const RunRecord& record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the reports after the run's last checkpoint (a stage without a checkpoint of its
  // own: that stage's reports) and records a "recovered" event saying `why`; Execute then
  // resumes from that checkpoint (or starts the stage again).
  void PrepareResumeLocked(RunRecord* record, const std::string& why) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Learner restarts one run survives before it fails.
  static constexpr int kMaxRecoveriesPerRun = 8;
  bool Terminal(const grail::v1::Run& run) const;

  const RunManagerOptions options_;
  ServiceClients clients_;
  CoordinatorMetrics* metrics_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<RunRecord>> runs_ ABSL_GUARDED_BY(mu_);
  int64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RUN_MANAGER_H_
