#ifndef GRAIL_LEARNER_LEARNER_SERVICE_IMPL_H_
#define GRAIL_LEARNER_LEARNER_SERVICE_IMPL_H_

#include <functional>
#include <string>

#include "common/grpc_status.h"
#include "common/paths.h"
#include "learner/trainer.h"
#include "proto/grail/v1/learner.grpc.pb.h"
#include "common/security.h"

namespace grail::learner {

// gRPC adapter over a Trainer. Stateless; the trainer must outlive it.
class LearnerServiceImpl final : public grail::v1::LearnerService::Service {
 public:
  // Called after each successful step: kind is "sft", "rl" or "critic".
  using StepObserver =
      std::function<void(const std::string& kind, const grail::v1::TrainStepResponse& response, double seconds)>;

  // `data_root` (the trainer's) is taken out of every error message a client sees. `auth`
  // checks every call first; it and the trainer outlive the service.
  LearnerServiceImpl(const Authenticator* auth, Trainer* trainer, std::string data_root,
                     StepObserver on_step = nullptr)
      : auth_(auth), trainer_(trainer), data_root_(std::move(data_root)), on_step_(std::move(on_step)) {}

  grpc::Status InitModel(grpc::ServerContext* context, const grail::v1::InitModelRequest* request,
                         grail::v1::InitModelResponse* response) override;
  grpc::Status SupervisedStep(grpc::ServerContext* context,
                              const grail::v1::SupervisedStepRequest* request,
                              grail::v1::TrainStepResponse* response) override;
  grpc::Status TrainStep(grpc::ServerContext* context, const grail::v1::TrainStepRequest* request,
                         grail::v1::TrainStepResponse* response) override;
  grpc::Status PreferenceStep(grpc::ServerContext* context, const grail::v1::PreferenceStepRequest* request,
                              grail::v1::TrainStepResponse* response) override;
  grpc::Status ComputeValues(grpc::ServerContext* context, const grail::v1::ComputeValuesRequest* request,
                             grail::v1::ComputeValuesResponse* response) override;
  grpc::Status ScoreSequences(grpc::ServerContext* context, const grail::v1::ScoreSequencesRequest* request,
                              grail::v1::ScoreSequencesResponse* response) override;
  grpc::Status SaveCheckpoint(grpc::ServerContext* context, const grail::v1::SaveCheckpointRequest* request,
                              grail::v1::SaveCheckpointResponse* response) override;
  grpc::Status GetWeights(grpc::ServerContext* context, const grail::v1::GetWeightsRequest* request,
                          grpc::ServerWriter<grail::v1::WeightsChunk>* writer) override;

 private:
  const Authenticator* auth_;
  Trainer* trainer_;
  std::string data_root_;
  StepObserver on_step_;

  grpc::Status Reply(const absl::Status& status) const { return ToGrpcStatus(WithoutRoot(status, data_root_)); }
};

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_LEARNER_SERVICE_IMPL_H_
