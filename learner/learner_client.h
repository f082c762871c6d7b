#ifndef GRAIL_LEARNER_LEARNER_CLIENT_H_
#define GRAIL_LEARNER_LEARNER_CLIENT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/grpc_client.h"
#include "proto/grail/v1/learner.pb.h"

namespace grail::learner {

// Talks to a learner (rank 0 of its group). Implementations are thread-safe.
class LearnerClient {
 public:
  struct Weights {
    std::string blob;  // verified against `digest`, except StreamWeights' (see there)
    int64_t version = -1;
    std::string digest;  // SHA-256 (hex) the learner sent; empty where not known
  };
  // Called with each chunk of a weights stream as it arrives, in order, after its framing
  // (version, offset, total, digest) was checked and before the whole blob's digest is.
  using ChunkSink = std::function<void(grail::v1::WeightsChunk)>;

  virtual ~LearnerClient() = default;
  virtual absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest& request) = 0;
  // InitModel without a version floor.
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::RunSpec& spec) {
    grail::v1::InitModelRequest request;
    *request.mutable_spec() = spec;
    return InitModel(request);
  }
  virtual absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(
      const grail::v1::SupervisedStepRequest& request) = 0;
  virtual absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(
      const grail::v1::TrainStepRequest& request) = 0;
  virtual absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStep(
      const grail::v1::PreferenceStepRequest& request) = 0;
  // `part`: learner.proto's WeightsPart (by default the trainable part of a model with
  // frozen parameters, else the whole model).
  virtual absl::StatusOr<Weights> GetWeights(int64_t min_version, grail::v1::WeightsPart part) = 0;
  absl::StatusOr<Weights> GetWeights(int64_t min_version) {
    return GetWeights(min_version, grail::v1::WEIGHTS_PART_DEFAULT);
  }
  // GetWeights that also hands every chunk to `sink` while the stream is received, so that
  // a caller can forward it to actors without waiting for the whole blob (stream-through
  // weight sync). The chunks' framing is checked, but the blob is not hashed here: the
  // receivers of the chunks verify the digest, and a caller whose receivers did not all
  // verify it checks the result against `digest` itself (the learner hashes once per
  // version, each final receiver once). The default (fakes) fetches with GetWeights and
  // then chunks the blob.
  virtual absl::StatusOr<Weights> StreamWeights(int64_t min_version, grail::v1::WeightsPart part,
                                                const ChunkSink& sink);
  virtual absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(
      const grail::v1::ComputeValuesRequest& request) = 0;
  // The policy's per-token log-probs (and each position's most likely token's) of the
  // request's sequences, with no update.
  virtual absl::StatusOr<grail::v1::ScoreSequencesResponse> ScoreSequences(
      const grail::v1::ScoreSequencesRequest& request) = 0;
  // Returns the checkpoint's path relative to the learner's data root (`dir` itself).
  // `run_state` is kept in the checkpoint and comes back from InitModel from it.
  virtual absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) = 0;
  // Waits until the learner (every rank of a group) answers its health check SERVING, for
  // at most `timeout`; UNAVAILABLE naming the rank that never did. Used to bring a run back
  // after a learner restart. The default (fakes) is ready at once.
  virtual absl::Status WaitUntilServing(absl::Duration timeout) { return absl::OkStatus(); }
};

std::unique_ptr<LearnerClient> NewGrpcLearnerClient(const ClientOptions& options);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_LEARNER_CLIENT_H_
