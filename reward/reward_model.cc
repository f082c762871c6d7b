#include "reward/reward_model.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "model/checkpoint.h"
#include "model/model_config.h"
#include "model/safetensors.h"
#include "model/versioned_model.h"
#include "tokenizer/tokenizer.h"

namespace grail::reward {
namespace {

class TorchRewardModel : public RewardModel {
 public:
  explicit TorchRewardModel(std::string data_root) : data_root_(std::move(data_root)) {}

  absl::Status Load(std::string blob, int64_t version) override {
    // The config and the tokenizer the blob names, checked before the model is swapped in.
    std::string name = "char";
    model::ModelConfig config;
    {
      auto file = model::SafetensorsFile::Parse(blob);
      if (!file.ok()) return file.status();
      auto it = file->metadata().find(model::kTokenizerMetadataKey);
      if (it != file->metadata().end()) name = it->second;
      auto c = file->metadata().find(model::kConfigMetadataKey);
      if (c == file->metadata().end()) return absl::InvalidArgumentError("reward model: the blob has no config");
      auto parsed = model::ParseHfConfigJson(c->second);
      if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("reward model: ", parsed.status().message()));
      config = *parsed;
    }
    if (!config.value_head) {
      return absl::InvalidArgumentError("reward model: the model has no value head (grail_value_head)");
    }
    auto tok = tokenizer::NewTokenizer(name, data_root_);
    if (!tok.ok()) return absl::InvalidArgumentError(absl::StrCat("reward model: ", tok.status().message()));
    if ((*tok)->vocab_size() > config.vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat("reward model: tokenizer '", name, "' has ", (*tok)->vocab_size(),
                                                     " tokens, more than the model's vocab_size ", config.vocab_size));
    }
    {
      absl::MutexLock lock(&mu_);
      tokenizers_[version] = std::move(*tok);
    }
    absl::Status s = model_.Load(std::move(blob), version);
    absl::MutexLock lock(&mu_);
    if (!s.ok()) {
      if (version != model_.Get().version) tokenizers_.erase(version);
      return s;
    }
    while (tokenizers_.size() > 2) tokenizers_.erase(tokenizers_.begin());  // the serving and the previous
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<double>> Score(const std::vector<std::string>& texts) override {
    model::VersionedModel::Snapshot snap = model_.Get();
    if (snap.model == nullptr || !(*snap.model)->config().value_head) {
      return absl::FailedPreconditionError("no reward model loaded (LoadRewardModel)");
    }
    auto& m = *snap.model;
    std::shared_ptr<const tokenizer::Tokenizer> tokenizer_;
    {
      absl::MutexLock lock(&mu_);
      auto it = tokenizers_.find(snap.version);
      if (it == tokenizers_.end()) return absl::FailedPreconditionError("reward model: still loading");
      tokenizer_ = it->second;
    }
    const int64_t context = m->config().max_position_embeddings;
    std::vector<std::vector<int>> seqs;
    int64_t width = 1;
    for (size_t i = 0; i < texts.size(); ++i) {
      auto ids = tokenizer_->Encode(texts[i]);
      if (!ids.ok()) return absl::InvalidArgumentError(absl::StrCat("items[", i, "]: ", ids.status().message()));
      if (tokenizer_->bos_id() >= 0) ids->insert(ids->begin(), tokenizer_->bos_id());
      // Scored as a finished response, at its EOS: the reward_model objective trains on
      // completions that end in EOS and reads the score there.
      if (tokenizer_->eos_id() >= 0) ids->push_back(tokenizer_->eos_id());
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
  const std::string data_root_;
  model::VersionedModel model_;
  absl::Mutex mu_;
  // Each loaded version's tokenizer (read through the torch-free interface).
  std::map<int64_t, std::shared_ptr<const tokenizer::Tokenizer>> tokenizers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<RewardModel> NewTorchRewardModel(std::string data_root) {
  return std::make_unique<TorchRewardModel>(std::move(data_root));
}

}  // namespace grail::reward
