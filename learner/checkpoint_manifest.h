#ifndef GRAIL_LEARNER_CHECKPOINT_MANIFEST_H_
#define GRAIL_LEARNER_CHECKPOINT_MANIFEST_H_

#include <string>

#include "absl/status/status.h"

namespace grail::learner {

// Checks a model directory before anything in it is loaded. A grail checkpoint (one that
// has a manifest.json or a COMMITTED marker) must have both, COMMITTED must hold the
// manifest's SHA-256, and every file the manifest lists must match its SHA-256; anything
// else is DATA_LOSS naming the file as `display_dir`/NAME (the path the run spec gave, never
// the server's own). A directory with neither file is a plain Hugging Face model directory
// and passes: it has nothing to check against.
absl::Status VerifyCheckpointDir(const std::string& dir, const std::string& display_dir);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_CHECKPOINT_MANIFEST_H_
