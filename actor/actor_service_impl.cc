#include "actor/actor_service_impl.h"

#include "common/grpc_status.h"
#include "common/security.h"
#include "common/weights_stream.h"

namespace grail::actor {

grpc::Status ActorServiceImpl::Generate(grpc::ServerContext* context,
                                        const grail::v1::GenerateRequest* request,
                                        grpc::ServerWriter<grail::v1::Sample>* writer) {
  GRAIL_AUTHORIZE(auth_, context);
  return ToGrpcStatus(engine_->Generate(*request, [&](grail::v1::Sample sample) {
    return !context->IsCancelled() && writer->Write(sample);
  }));
}

grpc::Status ActorServiceImpl::LoadWeights(grpc::ServerContext* context,
                                           grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                                           grail::v1::LoadWeightsResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  return ToGrpcStatus(ServeWeightsUpload(
      reader, [this](std::string blob, int64_t version) { return engine_->LoadWeights(std::move(blob), version); },
      response));
}

grpc::Status ActorServiceImpl::GetInfo(grpc::ServerContext* context, const grail::v1::ActorInfoRequest*,
                                       grail::v1::ActorInfo* response) {
  GRAIL_AUTHORIZE(auth_, context);
  *response = engine_->Info();
  return grpc::Status::OK;
}

}  // namespace grail::actor
