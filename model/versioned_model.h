#ifndef GRAIL_MODEL_VERSIONED_MODEL_H_
#define GRAIL_MODEL_VERSIONED_MODEL_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "model/safetensors.h"
#include "model/transformer.h"

namespace grail::model {

// The model a service serves, replaced atomically by new weights versions. Readers take a
// snapshot (a shared_ptr), so a swap never disturbs a call in progress. New weights are
// staged into the model the previous swap retired (double buffering: two models resident)
// once no call holds it, so a weights update costs a parameter copy, not a model build.
// Thread-safe.
class VersionedModel {
 public:
  // pack_for_inference: every model staged packs its weights for inference
  // (CausalLmImpl::PackForInference; a decoding actor's choice, one more copy of the
  // weights for matmuls that skip BLAS's per-call packing).
  explicit VersionedModel(bool pack_for_inference = false) : pack_for_inference_(pack_for_inference) {}

  struct Snapshot {
    std::shared_ptr<CausalLm> model;  // null until the first load
    int64_t version = -1;
  };

  Snapshot Get() const ABSL_LOCKS_EXCLUDED(mu_);

  // Builds a model from a verified safetensors blob (see ModelToSafetensors) and swaps it
  // in. On any error the current model keeps serving. A version older than the current one
  // is FAILED_PRECONDITION.
  //
  // Parts (model/checkpoint.h, WeightsPart): a frozen part is kept, not served, until a
  // trainable part completes it. A trainable part becomes a model whose frozen parameters
  // are those of the serving model, the retired one or the kept frozen part with the same
  // digest, shared rather than copied (the base is resident once, whatever the number of
  // versions); with none of them it is FAILED_PRECONDITION (kNeedsFrozenPart).
  absl::Status Load(std::string blob, int64_t version) ABSL_LOCKS_EXCLUDED(mu_);

  // The frozen digest of the serving model ("" for a whole model or none).
  std::string frozen_digest() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  struct Held {
    std::shared_ptr<CausalLm> model;
    std::string frozen_digest;  // "" when loaded whole
  };
  absl::Status LoadFrozen(const SafetensorsFile& file, const std::string& digest) ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Held> StageTrainable(const SafetensorsFile& file, const std::string& digest)
      ABSL_LOCKS_EXCLUDED(mu_);
  absl::StatusOr<Held> StageWhole(const SafetensorsFile& file) ABSL_LOCKS_EXCLUDED(mu_);

  const bool pack_for_inference_;
  mutable absl::Mutex mu_;
  Snapshot current_ ABSL_GUARDED_BY(mu_);
  std::string current_digest_ ABSL_GUARDED_BY(mu_);
  Held spare_ ABSL_GUARDED_BY(mu_);   // the retired model, reused for staging
  Held frozen_ ABSL_GUARDED_BY(mu_);  // a frozen part waiting for its trainable part
};

}  // namespace grail::model

#endif  // GRAIL_MODEL_VERSIONED_MODEL_H_
