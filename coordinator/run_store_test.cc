#include "coordinator/run_store.h"

#include <unistd.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::coordinator {
namespace {

std::string TempDb() {
  std::string tmpl = ::testing::TempDir() + "grail_store_XXXXXX";
  return std::string(mkdtemp(tmpl.data())) + "/runs.sqlite";
}

TEST(RunStoreTest, RunsReportsAndIdsSurviveReopening) {
  const std::string path = TempDb();
  {
    auto store = RunStore::Open(path);
    ASSERT_TRUE(store.ok()) << store.status();
    EXPECT_EQ(*(*store)->NextRunId(), "run-000001");
    EXPECT_EQ(*(*store)->NextRunId(), "run-000002");
    grail::v1::Run run;
    run.set_run_id("run-000002");
    run.set_state(grail::v1::RUN_STATE_RUNNING);
    run.mutable_spec()->mutable_trainer()->set_total_steps(7);
    run.set_last_checkpoint("run-000002/step-000004");
    ASSERT_TRUE((*store)->PutRun(run).ok());
    for (int i = 0; i < 5; ++i) {
      grail::v1::StepReport r;
      r.set_step(i);
      ASSERT_TRUE((*store)->PutReport("run-000002", i, r).ok());
    }
    ASSERT_TRUE((*store)->TruncateReports("run-000002", 3).ok());
  }
  auto store = RunStore::Open(path);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ(*(*store)->NextRunId(), "run-000003");  // ids never repeat
  auto all = (*store)->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 1u);
  EXPECT_EQ((*all)[0].run.spec().trainer().total_steps(), 7);
  EXPECT_EQ((*all)[0].run.last_checkpoint(), "run-000002/step-000004");
  ASSERT_EQ((*all)[0].reports.size(), 3u);
  EXPECT_EQ((*all)[0].reports[2].step(), 2);
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

TEST(RunStoreTest, RefusesANewerSchemaAndAFileThatIsNotADatabase) {
  const std::string path = TempDb();
  {
    auto store = RunStore::Open(path);
    ASSERT_TRUE(store.ok());
  }
  {
    std::string cmd = "sqlite3 '" + path + "' 'PRAGMA user_version=99' 2>/dev/null";
    if (std::system(cmd.c_str()) == 0) {
      auto newer = RunStore::Open(path);
      EXPECT_EQ(newer.status().code(), absl::StatusCode::kFailedPrecondition);
    }
  }
  const std::string junk = path + ".junk";
  FILE* f = fopen(junk.c_str(), "w");
  fputs("this is not a database, just text long enough to be read as a header.......", f);
  fclose(f);
  EXPECT_FALSE(RunStore::Open(junk).ok());
  std::filesystem::remove_all(std::filesystem::path(path).parent_path());
}

}  // namespace
}  // namespace grail::coordinator
