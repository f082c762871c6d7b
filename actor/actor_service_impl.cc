#include "actor/actor_service_impl.h"

#include "common/grpc_status.h"
#include "common/weights_stream.h"

namespace grail::actor {

grpc::Status ActorServiceImpl::Generate(grpc::ServerContext* context,
                                        const grail::v1::GenerateRequest* request,
                                        grpc::ServerWriter<grail::v1::Sample>* writer) {
  return ToGrpcStatus(engine_->Generate(*request, [&](grail::v1::Sample sample) {
    return !context->IsCancelled() && writer->Write(sample);
  }));
}

grpc::Status ActorServiceImpl::LoadWeights(grpc::ServerContext*,
                                           grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                                           grail::v1::LoadWeightsResponse* response) {
  absl::StatusOr<ReceivedWeights> weights = ReadWeightsStream(reader);
  if (!weights.ok()) return ToGrpcStatus(weights.status());
  const int64_t bytes = static_cast<int64_t>(weights->blob.size());
  absl::Status status = engine_->LoadWeights(std::move(weights->blob), weights->version);
  if (!status.ok()) return ToGrpcStatus(status);
  response->set_version(weights->version);
  response->set_bytes_received(bytes);
  return grpc::Status::OK;
}

grpc::Status ActorServiceImpl::GetInfo(grpc::ServerContext*, const grail::v1::ActorInfoRequest*,
                                       grail::v1::ActorInfo* response) {
  *response = engine_->Info();
  return grpc::Status::OK;
}

}  // namespace grail::actor
