#include "tests/local_cluster.h"

#include <stdlib.h>

#include <filesystem>

#include "gtest/gtest.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"

namespace grail::testing {
namespace {

std::vector<std::string> Concat(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LocalCluster>> LocalCluster::Start(const LocalClusterOptions& options) {
  std::unique_ptr<LocalCluster> c(new LocalCluster());
  c->data_root_ = options.data_root;
  if (c->data_root_.empty()) {
    std::string tmpl = ::testing::TempDir() + "grail_cluster_XXXXXX";
    if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
    c->data_root_ = tmpl;
    c->owns_data_root_ = true;
  }
  const auto& extra = options.extra_service_args;
  std::vector<std::string> actor_addrs;
  for (int i = 0; i < options.actors; ++i) {
    ASSIGN_OR_RETURN(auto a, ServiceProcess::Start("grail-actor", extra));
    actor_addrs.push_back(a->grpc_address());
    c->actors_.push_back(std::move(a));
  }
  const std::string threads = absl::StrCat("--threads=", options.learner_threads);
  ASSIGN_OR_RETURN(c->reward_, ServiceProcess::Start("grail-reward", Concat({"--data_root=" + c->data_root_}, extra)));
  ASSIGN_OR_RETURN(c->reference_, ServiceProcess::Start("grail-reference", Concat({threads}, extra)));
  std::vector<std::string> learner_args = {threads};
  learner_args.push_back("--data_root=" + c->data_root_);
  learner_args.insert(learner_args.end(), options.extra_learner_args.begin(), options.extra_learner_args.end());
  if (options.learner_ranks > 1) {
    ASSIGN_OR_RETURN(c->learners_, StartLearnerGroup(options.learner_ranks, Concat(learner_args, extra)));
  } else {
    ASSIGN_OR_RETURN(auto l, ServiceProcess::Start("grail-learner", Concat(learner_args, extra)));
    c->learners_.push_back(std::move(l));
  }
  std::vector<std::string> learner_addrs;
  for (const auto& l : c->learners_) learner_addrs.push_back(l->grpc_address());
  std::vector<std::string> coordinator_args = {
      "--actors=" + absl::StrJoin(actor_addrs, ","), "--reward=" + c->reward_->grpc_address(),
      "--reference=" + c->reference_->grpc_address(), "--learner=" + absl::StrJoin(learner_addrs, ","),
      "--rpc_timeout=60s"};
  coordinator_args.push_back("--data_root=" + c->data_root_);
  coordinator_args = Concat(Concat(coordinator_args, extra), options.extra_coordinator_args);
  ASSIGN_OR_RETURN(c->coordinator_, ServiceProcess::Start("grail-coordinator", coordinator_args));
  return c;
}

LocalCluster::~LocalCluster() {
  // Services first, so that nothing writes into the directory while it is removed.
  coordinator_.reset();
  learners_.clear();
  reference_.reset();
  reward_.reset();
  actors_.clear();
  if (owns_data_root_) {
    std::error_code ec;
    std::filesystem::remove_all(data_root_, ec);
  }
}

std::vector<ServiceProcess*> LocalCluster::all() {
  std::vector<ServiceProcess*> out;
  for (auto& a : actors_) out.push_back(a.get());
  for (auto* p : {reward_.get(), reference_.get()}) out.push_back(p);
  for (auto& l : learners_) out.push_back(l.get());
  out.push_back(coordinator_.get());
  return out;
}

std::unique_ptr<coordinator::RunClient> LocalCluster::NewRunClient() const {
  return coordinator::NewGrpcRunClient({coordinator_->grpc_address()});
}

}  // namespace grail::testing
