// A staged run end to end with learning-dynamics probes: the demo's model and task, an
// sft stage (warm-up to 0.3 greedy held-out accuracy), then 30 DPO steps on the task's
// own pairs; and classic RLHF from the same sft checkpoint: a reward model whose body is
// the sft policy trained further (sft_rm, to 0.9), trained for 2400 Bradley-Terry steps
// of 64 pairs (cosine rate) on the task's varied pairs plus pairs from the sft policy's
// own samples of 3000 training problems (preference.sampled_pairs.policy; it must rank at
// least 90% of the held-out pairs right), then 60 PPO steps of the sft policy against it
// (a critic and GAE, 8 samples per prompt, KL to the sft policy both in the reward and as
// a loss), during which it must rank the policy's own correct samples above its wrong
// ones more often than chance, and after which the math verifier's held-out accuracy must
// have risen. One run through every service. 64 probes (training problems with their
// pair, two paraphrases of each response, an unrelated answer and the model's own greedy
// answer) are recorded every 5 steps of the sft and dpo stages. The known effects must
// show, each by more than two standard errors over the probes:
//   - under SFT, the chosen answers' paraphrases rise with them;
//   - under DPO, the rejected answers fall, while at their positions where the rejected
//     token is not the most likely one, the most likely token's probability rises (the
//     squeezing effect: the mass pushed off the rejected token goes to the argmax). The
//     chosen answers may fall too; the test prints what they did.
// The records are written as CSV and drawn as SVG (build/tests/pipeline_probes.{csv,svg}).
#include <cmath>
#include <fstream>
#include <map>

#include "absl/strings/str_cat.h"
#include "coordinator/probe_report.h"
#include "gtest/gtest.h"
#include "tests/learning.h"
#include "tests/local_cluster.h"

namespace grail::testing {
namespace {

// Per probe, the mean over its records of `type` at the stage's first and last recording.
struct Change {
  std::vector<double> deltas;  // last - first, per probe
};

Change ChangeOver(const std::vector<grail::v1::ProbeRecord>& records, const std::string& stage,
                  const std::string& type, double (*value)(const grail::v1::ProbeRecord&)) {
  int64_t first = -1, last = -1;
  for (const auto& r : records) {
    if (r.stage() != stage) continue;
    if (first < 0 || r.step() < first) first = r.step();
    last = std::max(last, r.step());
  }
  std::map<int, std::pair<std::vector<double>, std::vector<double>>> by_probe;
  for (const auto& r : records) {
    if (r.stage() != stage || (!type.empty() && r.response_type() != type)) continue;
    if (r.step() == first) by_probe[r.probe()].first.push_back(value(r));
    if (r.step() == last) by_probe[r.probe()].second.push_back(value(r));
  }
  auto mean = [](const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return v.empty() ? 0.0 : s / static_cast<double>(v.size());
  };
  Change c;
  for (const auto& [probe, ends] : by_probe) c.deltas.push_back(mean(ends.second) - mean(ends.first));
  return c;
}

// The squeezing effect, per probe: at the positions of a `type` response where its token is
// not the policy's most likely one at the stage's first recording (the positions a negative
// gradient pushes the token down), the change of the most likely token's probability from
// the first recording to the last.
Change SqueezeOver(const std::vector<grail::v1::ProbeRecord>& records, const std::string& stage,
                   const std::string& type) {
  int64_t first = -1, last = -1;
  for (const auto& r : records) {
    if (r.stage() != stage) continue;
    if (first < 0 || r.step() < first) first = r.step();
    last = std::max(last, r.step());
  }
  std::map<std::pair<int, int>, const grail::v1::ProbeRecord*> start, end;
  for (const auto& r : records) {
    if (r.stage() != stage || r.response_type() != type) continue;
    if (r.step() == first) start[{r.probe(), r.variant()}] = &r;
    if (r.step() == last) end[{r.probe(), r.variant()}] = &r;
  }
  Change c;
  for (const auto& [key, a] : start) {
    auto it = end.find(key);
    if (it == end.end() || it->second->argmax_probs_size() != a->argmax_probs_size()) continue;
    double before = 0, after = 0;
    int n = 0;
    for (int t = 0; t < a->argmax_probs_size(); ++t) {
      if (a->token_log_probs(t) >= std::log(a->argmax_probs(t)) - 1e-3) continue;  // the token is the argmax
      before += a->argmax_probs(t);
      after += it->second->argmax_probs(t);
      ++n;
    }
    if (n > 0) c.deltas.push_back((after - before) / n);
  }
  return c;
}

double LogProb(const grail::v1::ProbeRecord& r) { return r.log_prob(); }
double ArgmaxProb(const grail::v1::ProbeRecord& r) {
  double s = 0;
  for (float p : r.argmax_probs()) s += p;
  return r.argmax_probs_size() > 0 ? s / r.argmax_probs_size() : 0;
}

TEST(PipelineTest, SftThenDpoShowsTheKnownLearningDynamics) {
  auto cluster = LocalCluster::Start({});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  grail::v1::RunSpec spec = ParseLearningSpec(LearningSpecYaml(TestSeed(), /*target=*/0.3) + R"(
name: pipeline
probes: {every: 5, size: 64}
stages:
  - {name: sft, kind: sft}
  - {name: dpo, kind: preference, preference: {objective: dpo, beta: 0.1},
     trainer: {total_steps: 30, learning_rate: 0.0001, checkpoint_every: 10}}
  - {name: sft_rm, kind: sft, from: sft, probes: {every: 1000}, trainer: {sft_target_accuracy: 0.9}}
  - {name: rm, kind: preference, from: sft_rm, probes: {every: 1000},
     preference: {objective: reward_model, sampled_pairs: {prompts: 3000, samples: 8, policy: sft}},
     trainer: {total_steps: 2400, prompts_per_step: 64, learning_rate: 0.0004, warmup_steps: 20, lr_schedule: cosine}}
  - {name: ppo, kind: rl, from: sft, reward: {verifier: rm, model: rm}, probes: {every: 1000},
     algorithm: {advantage_estimator: gae, group_size: 8, use_kl_in_reward: true, kl_in_reward_coef: 0.05,
                 kl_coef: 0.1},
     critic: {enabled: true}, trainer: {total_steps: 60, learning_rate: 0.0001, warmup_steps: 3, value_pretrain_steps: 3}}
)");
  auto client = (*cluster)->NewRunClient();
  auto id = client->Submit(spec);
  ASSERT_TRUE(id.ok()) << id.status();
  grail::v1::StepReport done;
  ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
    if (r.phase() == "done") done = r;
  }).ok());
  ASSERT_EQ(done.state(), grail::v1::RUN_STATE_SUCCEEDED) << done.message();
  auto run = client->Get(*id);
  ASSERT_TRUE(run.ok());
  EXPECT_EQ(run->stage_checkpoints().size(), 5u);
  auto records = client->Probes(*id);
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_FALSE(records->empty());
  for (const auto& [path, text] :
       {std::pair<std::string, std::string>{"pipeline_probes.csv", coordinator::ProbesCsv(*records)},
        {"pipeline_probes.svg", coordinator::ProbesSvg(*records, "sft -> dpo, seed " + std::to_string(TestSeed()))}}) {
    std::ofstream(path) << text;
  }
  const auto& s = run->summary();
  // The reward model (Bradley-Terry on the task's varied pairs, from the sft checkpoint)
  // ranks at least 90% of the held-out pairs right.
  const double rm_accuracy = s.at("rm.heldout_preference_accuracy_after");
  std::cout << "pipeline: reward model held-out pairwise accuracy " << s.at("rm.heldout_preference_accuracy_before")
            << " -> " << rm_accuracy << std::endl;
  EXPECT_GE(rm_accuracy, 0.9);
  // PPO against it: the rm verifier scores the samples (real-valued rewards), while held-out
  // accuracy stays the math verifier's verdict. The math verifier also judges the samples
  // behind the model's scores (answer_accuracy), and within each prompt's group the model
  // must rank the policy's own correct samples above its wrong ones more often than chance,
  // by more than two standard errors over the steps. Held-out accuracy, the math verifier's
  // greedy verdict, must rise by more than two standard errors of the difference.
  int rl_steps = 0;
  bool real_valued = false;
  std::vector<double> ranking, answer_accuracy;
  double rm_sampled_accuracy = -1;  // the rm stage's sampled pairs: the sft policy's samples
  ASSERT_TRUE(client->Watch(*id, [&](const grail::v1::StepReport& r) {
    if (r.stage() == "rm" && r.phase() == "sampled_pairs") rm_sampled_accuracy = r.metrics().at("sampled_accuracy");
    if (r.stage() != "ppo" || r.phase() != "rl") return;
    ++rl_steps;
    const double mean = r.metrics().at("reward_mean"), accuracy = r.metrics().at("accuracy");
    real_valued |= std::abs(mean - accuracy) > 1e-6;
    if (r.metrics().contains("answer_accuracy")) answer_accuracy.push_back(r.metrics().at("answer_accuracy"));
    if (r.metrics().contains("answer_ranking_accuracy")) ranking.push_back(r.metrics().at("answer_ranking_accuracy"));
  }).ok());
  EXPECT_EQ(rl_steps, 60);
  EXPECT_TRUE(real_valued) << "the ppo stage's rewards are not the reward model's scores";
  EXPECT_EQ(answer_accuracy.size(), 60u) << "steps without the math verifier's verdict behind the reward model";
  const MeanSe rank = MeanAndSe(ranking);
  std::cout << "pipeline: ppo against the reward model: the samples' answer accuracy " << MeanAndSe(answer_accuracy).mean
            << ", the model ranks correct above wrong in " << rank.mean << " of within-group pairs (se " << rank.se
            << ", " << ranking.size() << " steps)" << std::endl;
  EXPECT_GE(ranking.size(), 5u);
  EXPECT_GT(rank.mean - 0.5, 2 * rank.se) << "the reward model does not rank the policy's own samples";
  // The reward model's comparisons are the sft policy's samples (greedy accuracy 0.3), not
  // those of its own starting weights (sft_rm, 0.9).
  std::cout << "pipeline: reward model pairs from samples of accuracy " << rm_sampled_accuracy << std::endl;
  EXPECT_GE(rm_sampled_accuracy, 0);
  EXPECT_LT(rm_sampled_accuracy, 0.5) << "the rm stage's pairs are not the sft policy's samples";
  const double ppo_before = s.at("ppo.heldout_accuracy_before"), ppo_after = s.at("ppo.heldout_accuracy_after");
  std::cout << "pipeline: ppo against the reward model: held-out accuracy " << ppo_before << " -> " << ppo_after
            << " (the reward model's body: sft_rm at " << s.at("sft_rm.sft_heldout_accuracy") << ")" << std::endl;
  EXPECT_GT(ppo_after - ppo_before, 2 * AccuracyDifferenceSe(ppo_before, ppo_after, 500))
      << "ppo against the reward model did not raise the verifier's held-out accuracy";
  std::cout << "pipeline: held-out accuracy after sft " << s.at("sft.heldout_accuracy_after") << ", after dpo "
            << s.at("dpo.heldout_accuracy_after") << "; held-out reward accuracy "
            << s.at("dpo.heldout_reward_accuracy_before") << " -> " << s.at("dpo.heldout_reward_accuracy_after")
            << std::endl;

  struct Claim {
    const char* stage;
    const char* type;
    double (*value)(const grail::v1::ProbeRecord&);
    int sign;  // +1 must rise, -1 must fall, 0 printed only
    const char* what;
  };
  for (const Claim& c : {Claim{"sft", "chosen", &LogProb, +1, "log-prob"},
                         Claim{"sft", "chosen_paraphrase", &LogProb, +1, "log-prob"},
                         Claim{"dpo", "rejected", &LogProb, -1, "log-prob"},
                         Claim{"dpo", "rejected", &ArgmaxProb, 0, "argmax-token probability"},
                         Claim{"dpo", "chosen", &LogProb, 0, "log-prob"},
                         Claim{"dpo", "chosen_paraphrase", &LogProb, 0, "log-prob"},
                         Claim{"dpo", "greedy", &LogProb, 0, "log-prob"},
                         Claim{"dpo", "chosen", &ArgmaxProb, 0, "argmax-token probability"},
                         Claim{"dpo", "greedy", &ArgmaxProb, 0, "argmax-token probability"},
                         Claim{"dpo", "unrelated", &ArgmaxProb, 0, "argmax-token probability"},
                         Claim{"dpo", "", &ArgmaxProb, 0, "argmax-token probability (every response)"}}) {
    const MeanSe m = MeanAndSe(ChangeOver(*records, c.stage, c.type, c.value).deltas);
    std::cout << "pipeline probes: " << c.stage << " " << c.type << " " << c.what << " change " << m.mean << " (se "
              << m.se << ")" << std::endl;
    if (c.sign != 0) {
      EXPECT_GT(c.sign * m.mean, 2 * m.se) << c.stage << " " << c.type << " " << c.what;
    }
  }
  // The squeezing effect: where DPO pushes a rejected token down that is not the most likely
  // one, the most likely token gains.
  const MeanSe squeeze = MeanAndSe(SqueezeOver(*records, "dpo", "rejected").deltas);
  std::cout << "pipeline probes: dpo rejected argmax-token probability at non-argmax positions change "
            << squeeze.mean << " (se " << squeeze.se << ")" << std::endl;
  EXPECT_GT(squeeze.mean, 2 * squeeze.se) << "the squeezing effect";
}

}  // namespace
}  // namespace grail::testing
