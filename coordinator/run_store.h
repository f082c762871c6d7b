#ifndef GRAIL_COORDINATOR_RUN_STORE_H_
#define GRAIL_COORDINATOR_RUN_STORE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "proto/grail/v1/coordinator.pb.h"

struct sqlite3;

namespace grail::coordinator {

// The coordinator's durable control plane: runs (spec, state, error, summary, last
// committed checkpoint), their step reports and the run-id counter, in one SQLite database
// with write-ahead logging. Every write is its own transaction, so a coordinator killed at
// any point reopens the database as of its last completed write. Thread-safe.
class RunStore {
 public:
  // Opens (creating if needed) the database at `path`. FAILED_PRECONDITION for a database
  // written by a newer schema than this binary knows.
  static absl::StatusOr<std::unique_ptr<RunStore>> Open(const std::string& path);
  ~RunStore();

  static constexpr int kSchemaVersion = 1;

  // The next run id ("run-000042"); ids never repeat, across restarts too.
  absl::StatusOr<std::string> NextRunId() ABSL_LOCKS_EXCLUDED(mu_);
  // Inserts or replaces the run's record (its last_report included).
  absl::Status PutRun(const grail::v1::Run& run) ABSL_LOCKS_EXCLUDED(mu_);
  // Appends report `index` (0-based, in the order reports were made) of a run.
  absl::Status PutReport(const std::string& run_id, int64_t index, const grail::v1::StepReport& report)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Drops a run's reports from `index` on (steps that a resumed run takes again).
  absl::Status TruncateReports(const std::string& run_id, int64_t index) ABSL_LOCKS_EXCLUDED(mu_);

  struct StoredRun {
    grail::v1::Run run;
    std::vector<grail::v1::StepReport> reports;
  };
  // Every run in id order, with its reports.
  absl::StatusOr<std::vector<StoredRun>> LoadAll() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  explicit RunStore(sqlite3* db) : db_(db) {}
  absl::Status Exec(const char* sql) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  absl::Mutex mu_;
  sqlite3* const db_;
};

}  // namespace grail::coordinator

#endif  // GRAIL_COORDINATOR_RUN_STORE_H_
