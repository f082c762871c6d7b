#ifndef GRAIL_MODEL_VERSIONED_MODEL_H_
#define GRAIL_MODEL_VERSIONED_MODEL_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "model/transformer.h"

namespace grail::model {

// The model a service serves, replaced atomically by new weights versions. Readers take a
// snapshot (a shared_ptr), so a swap never disturbs a call in progress. New weights are
// staged into the model the previous swap retired (double buffering: two models resident)
// once no call holds it, so a weights update costs a parameter copy, not a model build.
// Thread-safe.
class VersionedModel {
 public:
  struct Snapshot {
    std::shared_ptr<CausalLm> model;  // null until the first load
    int64_t version = -1;
  };

  Snapshot Get() const ABSL_LOCKS_EXCLUDED(mu_);

  // Builds a model from a verified safetensors blob (see ModelToSafetensors) and swaps it
  // in. On any error the current model keeps serving. A version older than the current one
  // is FAILED_PRECONDITION.
  absl::Status Load(std::string blob, int64_t version) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  Snapshot current_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<CausalLm> spare_ ABSL_GUARDED_BY(mu_);  // the retired model, reused for staging
};

}  // namespace grail::model

#endif  // GRAIL_MODEL_VERSIONED_MODEL_H_
