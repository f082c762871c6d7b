#include "coordinator/weights_tracker.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/weights_stream.h"
#include "common/parallel.h"
#include "common/status_macros.h"

namespace grail::coordinator {

WeightsTracker::WeightsTracker(std::vector<std::shared_ptr<actor::ActorClient>> actors,
                               learner::LearnerClient* learner, CoordinatorMetrics* metrics, int max_staleness)
    : actors_(std::move(actors)),
      learner_(learner),
      metrics_(metrics),
      max_staleness_(std::max(0, max_staleness)),
      actor_versions_(actors_.size(), -1) {}

void WeightsTracker::ForgetActorVersions() {
  absl::MutexLock lock(&mu_);
  actor_versions_.assign(actors_.size(), -1);
}

WeightsPtr WeightsTracker::Prune(int step) {
  absl::MutexLock lock(&mu_);
  WeightsPtr newest = by_step_.empty() ? nullptr : by_step_.rbegin()->second;
  // Batches are never generated with weights older than the step before the oldest kept.
  const int oldest_needed = step - 1 - max_staleness_;
  while (!by_step_.empty() && by_step_.begin()->first < oldest_needed) by_step_.erase(by_step_.begin());
  return newest;
}

absl::Status WeightsTracker::Keep(int step, int64_t version) {
  const WeightsPtr previous = Prune(step);
  WeightsPtr weights = previous;
  if (previous == nullptr || previous->version != version) {
    ASSIGN_OR_RETURN(auto fetched, learner_->GetWeights(version));
    weights = std::make_shared<const learner::LearnerClient::Weights>(std::move(fetched));
  }
  absl::MutexLock lock(&mu_);
  by_step_[step] = std::move(weights);
  return absl::OkStatus();
}

namespace {

// One actor's stream-through upload: chunks queue up as they arrive from the learner and a
// thread of its own writes them, so a slow actor never holds up the fetch or the others.
struct Relay {
  size_t actor = 0;
  std::unique_ptr<actor::WeightsUpload> upload;
  absl::Mutex mu;
  std::deque<std::shared_ptr<const grail::v1::WeightsChunk>> queue ABSL_GUARDED_BY(mu);
  bool done ABSL_GUARDED_BY(mu) = false;   // no more chunks
  bool abort ABSL_GUARDED_BY(mu) = false;  // the fetch failed: cancel, do not finish
  absl::Status status;                     // the upload's outcome, once the thread ends

  bool Ready() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) { return done || !queue.empty(); }

  void Run() {
    while (true) {
      std::shared_ptr<const grail::v1::WeightsChunk> chunk;
      {
        absl::MutexLock lock(&mu, absl::Condition(this, &Relay::Ready));
        if (queue.empty()) {
          if (abort) {
            status = absl::AbortedError("weights fetch failed");
            upload.reset();  // cancels the stream: the actor keeps what it serves
            return;
          }
          break;
        }
        chunk = std::move(queue.front());
        queue.pop_front();
      }
      upload->Write(*chunk);  // after a broken write the rest is dropped; Finish says why
    }
    status = upload->Finish().status();
  }

  void Push(std::shared_ptr<const grail::v1::WeightsChunk> chunk) {
    absl::MutexLock lock(&mu);
    queue.push_back(std::move(chunk));
  }
  void End(bool failed) {
    absl::MutexLock lock(&mu);
    done = true;
    abort = failed;
  }
};

}  // namespace

absl::Status WeightsTracker::KeepAndSync(int step, int64_t version) {
  const WeightsPtr previous = Prune(step);
  if (previous != nullptr && previous->version == version) {
    RETURN_IF_ERROR(Keep(step, version));
    return SyncActors(previous);
  }
  std::vector<std::unique_ptr<Relay>> relays;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < actors_.size(); ++i) {
      if (actor_versions_[i] >= version) continue;
      auto relay = std::make_unique<Relay>();
      relay->actor = i;
      relays.push_back(std::move(relay));
    }
  }
  for (auto& r : relays) r->upload = actors_[r->actor]->StartWeightsUpload();
  relays.erase(std::remove_if(relays.begin(), relays.end(), [](const auto& r) { return r->upload == nullptr; }),
               relays.end());
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (auto& r : relays) threads.emplace_back([relay = r.get()] { relay->Run(); });
  absl::StatusOr<learner::LearnerClient::Weights> fetched =
      learner_->StreamWeights(version, grail::v1::WEIGHTS_PART_DEFAULT, [&](grail::v1::WeightsChunk chunk) {
        auto shared = std::make_shared<const grail::v1::WeightsChunk>(std::move(chunk));
        for (auto& r : relays) r->Push(shared);
      });
  for (auto& r : relays) r->End(/*failed=*/!fetched.ok());
  for (auto& t : threads) t.join();
  if (!relays.empty()) {
    // The fetch and the actors' loads overlap: the phase is the whole stream-through.
    metrics_->ObservePhase("actor_sync",
                           std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  if (!fetched.ok()) return fetched.status();
  // The stream's blob is not hashed on the way through: every actor it reached verified the
  // digest. When one did not take it whole (or none was behind), it is hashed here, so that
  // a stream that does not match its digest is the learner's error and is never kept.
  const bool verified_by_actors =
      !relays.empty() && std::all_of(relays.begin(), relays.end(), [](const auto& r) { return r->status.ok(); });
  if (!verified_by_actors && !fetched->digest.empty() && Sha256Hex(fetched->blob) != fetched->digest) {
    return absl::DataLossError(absl::StrCat("learner: weights version ", fetched->version,
                                            " do not match the digest their stream names"));
  }
  auto weights = std::make_shared<const learner::LearnerClient::Weights>(std::move(*fetched));
  {
    absl::MutexLock lock(&mu_);
    by_step_[step] = weights;
    for (const auto& r : relays) {
      if (r->status.ok()) actor_versions_[r->actor] = weights->version;
    }
    PublishActorVersions();
  }
  // The actors the stream did not bring up to date get the kept blob.
  return SyncActors(weights);
}

absl::Status LoadWeightsInto(const std::function<absl::Status(const std::string& blob, int64_t version)>& load,
                             const learner::LearnerClient::Weights& weights, const FrozenPartFn& frozen) {
  absl::Status loaded = load(weights.blob, weights.version);
  if (!absl::IsFailedPrecondition(loaded) || !absl::StrContains(loaded.message(), kNeedsFrozenPart)) return loaded;
  ASSIGN_OR_RETURN(std::shared_ptr<const std::string> part, frozen());
  RETURN_IF_ERROR(load(*part, weights.version));
  return load(weights.blob, weights.version);
}

absl::StatusOr<std::shared_ptr<const std::string>> WeightsTracker::FrozenPart() {
  absl::MutexLock lock(&frozen_mu_);
  if (frozen_ == nullptr) {
    auto fetched = learner_->GetWeights(0, grail::v1::WEIGHTS_PART_FROZEN);
    if (!fetched.ok()) {
      return absl::Status(fetched.status().code(),
                          absl::StrCat("weight sync: the frozen part: ", fetched.status().message()));
    }
    frozen_ = std::make_shared<const std::string>(std::move(fetched->blob));
  }
  return frozen_;
}

WeightsPtr WeightsTracker::After(int step) const {
  absl::MutexLock lock(&mu_);
  auto it = by_step_.find(step);
  return it == by_step_.end() ? nullptr : it->second;
}

absl::Status WeightsTracker::SyncActors(const WeightsPtr& weights) {
  if (weights == nullptr) return absl::InternalError("weight sync: no weights kept for this step");
  std::vector<size_t> behind;
  {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < actor_versions_.size(); ++i) {
      if (actor_versions_[i] < weights->version) behind.push_back(i);
    }
  }
  if (behind.empty()) return absl::OkStatus();
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<absl::Status> results(behind.size());
  // Failures are collected, not returned: an actor that misses this version is synced again
  // before the next batch and serves nothing until it catches up.
  (void)ParallelFor(results.size(), [&](size_t j) -> absl::Status {
    results[j] = LoadWeightsInto(
        [&](const std::string& blob, int64_t version) {
          return actors_[behind[j]]->LoadWeights(blob, version).status();
        },
        *weights, [this] { return FrozenPart(); });
    return absl::OkStatus();
  });
  metrics_->ObservePhase("actor_sync",
                         std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  absl::MutexLock lock(&mu_);
  absl::Status last_failure;
  for (size_t j = 0; j < behind.size(); ++j) {
    if (results[j].ok()) {
      actor_versions_[behind[j]] = weights->version;
    } else {
      last_failure = absl::Status(results[j].code(), absl::StrCat("actor ", behind[j], ": weight sync failed: ",
                                                                  results[j].message()));
    }
  }
  PublishActorVersions();
  int current = 0;
  for (int64_t v : actor_versions_) current += v == weights->version;
  if (current == 0) {
    return absl::Status(last_failure.code(), absl::StrCat("weight sync: no actor holds version ", weights->version,
                                                          "; last failure: ", last_failure.message()));
  }
  return absl::OkStatus();
}

void WeightsTracker::PublishActorVersions() {
  int64_t newest = -1;
  for (int64_t v : actor_versions_) newest = std::max(newest, v);
  int current = 0;
  for (size_t i = 0; i < actor_versions_.size(); ++i) {
    metrics_->SetActorVersion(static_cast<int>(i), static_cast<double>(actor_versions_[i]));
    current += actor_versions_[i] == newest;
  }
  metrics_->SetStaleActors(static_cast<double>(actor_versions_.size() - current));
}

std::vector<size_t> WeightsTracker::ActorsHolding(int64_t version) const {
  absl::MutexLock lock(&mu_);
  std::vector<size_t> out;
  for (size_t i = 0; i < actor_versions_.size(); ++i) {
    if (version < 0 ? actor_versions_[i] >= 0 : actor_versions_[i] == version) out.push_back(i);
  }
  return out;
}

int64_t WeightsTracker::NewestActorVersion() const {
  absl::MutexLock lock(&mu_);
  int64_t newest = -1;
  for (int64_t v : actor_versions_) newest = std::max(newest, v);
  return newest;
}

}  // namespace grail::coordinator
