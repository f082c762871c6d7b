#include "learner/learner_service_impl.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/grpc_status.h"
#include "common/security.h"
#include "common/weights_stream.h"

namespace grail::learner {

grpc::Status LearnerServiceImpl::InitModel(grpc::ServerContext* context,
                                           const grail::v1::InitModelRequest* request,
                                           grail::v1::InitModelResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  auto result = trainer_->InitModel(*request);
  if (!result.ok()) return Reply(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::SupervisedStep(grpc::ServerContext* context,
                                                const grail::v1::SupervisedStepRequest* request,
                                                grail::v1::TrainStepResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  const absl::Time start = absl::Now();
  auto result = trainer_->SupervisedStep(*request);
  if (!result.ok()) return Reply(result.status());
  if (on_step_ && !request->eval_only()) on_step_("sft", *result, absl::ToDoubleSeconds(absl::Now() - start));
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::TrainStep(grpc::ServerContext* context,
                                           const grail::v1::TrainStepRequest* request,
                                           grail::v1::TrainStepResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  const absl::Time start = absl::Now();
  auto result = trainer_->TrainStep(*request);
  if (!result.ok()) return Reply(result.status());
  if (on_step_) on_step_(request->critic_only() ? "critic" : "rl", *result, absl::ToDoubleSeconds(absl::Now() - start));
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::PreferenceStep(grpc::ServerContext* context,
                                                const grail::v1::PreferenceStepRequest* request,
                                                grail::v1::TrainStepResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  const absl::Time start = absl::Now();
  auto result = trainer_->PreferenceStep(*request);
  if (!result.ok()) return Reply(result.status());
  if (on_step_ && !request->eval_only()) on_step_("preference", *result, absl::ToDoubleSeconds(absl::Now() - start));
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::ComputeValues(grpc::ServerContext* context,
                                               const grail::v1::ComputeValuesRequest* request,
                                               grail::v1::ComputeValuesResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  auto result = trainer_->ComputeValues(*request);
  if (!result.ok()) return Reply(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::ScoreSequences(grpc::ServerContext* context,
                                                const grail::v1::ScoreSequencesRequest* request,
                                                grail::v1::ScoreSequencesResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  auto result = trainer_->ScoreSequences(*request);
  if (!result.ok()) return Reply(result.status());
  *response = std::move(*result);
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::SaveCheckpoint(grpc::ServerContext* context,
                                                const grail::v1::SaveCheckpointRequest* request,
                                                grail::v1::SaveCheckpointResponse* response) {
  GRAIL_AUTHORIZE(auth_, context);
  auto path = trainer_->SaveCheckpoint(request->dir(), request->run_state());
  if (!path.ok()) return Reply(path.status());
  // The path as the request named it, relative to the data root; never the server's own.
  response->set_path(request->dir());
  return grpc::Status::OK;
}

grpc::Status LearnerServiceImpl::GetWeights(grpc::ServerContext* context,
                                            const grail::v1::GetWeightsRequest* request,
                                            grpc::ServerWriter<grail::v1::WeightsChunk>* writer) {
  GRAIL_AUTHORIZE(auth_, context);
  auto weights = trainer_->GetWeights(request->part());
  if (!weights.ok()) return Reply(weights.status());
  if (weights->version < request->min_version()) {
    return Reply(absl::FailedPreconditionError(absl::StrCat(
        "min_version: ", request->min_version(), " is newer than the current version ",
        weights->version)));
  }
  return Reply(WriteWeightsStream(writer, weights->blob, weights->version));
}

}  // namespace grail::learner
