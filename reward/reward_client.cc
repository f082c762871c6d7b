#include "reward/reward_client.h"

#include "common/grpc_status.h"
#include "common/weights_stream.h"
#include "proto/grail/v1/reward.grpc.pb.h"

namespace grail::reward {
namespace {

class GrpcRewardClient : public RewardClient {
 public:
  explicit GrpcRewardClient(const ClientOptions& options)
      : options_(options), stub_(grail::v1::RewardService::NewStub(MakeChannel(options))) {}

  absl::StatusOr<grail::v1::ScoreResponse> Score(const grail::v1::ScoreRequest& request) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::ScoreResponse response;
    absl::Status status = FromGrpcStatus(stub_->Score(&context, request, &response), "reward", options_.target);
    if (!status.ok()) return status;
    return response;
  }

  absl::StatusOr<grail::v1::LoadWeightsResponse> LoadRewardModel(const std::string& blob, int64_t version) override {
    grpc::ClientContext context;
    SetTimeout(&context, options_.timeout);
    grail::v1::LoadWeightsResponse response;
    auto writer = stub_->LoadRewardModel(&context, &response);
    absl::Status status = NamePeer(UploadWeights(writer.get(), blob, version), "reward", options_.target);
    if (!status.ok()) return status;
    return response;
  }

 private:
  ClientOptions options_;
  std::unique_ptr<grail::v1::RewardService::Stub> stub_;
};

}  // namespace

std::unique_ptr<RewardClient> NewGrpcRewardClient(const ClientOptions& options) {
  return std::make_unique<GrpcRewardClient>(options);
}

}  // namespace grail::reward
