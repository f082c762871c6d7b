#ifndef GRAIL_REFERENCE_REFERENCE_CLIENT_H_
#define GRAIL_REFERENCE_REFERENCE_CLIENT_H_

#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/grpc_client.h"
#include "proto/grail/v1/reference.pb.h"

namespace grail::reference {

// Talks to the reference scorer. Implementations are thread-safe.
class ReferenceClient {
 public:
  virtual ~ReferenceClient() = default;
  virtual absl::StatusOr<grail::v1::LogProbsResponse> ComputeLogProbs(
      const grail::v1::LogProbsRequest& request) = 0;
  virtual absl::StatusOr<grail::v1::LoadWeightsResponse> LoadWeights(absl::string_view blob,
                                                                     int64_t version) = 0;
};

std::unique_ptr<ReferenceClient> NewGrpcReferenceClient(const ClientOptions& options);

}  // namespace grail::reference

#endif  // GRAIL_REFERENCE_REFERENCE_CLIENT_H_
