#ifndef GRAIL_REFERENCE_REFERENCE_SERVICE_IMPL_H_
#define GRAIL_REFERENCE_REFERENCE_SERVICE_IMPL_H_

#include "proto/grail/v1/reference.grpc.pb.h"
#include "reference/reference_scorer.h"
#include "common/security.h"

namespace grail::reference {

// gRPC adapter over a ReferenceScorer. Stateless; the scorer must outlive it.
class ReferenceServiceImpl final : public grail::v1::ReferenceService::Service {
 public:
  // `auth` checks every call first; it and the scorer outlive the service.
  ReferenceServiceImpl(const Authenticator* auth, ReferenceScorer* scorer) : auth_(auth), scorer_(scorer) {}

  grpc::Status ComputeLogProbs(grpc::ServerContext* context, const grail::v1::LogProbsRequest* request,
                               grail::v1::LogProbsResponse* response) override;
  grpc::Status LoadWeights(grpc::ServerContext* context,
                           grpc::ServerReader<grail::v1::WeightsChunk>* reader,
                           grail::v1::LoadWeightsResponse* response) override;

 private:
  const Authenticator* auth_;
  ReferenceScorer* scorer_;
};

}  // namespace grail::reference

#endif  // GRAIL_REFERENCE_REFERENCE_SERVICE_IMPL_H_
