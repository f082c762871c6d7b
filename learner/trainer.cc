#include "learner/trainer.h"

#include <ATen/Parallel.h>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/paths.h"
#include "common/status_macros.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "model/transformer.h"

namespace grail::learner {
namespace {

class TorchTrainer : public Trainer {
 public:
  explicit TorchTrainer(const TrainerOptions& options) : options_(options) {}

  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::RunSpec& spec) override {
    std::shared_ptr<model::CausalLm> built;
    if (!spec.model().path().empty()) {
      ASSIGN_OR_RETURN(std::string dir,
                       ResolveUnderRoot(options_.data_root, spec.model().path(), "model.path"));
      ASSIGN_OR_RETURN(model::CausalLm loaded, model::LoadModelDir(dir));
      built = std::make_shared<model::CausalLm>(std::move(loaded));
    } else {
      model::ModelConfig config = model::ModelConfigFromProto(spec.model().config());
      absl::Status valid = config.Validate();
      if (!valid.ok()) {
        return absl::InvalidArgumentError(absl::StrCat("model.config.", valid.message()));
      }
      try {
        built = std::make_shared<model::CausalLm>(config);
        (*built)->InitWeights(spec.model().init_seed());
      } catch (const c10::Error& e) {
        return absl::InternalError(absl::StrCat("model init failed: ", e.what_without_backtrace()));
      }
    }
    grail::v1::InitModelResponse response;
    response.set_num_parameters((*built)->NumParameters());
    absl::MutexLock lock(&mu_);
    model_ = std::move(built);
    version_ = 0;
    response.set_weights_version(version_);
    return response;
  }

  absl::StatusOr<Weights> GetWeights() override {
    absl::MutexLock lock(&mu_);
    if (model_ == nullptr) return absl::FailedPreconditionError("no model: call InitModel first");
    Weights w;
    ASSIGN_OR_RETURN(w.blob, model::ModelToSafetensors(*model_));
    w.version = version_;
    return w;
  }

  absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(const grail::v1::TrainStepRequest&) override {
    return absl::UnimplementedError("TrainStep is not implemented yet");
  }

 private:
  TrainerOptions options_;
  absl::Mutex mu_;
  std::shared_ptr<model::CausalLm> model_ ABSL_GUARDED_BY(mu_);
  int64_t version_ ABSL_GUARDED_BY(mu_) = -1;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Trainer>> Trainer::Create(const TrainerOptions& options) {
  if (options.num_threads <= 0) return absl::InvalidArgumentError("threads: must be > 0");
  at::set_num_threads(options.num_threads);
  return std::unique_ptr<Trainer>(new TorchTrainer(options));
}

}  // namespace grail::learner
