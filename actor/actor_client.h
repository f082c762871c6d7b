#ifndef GRAIL_ACTOR_ACTOR_CLIENT_H_
#define GRAIL_ACTOR_ACTOR_CLIENT_H_

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/grpc_client.h"
#include "proto/grail/v1/actor.pb.h"

namespace grail::actor {

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
};

std::unique_ptr<ActorClient> NewGrpcActorClient(const ClientOptions& options);

}  // namespace grail::actor

#endif  // GRAIL_ACTOR_ACTOR_CLIENT_H_
