#include "actor/rollout_engine.h"

#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"
#include "model/sampler.h"
#include "model/versioned_model.h"

namespace grail::actor {
namespace {

class TorchRolloutEngine : public RolloutEngine {
 public:
  explicit TorchRolloutEngine(const RolloutEngineOptions& options)
      : options_(options), model_(/*pack_for_inference=*/options.pack_weights) {}

  absl::Status LoadWeights(std::string blob, int64_t version) override {
    absl::Status s = model_.Load(std::move(blob), version);
    // The version now serving: a frozen part (a LoRA base) loads without changing it.
    if (s.ok() && options_.on_weights) options_.on_weights(model_.Get().version);
    return s;
  }

  absl::Status Generate(const grail::v1::GenerateRequest& request,
                        const std::function<bool(grail::v1::Sample)>& emit) override {
    if (request.group_size() < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("group_size: must be >= 1, got ", request.group_size()));
    }
    if (request.prompts().empty()) return absl::InvalidArgumentError("prompts: empty");
    const int64_t rows = static_cast<int64_t>(request.prompts_size()) * request.group_size();
    if (rows > options_.max_rows_per_request) {
      return absl::InvalidArgumentError(absl::StrCat("prompts: ", rows, " samples exceed the limit of ",
                                                     options_.max_rows_per_request, " per request"));
    }
    model::VersionedModel::Snapshot snap = model_.Get();
    if (snap.model == nullptr) {
      return absl::FailedPreconditionError("no model loaded: weights arrive through LoadWeights");
    }
    const auto& sp = request.sampling();
    model::SamplingOptions o;
    o.temperature = sp.temperature();
    o.top_p = sp.top_p() == 0 ? 1.0f : sp.top_p();
    o.top_k = sp.top_k();
    o.max_new_tokens = sp.max_new_tokens();
    o.stop_token_ids.assign(sp.stop_token_ids().begin(), sp.stop_token_ids().end());
    o.seed = sp.seed();
    o.share_prefixes = options_.share_prefixes;
    std::vector<std::vector<int>> prompts;
    prompts.reserve(request.prompts_size());
    for (const auto& p : request.prompts()) prompts.emplace_back(p.token_ids().begin(), p.token_ids().end());
    absl::StatusOr<std::vector<model::GenerationResult>> results;
    model::GenerationStats gen_stats;
    try {
      results = model::GenerateGroups(*snap.model, prompts, request.group_size(), o,
                                      options_.max_batch_rows, &gen_stats);
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("generation failed: ", e.what_without_backtrace()));
    }
    if (!results.ok()) return results.status();
    RolloutStats stats;
    stats.samples = rows;
    stats.prefix_reuses = rows - gen_stats.prefills;
    if (gen_stats.decode_steps > 0) {
      stats.batch_occupancy = static_cast<double>(gen_stats.slot_steps) /
                              (static_cast<double>(gen_stats.decode_steps) * options_.max_batch_rows);
    }
    for (const auto& res : *results) stats.tokens += static_cast<int64_t>(res.tokens.size());
    for (int64_t r = 0; r < rows; ++r) {
      const auto& prompt = request.prompts(r / request.group_size());
      const auto& res = (*results)[r];
      grail::v1::Sample s;
      s.set_run_id(request.run_id());
      s.set_step(request.step());
      s.set_prompt_id(prompt.prompt_id());
      s.set_sample_index(static_cast<int32_t>(r % request.group_size()));
      s.set_policy_version(snap.version);
      *s.mutable_prompt_token_ids() = prompt.token_ids();
      s.mutable_token_ids()->Add(res.tokens.begin(), res.tokens.end());
      s.mutable_behavior_log_probs()->Add(res.log_probs.begin(), res.log_probs.end());
      s.set_finish_reason(res.finish == model::FinishReason::kEos ? grail::v1::FINISH_REASON_EOS
                                                                   : grail::v1::FINISH_REASON_LENGTH);
      if (!emit(std::move(s))) return absl::CancelledError("generation cancelled by the caller");
    }
    if (options_.on_generate) options_.on_generate(stats);
    return absl::OkStatus();
  }

  grail::v1::ActorInfo Info() const override {
    model::VersionedModel::Snapshot snap = model_.Get();
    grail::v1::ActorInfo info;
    info.set_weights_version(snap.version);
    info.set_model_loaded(snap.model != nullptr);
    return info;
  }

 private:
  RolloutEngineOptions options_;
  model::VersionedModel model_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<RolloutEngine>> RolloutEngine::Create(
    const RolloutEngineOptions& options) {
  if (options.max_rows_per_request <= 0) {
    return absl::InvalidArgumentError("max_rows_per_request: must be > 0");
  }
  if (options.num_threads <= 0) return absl::InvalidArgumentError("threads: must be > 0");
  if (options.max_batch_rows <= 0) return absl::InvalidArgumentError("max_batch_rows: must be > 0");
  at::set_num_threads(options.num_threads);
  return std::unique_ptr<RolloutEngine>(new TorchRolloutEngine(options));
}

}  // namespace grail::actor
