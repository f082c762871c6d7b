#ifndef GRAIL_ACTOR_ROLLOUT_ENGINE_H_
#define GRAIL_ACTOR_ROLLOUT_ENGINE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "proto/grail/v1/actor.pb.h"
#include "proto/grail/v1/common.pb.h"

namespace grail::actor {

// What one Generate call did.
struct RolloutStats {
  int64_t samples = 0;
  int64_t tokens = 0;           // response tokens generated
  int64_t prefix_reuses = 0;    // samples served from a shared prompt prefill (samples - prompts)
  double batch_occupancy = 0;   // mean fraction of max_batch_rows slots decoding per step
};

struct RolloutEngineOptions {
  // LibTorch intra-op threads (process-wide; set once at creation).
  int num_threads = 1;
  // Upper bound on prompts * group_size in one Generate call.
  int max_rows_per_request = 4096;
  // Sequences decoded together (KV-cache slots); finished ones free their slot.
  int max_batch_rows = 256;
  // Keep a packed copy of each weights version for the CPU matmuls
  // (model/packed_gemm.h): faster decoding for the weights' size in memory once more.
  bool pack_weights = true;
  // The samples of a prompt share its keys and values in the KV cache instead of copying
  // them (model::SamplingOptions::share_prefixes).
  bool share_prefixes = true;
  // Observers for metrics (optional): after each successful Generate, after each weights swap.
  std::function<void(const RolloutStats&)> on_generate;
  std::function<void(int64_t version)> on_weights;
};

// Generates samples with the currently loaded policy (continuous batching, prompt prefill
// shared by the samples of a group). Starts with no model; weights arrive
// as versioned safetensors blobs. Thread-safe: generation runs on a snapshot of the model,
// so a weights swap never disturbs a call in progress. Hides LibTorch from its users.
class RolloutEngine {
 public:
  static absl::StatusOr<std::unique_ptr<RolloutEngine>> Create(const RolloutEngineOptions& options);
  virtual ~RolloutEngine() = default;

  // Swaps to `blob` (already digest-checked) as `version`; the old model keeps serving on error.
  virtual absl::Status LoadWeights(std::string blob, int64_t version) = 0;

  // Generates request.group_size samples per prompt and calls `emit` for each finished one
  // (emit returning false cancels the rest). FAILED_PRECONDITION when no model is loaded;
  // INVALID_ARGUMENT naming the field for bad requests.
  virtual absl::Status Generate(const grail::v1::GenerateRequest& request,
                                const std::function<bool(grail::v1::Sample)>& emit) = 0;

  virtual grail::v1::ActorInfo Info() const = 0;
};

}  // namespace grail::actor

#endif  // GRAIL_ACTOR_ROLLOUT_ENGINE_H_
