#ifndef GRAIL_ACTOR_ACTOR_SERVICE_IMPL_H_
#define GRAIL_ACTOR_ACTOR_SERVICE_IMPL_H_

#include "actor/rollout_engine.h"
#include "common/security.h"
#include "proto/grail/v1/actor.grpc.pb.h"

namespace grail::actor {

// gRPC adapter over a RolloutEngine: proto in, status out. Stateless; the engine must
// outlive it.
class ActorServiceImpl final : public grail::v1::ActorService::Service {
 public:
  // `auth` checks every call first; it and the engine outlive the service.
  ActorServiceImpl(const Authenticator* auth, RolloutEngine* engine) : auth_(auth), engine_(engine) {}

  grpc::Status Generate(grpc::ServerContext* context, const grail::v1::GenerateRequest* request,
                        grpc::ServerWriter<grail::v1::Sample>* writer) override;
  grpc::Status LoadWeights(grpc::ServerContext* context,
                           grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                           grail::v1::LoadWeightsResponse* response) override;
  grpc::Status GetInfo(grpc::ServerContext* context, const grail::v1::ActorInfoRequest* request,
                       grail::v1::ActorInfo* response) override;

 private:
  const Authenticator* auth_;
  RolloutEngine* engine_;
};

}  // namespace grail::actor

#endif  // GRAIL_ACTOR_ACTOR_SERVICE_IMPL_H_
