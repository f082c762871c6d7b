// Every objective on the menu trains: one cluster, one supervised warm-up saved as a
// checkpoint, then a short seeded run per objective starting from that checkpoint. Each run
// must succeed, report the objective's own metrics, and raise the mean training reward.

#include <map>

#include "absl/strings/str_cat.h"
#include "common/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/local_cluster.h"

namespace grail::testing {
namespace {

// The demo's model, data and sampling (deploy/demo/arithmetic.yaml).
constexpr char kBase[] = R"(
seed: 1
model:
  tokenizer: char
  init_seed: 1
  config: {vocab_size: 98, hidden_size: 128, intermediate_size: 384, num_hidden_layers: 3,
           num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 16}
dataset: {builtin: arithmetic, max_digits: 2, seed: 7, heldout_size: 500}
sampling: {temperature: 1.0, max_new_tokens: 5}
trainer: {sft_steps: 400, sft_batch_size: 64, sft_learning_rate: 0.001, total_steps: 1,
          prompts_per_step: 32, learning_rate: 0.0003,
          eval_size: 100}
)";

constexpr int kSteps = 20;   // RL steps per objective
constexpr int kWindow = 5;   // steps averaged at each end

struct Objective {
  std::string name;
  std::string algorithm;     // YAML flow mapping for `algorithm`
  std::string extra = "";    // further top-level YAML
  int value_pretrain_steps = 0;
  std::vector<std::string> metrics = {};  // reported by this objective's steps
};

std::ostream& operator<<(std::ostream& os, const Objective& o) { return os << o.name; }

class ObjectivesTest : public ::testing::TestWithParam<Objective> {
 protected:
  static void SetUpTestSuite() {
    auto cluster = LocalCluster::Start({});
    ASSERT_TRUE(cluster.ok()) << cluster.status();
    cluster_ = std::move(*cluster).release();
    // The warm-up: 400 supervised steps and one GRPO step at a negligible learning rate (a run
    // has at least one RL step), checkpointed for every objective.
    grail::v1::RunSpec spec = Parse(std::string(kBase) +
                                    "name: warm-up\n"
                                    "algorithm: {advantage_estimator: grpo, group_size: 16}\n"
                                    "checkpoint_dir: objectives-warm-up\n");
    spec.mutable_trainer()->set_checkpoint_every(1);
    spec.mutable_trainer()->set_learning_rate(1e-9);
    auto client = cluster_->NewRunClient();
    auto id = client->Submit(spec);
    ASSERT_TRUE(id.ok()) << id.status();
    grail::v1::StepReport done;
    ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
      if (r.phase() == "done") done = r;
    }).ok());
    ASSERT_EQ(done.state(), grail::v1::RUN_STATE_SUCCEEDED) << done.message();
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }

  static grail::v1::RunSpec Parse(const std::string& yaml) {
    grail::v1::RunSpec spec;
    absl::Status s = ParseConfig(yaml, ConfigFormat::kYaml, &spec);
    EXPECT_TRUE(s.ok()) << s << "\n" << yaml;
    return spec;
  }

  static LocalCluster* cluster_;
};

LocalCluster* ObjectivesTest::cluster_ = nullptr;

TEST_P(ObjectivesTest, ShortRunRaisesMeanReward) {
  ASSERT_NE(cluster_, nullptr);
  const Objective& o = GetParam();
  grail::v1::RunSpec spec = Parse(absl::StrCat(kBase, "name: objective-", o.name, "\nalgorithm: ",
                                               o.algorithm, "\n", o.extra));
  spec.mutable_model()->clear_config();
  spec.mutable_model()->set_path("objectives-warm-up/step-000001");
  auto* t = spec.mutable_trainer();
  t->set_sft_steps(0);
  t->set_value_pretrain_steps(o.value_pretrain_steps);
  t->set_total_steps(o.value_pretrain_steps + kSteps);

  auto client = cluster_->NewRunClient();
  auto id = client->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  std::vector<grail::v1::StepReport> rl;
  grail::v1::StepReport done;
  ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
    if (r.phase() == "rl") rl.push_back(r);
    if (r.phase() == "done") done = r;
  }).ok());
  ASSERT_EQ(done.state(), grail::v1::RUN_STATE_SUCCEEDED) << done.message();
  ASSERT_EQ(rl.size(), static_cast<size_t>(o.value_pretrain_steps + kSteps));

  std::vector<double> reward;
  for (const auto& r : rl) {
    auto critic_only = r.metrics().find("critic_only");
    if (critic_only == r.metrics().end() || critic_only->second > 0) continue;  // no policy step
    reward.push_back(r.metrics().at("reward_mean"));
    if (getenv("GRAIL_TEST_VERBOSE")) {
      std::cout << o.name << " step " << r.step() << " reward " << r.metrics().at("reward_mean");
      for (const char* k : {"explained_variance", "value_loss", "pg_clipfrac", "entropy"}) {
        if (r.metrics().count(k)) std::cout << " " << k << " " << r.metrics().at(k);
      }
      std::cout << "\n";
    }
  }
  for (const std::string& m : o.metrics) {
    EXPECT_TRUE(rl.back().metrics().count(m)) << o.name << " does not report " << m;
  }
  ASSERT_GE(reward.size(), static_cast<size_t>(2 * kWindow));
  auto mean = [&](size_t from, size_t to) {
    double s = 0;
    for (size_t i = from; i < to; ++i) s += reward[i];
    return s / (to - from);
  };
  const double first = mean(0, kWindow), last = mean(reward.size() - kWindow, reward.size());
  auto run = client->Get(*id);
  ASSERT_TRUE(run.ok());
  const double acc_before = run->summary().at("heldout_accuracy_before");
  const double acc_after = run->summary().at("heldout_accuracy_after");
  std::cout << "objective " << o.name << ": held-out accuracy " << acc_before << " -> " << acc_after << "\n";
  std::cout << "objective " << o.name << ": mean reward first " << kWindow << " steps " << first
            << ", last " << kWindow << " steps " << last << "\n";
  // Margin: per-step mean reward over 512 samples varies by ~0.05 with the prompts' digit
  // counts, so a 5-step mean has a standard error of ~0.02; the runs gain 0.1-0.2.
  EXPECT_GT(last, first + 0.05) << o.name;
  EXPECT_GT(acc_after, acc_before) << o.name;
}

INSTANTIATE_TEST_SUITE_P(
    Menu, ObjectivesTest,
    ::testing::Values(
        Objective{"ppo_gae_critic",
                  "{advantage_estimator: gae, policy_loss: ppo, group_size: 16, lambda_actor: 0.95, "
                  "lambda_critic: 1.0, clip_ratio_low: 0.2, clip_ratio_high: 0.28}",
                  "critic: {enabled: true, init: policy, learning_rate: 0.003}\n", 4,
                  {"value_loss", "explained_variance", "pg_clipfrac"}},
        Objective{"vapo_length_adaptive",
                  "{advantage_estimator: gae, policy_loss: ppo, group_size: 16, length_adaptive_alpha: 1.0, "
                  "clip_ratio_low: 0.2, clip_ratio_high: 0.28}",
                  "critic: {enabled: true, learning_rate: 0.003}\n", 4, {"value_loss"}},
        Objective{"grpo_dapo", "{advantage_estimator: grpo, group_size: 16, dynamic_sampling: true, "
                               "clip_ratio_low: 0.2, clip_ratio_high: 0.28}",
                  "", 0, {"pg_clipfrac", "filtered_group_ratio"}},
        Objective{"dr_grpo", "{advantage_estimator: dr_grpo, group_size: 16, loss_agg_mode: seq-mean-token-sum-norm}"},
        Objective{"gspo", "{advantage_estimator: grpo, policy_loss: gspo, group_size: 16, "
                          "loss_agg_mode: seq-mean-token-mean, clip_ratio_low: 0.0003, clip_ratio_high: 0.0004}"},
        Objective{"gmpo", "{advantage_estimator: grpo, policy_loss: gmpo, group_size: 16, "
                          "clip_ratio_low: 0.4, clip_ratio_high: 0.4}"},
        Objective{"cispo", "{advantage_estimator: grpo, policy_loss: cispo, group_size: 16, "
                           "clip_ratio_high: 0.28}"},
        Objective{"gfpo", "{advantage_estimator: gfpo, group_size: 16, gfpo_k: 8, gfpo_metric: token_efficiency}"},
        Objective{"rloo", "{advantage_estimator: rloo, group_size: 16}"},
        Objective{"reinforce_pp", "{advantage_estimator: reinforce_pp, group_size: 16, kl_coef: 0.001, "
                                  "kl_estimator: k3}",
                  "", 0, {"kl"}}),
    [](const ::testing::TestParamInfo<Objective>& info) { return info.param.name; });

}  // namespace
}  // namespace grail::testing
