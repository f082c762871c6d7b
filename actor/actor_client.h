#ifndef GRAIL_ACTOR_ACTOR_CLIENT_H_
#define GRAIL_ACTOR_ACTOR_CLIENT_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/grpc_client.h"
#include "proto/grail/v1/actor.pb.h"

namespace grail::actor {

// One LoadWeights stream written chunk by chunk (stream-through weight sync: chunks are
// forwarded as they arrive from the learner). Not thread-safe; one writer.
class WeightsUpload {
 public:
  virtual ~WeightsUpload() = default;
  // false once the stream is broken (Finish says why); later writes are dropped.
  virtual bool Write(const grail::v1::WeightsChunk& chunk) = 0;
  // Ends the stream; OK once the actor verified the blob's digest and serves the version. A
  // short or corrupt stream is refused by the actor, which keeps serving what it had.
  virtual absl::StatusOr<grail::v1::LoadWeightsResponse> Finish() = 0;
};

// Talks to one rollout actor. Implementations are thread-safe.
class ActorClient {
 public:
  virtual ~ActorClient() = default;

  // Streams samples into `on_sample` until generation completes or fails.
  virtual absl::Status Generate(const grail::v1::GenerateRequest& request,
                                const std::function<void(grail::v1::Sample)>& on_sample) = 0;
  // Streams a weights blob as `version`; OK once the actor serves it.
  virtual absl::StatusOr<grail::v1::LoadWeightsResponse> LoadWeights(absl::string_view blob,
                                                                     int64_t version) = 0;
  virtual absl::StatusOr<grail::v1::ActorInfo> GetInfo() = 0;
  // Opens a LoadWeights stream to write chunk by chunk; null when this client cannot (the
  // caller then sends the whole blob with LoadWeights).
  virtual std::unique_ptr<WeightsUpload> StartWeightsUpload() { return nullptr; }
};

std::unique_ptr<ActorClient> NewGrpcActorClient(const ClientOptions& options);

}  // namespace grail::actor

#endif  // GRAIL_ACTOR_ACTOR_CLIENT_H_
