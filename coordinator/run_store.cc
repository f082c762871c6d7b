#include "coordinator/run_store.h"

#include <sqlite3.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace grail::coordinator {
namespace {

absl::Status SqlError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("run store: ", what, ": ", sqlite3_errmsg(db)));
}

// A prepared statement, finalized on scope exit.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) { ok_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) == SQLITE_OK; }
  ~Statement() { sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  bool ok() const { return ok_; }
  sqlite3_stmt* get() { return stmt_; }
  void Bind(int i, const std::string& text) { sqlite3_bind_text(stmt_, i, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT); }
  void BindBlob(int i, const std::string& bytes) {
    sqlite3_bind_blob(stmt_, i, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  }
  void Bind(int i, int64_t v) { sqlite3_bind_int64(stmt_, i, v); }
  absl::Status Done(absl::string_view what) {
    return sqlite3_step(stmt_) == SQLITE_DONE ? absl::OkStatus() : SqlError(db_, what);
  }
  static std::string Blob(sqlite3_stmt* s, int col) {
    const void* p = sqlite3_column_blob(s, col);
    return p == nullptr ? std::string() : std::string(static_cast<const char*>(p), sqlite3_column_bytes(s, col));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  bool ok_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RunStore>> RunStore::Open(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    absl::Status s = absl::FailedPreconditionError(absl::StrCat("run store: cannot open the database: ",
                                                                db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<RunStore> store(new RunStore(db));
  absl::MutexLock lock(&store->mu_);
  sqlite3_busy_timeout(db, 5000);
  RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  // FULL: a committed transaction survives a power loss, not only a process crash.
  RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  int64_t version = 0;
  {
    Statement st(db, "PRAGMA user_version");
    if (!st.ok() || sqlite3_step(st.get()) != SQLITE_ROW) return SqlError(db, "reading the schema version");
    version = sqlite3_column_int64(st.get(), 0);
  }
  if (version > kSchemaVersion) {
    return absl::FailedPreconditionError(absl::StrCat("run store: the database has schema version ", version,
                                                      "; this coordinator knows up to ", kSchemaVersion));
  }
  if (version < 1) {
    RETURN_IF_ERROR(store->Exec(
        "BEGIN;"
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        "INSERT OR IGNORE INTO meta VALUES ('next_run_id', 1);"
        "CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, run BLOB NOT NULL);"
        "CREATE TABLE IF NOT EXISTS reports (run_id TEXT NOT NULL, idx INTEGER NOT NULL, report BLOB NOT NULL,"
        "  PRIMARY KEY (run_id, idx));"
        "PRAGMA user_version=1;"
        "COMMIT;"));
  }
  return store;
}

RunStore::~RunStore() { sqlite3_close(db_); }

absl::Status RunStore::Exec(const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status s = absl::InternalError(absl::StrCat("run store: ", error ? error : "error"));
    sqlite3_free(error);
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return s;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RunStore::NextRunId() {
  absl::MutexLock lock(&mu_);
  RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  int64_t next = 0;
  {
    Statement st(db_, "SELECT value FROM meta WHERE key = 'next_run_id'");
    if (!st.ok() || sqlite3_step(st.get()) != SQLITE_ROW) {
      Exec("ROLLBACK").IgnoreError();
      return SqlError(db_, "reading the run-id counter");
    }
    next = sqlite3_column_int64(st.get(), 0);
  }
  {
    Statement st(db_, "UPDATE meta SET value = ? WHERE key = 'next_run_id'");
    st.Bind(1, next + 1);
    absl::Status s = st.ok() ? st.Done("advancing the run-id counter") : SqlError(db_, "advancing the run-id counter");
    if (!s.ok()) {
      Exec("ROLLBACK").IgnoreError();
      return s;
    }
  }
  RETURN_IF_ERROR(Exec("COMMIT"));
  return absl::StrFormat("run-%06d", next);
}

absl::Status RunStore::PutRun(const grail::v1::Run& run) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "INSERT OR REPLACE INTO runs (run_id, run) VALUES (?, ?)");
  if (!st.ok()) return SqlError(db_, "storing a run");
  st.Bind(1, run.run_id());
  st.BindBlob(2, run.SerializeAsString());
  return st.Done("storing a run");
}

absl::Status RunStore::PutReport(const std::string& run_id, int64_t index, const grail::v1::StepReport& report) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "INSERT OR REPLACE INTO reports (run_id, idx, report) VALUES (?, ?, ?)");
  if (!st.ok()) return SqlError(db_, "storing a report");
  st.Bind(1, run_id);
  st.Bind(2, index);
  st.BindBlob(3, report.SerializeAsString());
  return st.Done("storing a report");
}

absl::Status RunStore::TruncateReports(const std::string& run_id, int64_t index) {
  absl::MutexLock lock(&mu_);
  Statement st(db_, "DELETE FROM reports WHERE run_id = ? AND idx >= ?");
  if (!st.ok()) return SqlError(db_, "dropping reports");
  st.Bind(1, run_id);
  st.Bind(2, index);
  return st.Done("dropping reports");
}

absl::StatusOr<std::vector<RunStore::StoredRun>> RunStore::LoadAll() {
  absl::MutexLock lock(&mu_);
  std::vector<StoredRun> out;
  {
    Statement st(db_, "SELECT run FROM runs ORDER BY run_id");
    if (!st.ok()) return SqlError(db_, "reading runs");
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      StoredRun r;
      if (!r.run.ParseFromString(Statement::Blob(st.get(), 0))) {
        return absl::DataLossError("run store: a stored run does not parse");
      }
      out.push_back(std::move(r));
    }
    if (rc != SQLITE_DONE) return SqlError(db_, "reading runs");
  }
  for (auto& r : out) {
    Statement st(db_, "SELECT report FROM reports WHERE run_id = ? ORDER BY idx");
    if (!st.ok()) return SqlError(db_, "reading reports");
    st.Bind(1, r.run.run_id());
    int rc;
    while ((rc = sqlite3_step(st.get())) == SQLITE_ROW) {
      grail::v1::StepReport report;
      if (!report.ParseFromString(Statement::Blob(st.get(), 0))) {
        return absl::DataLossError(absl::StrCat("run store: a report of ", r.run.run_id(), " does not parse"));
      }
      r.reports.push_back(std::move(report));
    }
    if (rc != SQLITE_DONE) return SqlError(db_, "reading reports");
  }
  return out;
}

}  // namespace grail::coordinator
