#include "reward/reward_model.h"

#include "absl/strings/str_cat.h"
#include "tokenizer/tokenizer.h"
#include "model/versioned_model.h"

namespace grail::reward {
namespace {

class TorchRewardModel : public RewardModel {
 public:
  absl::Status Load(std::string blob, int64_t version) override {
    absl::Status s = model_.Load(std::move(blob), version);
    if (!s.ok()) return s;
    if (!(*model_.Get().model)->config().value_head) {
      return absl::InvalidArgumentError("reward model: the model has no value head (grail_value_head)");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<double>> Score(const std::vector<std::string>& texts) override {
    model::VersionedModel::Snapshot snap = model_.Get();
    if (snap.model == nullptr || !(*snap.model)->config().value_head) {
      return absl::FailedPreconditionError("no reward model loaded (LoadRewardModel)");
    }
    auto& m = *snap.model;
    const int64_t context = m->config().max_position_embeddings;
    std::vector<std::vector<int>> seqs;
    int64_t width = 1;
    for (size_t i = 0; i < texts.size(); ++i) {
      auto ids = tokenizer_->Encode(texts[i]);
      if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("items[", i, "]: ", ids.status().message()));
      if (tokenizer_->bos_id() >= 0) ids->insert(ids->begin(), tokenizer_->bos_id());
      if (static_cast<int64_t>(ids->size()) > context) {
        return absl::InvalidArgumentError(absl::StrCat("items[", i, "]: ", ids->size(),
                                                       " tokens exceed the reward model context ", context));
      }
      width = std::max<int64_t>(width, ids->size());
      seqs.push_back(std::move(*ids));
    }
    if (seqs.empty()) return std::vector<double>();
    try {
      torch::NoGradGuard no_grad;
      const int64_t B = static_cast<int64_t>(seqs.size());
      auto ids = torch::zeros({B, width}, torch::kInt64);
      std::vector<int64_t> last(B);
      for (int64_t b = 0; b < B; ++b) {
        for (size_t t = 0; t < seqs[b].size(); ++t) ids[b][t] = seqs[b][t];
        last[b] = static_cast<int64_t>(seqs[b].size()) - 1;
      }
      // Right padding: causal attention keeps each row's last real token unaffected.
      auto valid = torch::ones({B, width}, torch::kBool);
      auto positions = torch::arange(width, torch::kInt64).unsqueeze(0).expand({B, width});
      auto values = m->Values(m->Hidden(ids, positions, valid));
      auto picked = values.gather(1, torch::tensor(last).unsqueeze(1)).squeeze(1);
      std::vector<double> out(B);
      for (int64_t b = 0; b < B; ++b) out[b] = picked[b].item<double>();
      return out;
    } catch (const c10::Error& e) {
      return absl::InternalError(absl::StrCat("reward model failed: ", e.what_without_backtrace()));
    }
  }

 private:
  model::VersionedModel model_;
  // The reward model reads text through the torch-free interface (the char tokenizer until
  // models bring their own).
  const std::unique_ptr<tokenizer::Tokenizer> tokenizer_ = *tokenizer::NewTokenizer("char");
};

}  // namespace

std::unique_ptr<RewardModel> NewTorchRewardModel() { return std::make_unique<TorchRewardModel>(); }

}  // namespace grail::reward
