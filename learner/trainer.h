#ifndef GRAIL_LEARNER_TRAINER_H_
#define GRAIL_LEARNER_TRAINER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "proto/grail/v1/learner.pb.h"

namespace grail::learner {

class Collective;  // learner/collective.h

struct TrainerOptions {
  // LibTorch intra-op threads (process-wide; set once at creation).
  int num_threads = 1;
  // Model and checkpoint paths in run specs resolve under this directory.
  std::string data_root = ".";
  // The learner group this trainer is one rank of; null = a group of one. Every rank gets
  // the same sequence of InitModel / SupervisedStep / TrainStep calls, each with its shard
  // of the batch (LearnerGroupClient does this), and takes identical optimizer steps.
  std::shared_ptr<Collective> group;
  // Gradients are all-reduced in buckets of about this many bytes.
  int64_t bucket_bytes = 25 << 20;
  // Called once, on the first failed collective; from then on every training call and
  // GetWeights fails with that status (the ranks' states may differ).
  std::function<void(const absl::Status&)> on_group_failure;
};

// Data parallelism: each rank computes its shard's loss with the global batch's normaliser
// (token or sequence counts summed over ranks), gradients are summed across ranks, so the
// group's update equals one rank's update on the whole batch (mini-batch k of a step is the
// union of the ranks' k-th slices). Each step begins with a collective check that every rank
// is taking the same kind of step at the same weights version. Steps report
// allreduce_seconds.
//
// Owns the policy being trained. Starts with no model; InitModel builds the one a run spec
// names (a checkpoint directory under data_root, or a seeded fresh initialisation).
// Thread-safe. Hides LibTorch from its users.
class Trainer {
 public:
  static absl::StatusOr<std::unique_ptr<Trainer>> Create(const TrainerOptions& options);
  virtual ~Trainer() = default;

  // Builds the model of spec.model and publishes it as the next weights version (0 for the
  // first model of this process; versions never decrease).
  // request.min_weights_version floors the new version. With spec.trainer.resume and a
  // checkpoint as model.path, the optimizer state, RL step count and weights version are
  // restored too and the checkpoint's run_state comes back.
  virtual absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::InitModelRequest& request) = 0;
  // InitModel without a version floor.
  absl::StatusOr<grail::v1::InitModelResponse> InitModel(const grail::v1::RunSpec& spec) {
    grail::v1::InitModelRequest request;
    *request.mutable_spec() = spec;
    return InitModel(request);
  }

  // The current weights as a safetensors blob (with its config) and their version.
  // FAILED_PRECONDITION before InitModel. `part` (learner.proto, WeightsPart): by default
  // the whole model, or only its trainable part when some parameters are frozen
  // (model.peft, model.trainable).
  struct Weights {
    std::string blob;
    int64_t version = -1;
  };
  virtual absl::StatusOr<Weights> GetWeights(grail::v1::WeightsPart part) = 0;
  absl::StatusOr<Weights> GetWeights() { return GetWeights(grail::v1::WEIGHTS_PART_DEFAULT); }

  // One optimizer step of cross-entropy on the masked tokens (supervised warm-up), at the
  // warm-up's scheduled rate (SftLearningRate of request.step), over
  // trainer.sft_grad_accumulation micro-batches; with eval_only the loss alone.
  virtual absl::StatusOr<grail::v1::TrainStepResponse> SupervisedStep(
      const grail::v1::SupervisedStepRequest& request) = 0;

  // One optimizer step of the run's preference objective (spec.preference: dpo, simpo,
  // orpo, kto) with the RL optimizer and rate schedule (trainer.learning_rate, warmup_steps,
  // lr_schedule), or with eval_only its metrics alone on B pairs:
  // loss, chosen_rewards / rejected_rewards (means), reward_margin, reward_accuracy (the
  // objective's implicit reward ranks chosen first), preference_accuracy (the policy's
  // summed log-prob does), logp_chosen / logp_rejected, and per objective log_odds_ratio
  // and nll (orpo) or kl (kto). FAILED_PRECONDITION when the run has no preference objective.
  virtual absl::StatusOr<grail::v1::TrainStepResponse> PreferenceStep(
      const grail::v1::PreferenceStepRequest& request) = 0;

  // One RL step on a batch of experience with the run's objective (ppo_epochs passes over
  // mini_batches mini-batches), then publishes a new weights version. With a critic and
  // experience.returns/values, the critic takes a clipped value-loss step too (metrics
  // value_loss, vf_clipfrac, explained_variance); critic_only trains only the critic and
  // leaves the policy and its version unchanged (value pretraining).
  virtual absl::StatusOr<grail::v1::TrainStepResponse> TrainStep(
      const grail::v1::TrainStepRequest& request) = 0;

  // Writes a checkpoint directory `dir` (resolved under data_root): model.safetensors and
  // config.json (loadable as model.path), optimizer.safetensors (AdamW moments by parameter
  // name) and manifest.json (version, step counts, file digests), then a COMMITTED marker.
  // Files are written into a temporary sibling directory that is renamed into place, so a
  // crash never leaves a partial checkpoint under `dir`. Returns the absolute path.
  // `run_state` (at most 64 KiB, opaque) is kept in the manifest and returned by InitModel.
  virtual absl::StatusOr<std::string> SaveCheckpoint(const std::string& dir, const std::string& run_state) = 0;

  // The critic's values for right-padded sequences, aligned like log-probs (column t is the
  // value of the state before token t). The critic is a copy of the model's architecture
  // with a scalar value head, created by InitModel when the run's estimator is gae.
  // FAILED_PRECONDITION without a critic.
  virtual absl::StatusOr<grail::v1::ComputeValuesResponse> ComputeValues(
      const grail::v1::ComputeValuesRequest& request) = 0;
  // The policy's log-probs of each token and of each position's most likely token (no
  // update): learning-dynamics probes.
  virtual absl::StatusOr<grail::v1::ScoreSequencesResponse> ScoreSequences(
      const grail::v1::ScoreSequencesRequest& request) = 0;
};

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_TRAINER_H_
