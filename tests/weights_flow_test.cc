// Real learner, actor and reference processes: weights flow from the learner to the others
// as a chunked, digest-checked stream; the actor generates with them; the reference scores
// the same tokens with the same log-probs; malformed tensors and corrupted weights are
// refused while the services stay up.

#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <iostream>
#include <cstring>
#include <thread>

#include "actor/actor_client.h"
#include "common/grpc_client.h"
#include "common/weights_stream.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "learner/learner_client.h"
#include "proto/grail/v1/actor.grpc.pb.h"
#include "proto/grail/v1/reference.grpc.pb.h"
#include "reference/reference_client.h"
#include "tests/service_process.h"

namespace grail::testing {
namespace {

using ::testing::HasSubstr;

grail::v1::RunSpec SmallModelSpec() {
  grail::v1::RunSpec spec;
  auto* c = spec.mutable_model()->mutable_config();
  c->set_vocab_size(40);
  c->set_hidden_size(32);
  c->set_intermediate_size(64);
  c->set_num_hidden_layers(2);
  c->set_num_attention_heads(4);
  c->set_num_key_value_heads(2);
  c->set_max_position_embeddings(64);
  spec.mutable_model()->set_init_seed(17);
  return spec;
}

grail::v1::Tensor Int64Tensor(const std::vector<std::vector<int64_t>>& rows) {
  grail::v1::Tensor t;
  t.set_dtype(grail::v1::DTYPE_INT64);
  t.add_shape(rows.size());
  t.add_shape(rows[0].size());
  for (const auto& r : rows) t.mutable_data()->append(reinterpret_cast<const char*>(r.data()), r.size() * 8);
  return t;
}

class WeightsFlowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto l = ServiceProcess::Start("grail-learner");
    auto a = ServiceProcess::Start("grail-actor");
    auto r = ServiceProcess::Start("grail-reference");
    ASSERT_TRUE(l.ok() && a.ok() && r.ok());
    learner_proc_ = std::move(*l);
    actor_proc_ = std::move(*a);
    reference_proc_ = std::move(*r);
    learner_ = learner::NewGrpcLearnerClient({learner_proc_->grpc_address()});
    actor_ = actor::NewGrpcActorClient({actor_proc_->grpc_address()});
    reference_ = reference::NewGrpcReferenceClient({reference_proc_->grpc_address()});
  }

  std::unique_ptr<ServiceProcess> learner_proc_, actor_proc_, reference_proc_;
  std::unique_ptr<learner::LearnerClient> learner_;
  std::unique_ptr<actor::ActorClient> actor_;
  std::unique_ptr<reference::ReferenceClient> reference_;
};

TEST_F(WeightsFlowTest, ActorAndReferenceAgreeOnLearnerWeights) {
  // Services start empty.
  grail::v1::GenerateRequest gen;
  gen.set_group_size(2);
  auto* p0 = gen.add_prompts();
  p0->set_prompt_id(10);
  p0->add_token_ids(3), p0->add_token_ids(4), p0->add_token_ids(5);
  auto* p1 = gen.add_prompts();
  p1->set_prompt_id(11);
  p1->add_token_ids(6);
  gen.mutable_sampling()->set_temperature(1.0);
  gen.mutable_sampling()->set_max_new_tokens(6);
  gen.mutable_sampling()->set_seed(5);
  absl::Status empty = actor_->Generate(gen, [](grail::v1::Sample) {});
  EXPECT_EQ(empty.code(), absl::StatusCode::kFailedPrecondition) << empty;
  EXPECT_EQ(actor_->GetInfo()->weights_version(), -1);

  auto init = learner_->InitModel(SmallModelSpec());
  ASSERT_TRUE(init.ok()) << init.status();
  EXPECT_GT(init->num_parameters(), 10000);
  auto weights = learner_->GetWeights(0);
  ASSERT_TRUE(weights.ok()) << weights.status();
  EXPECT_EQ(weights->version, 0);
  auto loaded = actor_->LoadWeights(weights->blob, weights->version);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->bytes_received(), static_cast<int64_t>(weights->blob.size()));
  ASSERT_TRUE(reference_->LoadWeights(weights->blob, weights->version).ok());
  EXPECT_EQ(actor_->GetInfo()->weights_version(), 0);

  std::vector<grail::v1::Sample> samples;
  ASSERT_TRUE(actor_->Generate(gen, [&](grail::v1::Sample s) { samples.push_back(std::move(s)); }).ok());
  ASSERT_EQ(samples.size(), 4u);
  std::set<std::pair<int64_t, int>> seen;
  for (const auto& s : samples) {
    seen.insert({s.prompt_id(), s.sample_index()});
    EXPECT_EQ(s.policy_version(), 0);
    EXPECT_EQ(s.token_ids_size(), s.behavior_log_probs_size());
    EXPECT_EQ(s.token_ids_size(), 6);
  }
  EXPECT_EQ(seen.size(), 4u) << "every (prompt, index) exactly once";

  // The reference scores prompt+response with the same model: its log-probs of the
  // response tokens equal the actor's behaviour log-probs (temperature 1).
  for (const auto& s : samples) {
    std::vector<int64_t> seq(s.prompt_token_ids().begin(), s.prompt_token_ids().end());
    seq.insert(seq.end(), s.token_ids().begin(), s.token_ids().end());
    grail::v1::LogProbsRequest req;
    *req.mutable_input_ids() = Int64Tensor({seq});
    auto scored = reference_->ComputeLogProbs(req);
    ASSERT_TRUE(scored.ok()) << scored.status();
    const auto& lp = scored->log_probs();
    ASSERT_EQ(lp.shape(1), static_cast<int64_t>(seq.size()) - 1);
    const float* values = reinterpret_cast<const float*>(lp.data().data());
    const int P = s.prompt_token_ids_size();
    for (int t = 0; t < s.token_ids_size(); ++t) {
      EXPECT_NEAR(values[P - 1 + t], s.behavior_log_probs(t), 1e-4);
    }
  }
}

grail::v1::Tensor FloatTensor(const std::vector<std::vector<float>>& rows) {
  grail::v1::Tensor t;
  t.set_dtype(grail::v1::DTYPE_FLOAT32);
  t.add_shape(rows.size());
  t.add_shape(rows[0].size());
  for (const auto& r : rows) t.mutable_data()->append(reinterpret_cast<const char*>(r.data()), r.size() * 4);
  return t;
}

// LoRA and prompt tuning (model.peft): the actor gets the frozen base once, then each
// version's adapters or prompt embeddings only (a fraction of the bytes). An actor without
// the base refuses them and says what it needs. After every update, the log-probs the
// actor samples with are the learner's log-probs of the same tokens: the adapter really
// reached it.
TEST_F(WeightsFlowTest, AdapterOnlyUpdatesReachTheActorExactly) {
 for (auto type : {grail::v1::PEFT_TYPE_LORA, grail::v1::PEFT_TYPE_PROMPT_TUNING}) {
  SCOPED_TRACE(type == grail::v1::PEFT_TYPE_LORA ? "lora" : "prompt_tuning");
  grail::v1::RunSpec spec = SmallModelSpec();
  spec.mutable_model()->mutable_peft()->set_type(type);
  if (type == grail::v1::PEFT_TYPE_LORA) spec.mutable_model()->mutable_peft()->set_r(4);
  if (type != grail::v1::PEFT_TYPE_LORA) spec.mutable_model()->mutable_peft()->set_num_virtual_tokens(4);
  spec.mutable_trainer()->set_sft_learning_rate(0.01f);
  ASSERT_TRUE(learner_->InitModel(spec).ok());
  auto whole = learner_->GetWeights(0, grail::v1::WEIGHTS_PART_WHOLE);
  auto frozen = learner_->GetWeights(0, grail::v1::WEIGHTS_PART_FROZEN);
  auto adapter = learner_->GetWeights(0);
  ASSERT_TRUE(whole.ok() && frozen.ok() && adapter.ok()) << adapter.status();
  std::cout << (type == grail::v1::PEFT_TYPE_LORA ? "lora" : "prompt tuning") << ": adapter " << adapter->blob.size() << " bytes, frozen part " << frozen->blob.size()
            << " bytes, whole model " << whole->blob.size() << " bytes" << std::endl;
  EXPECT_LT(adapter->blob.size(), whole->blob.size() / 4);
  auto refused = actor_->LoadWeights(adapter->blob, adapter->version);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr(kNeedsFrozenPart));
  const int64_t serving = actor_->GetInfo()->weights_version();
  ASSERT_TRUE(actor_->LoadWeights(frozen->blob, adapter->version).ok());
  EXPECT_EQ(actor_->GetInfo()->weights_version(), serving) << "a frozen part alone serves nothing new";

  grail::v1::SupervisedStepRequest sft;
  *sft.mutable_input_ids() = Int64Tensor({{1, 3, 4, 5, 6, 7}, {1, 8, 9, 10, 11, 12}});
  *sft.mutable_loss_mask() = FloatTensor({{0, 0, 0, 1, 1, 1}, {0, 0, 0, 1, 1, 1}});
  for (int update = 0; update < 3; ++update) {
    if (update > 0) {
      for (int i = 0; i < 5; ++i) ASSERT_TRUE(learner_->SupervisedStep(sft).ok());
    }
    auto w = learner_->GetWeights(0);
    ASSERT_TRUE(w.ok()) << w.status();
    ASSERT_TRUE(actor_->LoadWeights(w->blob, w->version).ok()) << "update " << update;
    EXPECT_EQ(actor_->GetInfo()->weights_version(), w->version);
    grail::v1::GenerateRequest gen;
    gen.set_group_size(2);
    auto* p = gen.add_prompts();
    p->set_prompt_id(update);
    p->add_token_ids(1), p->add_token_ids(3), p->add_token_ids(4);
    gen.mutable_sampling()->set_temperature(1.0);
    gen.mutable_sampling()->set_max_new_tokens(5);
    gen.mutable_sampling()->set_seed(update + 1);
    std::vector<grail::v1::Sample> samples;
    ASSERT_TRUE(actor_->Generate(gen, [&](grail::v1::Sample s) { samples.push_back(std::move(s)); }).ok());
    ASSERT_EQ(samples.size(), 2u);
    for (const auto& s : samples) {
      EXPECT_EQ(s.policy_version(), w->version);
      std::vector<int64_t> seq(s.prompt_token_ids().begin(), s.prompt_token_ids().end());
      seq.insert(seq.end(), s.token_ids().begin(), s.token_ids().end());
      grail::v1::ScoreSequencesRequest req;
      *req.mutable_input_ids() = Int64Tensor({seq});
      auto scored = learner_->ScoreSequences(req);
      ASSERT_TRUE(scored.ok()) << scored.status();
      const float* lp = reinterpret_cast<const float*>(scored->log_probs().data().data());
      const int P = s.prompt_token_ids_size();
      for (int t = 0; t < s.token_ids_size(); ++t) {
        EXPECT_NEAR(lp[P + t], s.behavior_log_probs(t), 1e-4) << "update " << update << " token " << t;
      }
    }
  }
 }
}

TEST_F(WeightsFlowTest, CorruptedOrPartialWeightsLeaveTheOldVersionServing) {
  ASSERT_TRUE(learner_->InitModel(SmallModelSpec()).ok());
  auto weights = learner_->GetWeights(0);
  ASSERT_TRUE(weights.ok());
  ASSERT_TRUE(actor_->LoadWeights(weights->blob, 3).ok());

  auto stub = grail::v1::ActorService::NewStub(MakeChannel({actor_proc_->grpc_address()}));
  auto send = [&](std::vector<grail::v1::WeightsChunk> chunks) {
    grpc::ClientContext ctx;
    grail::v1::LoadWeightsResponse resp;
    auto writer = stub->LoadWeights(&ctx, &resp);
    for (const auto& c : chunks) writer->Write(c);
    writer->WritesDone();
    return writer->Finish();
  };
  auto chunks = ChunkWeights(weights->blob, 4, 4096);
  ASSERT_GT(chunks.size(), 3u);
  auto corrupted = chunks;
  (*corrupted[1].mutable_data())[100] ^= 0x40;
  grpc::Status s = send(corrupted);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(s.error_message(), HasSubstr("digest mismatch"));
  auto partial = chunks;
  partial.pop_back();
  EXPECT_EQ(send(partial).error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(actor_->GetInfo()->weights_version(), 3);
  // An older version than the one serving is refused too.
  EXPECT_EQ(actor_->LoadWeights(weights->blob, 2).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(actor_->GetInfo()->weights_version(), 3);
}

TEST_F(WeightsFlowTest, MalformedTensorsAreInvalidArgumentAndTheServerStaysUp) {
  ASSERT_TRUE(learner_->InitModel(SmallModelSpec()).ok());
  auto weights = learner_->GetWeights(0);
  ASSERT_TRUE(reference_->LoadWeights(weights->blob, 0).ok());

  struct Case {
    std::function<void(grail::v1::LogProbsRequest*)> edit;
    const char* message;
  };
  std::vector<Case> cases = {
      {[](auto* r) { r->mutable_input_ids()->mutable_data()->pop_back(); }, "input_ids.data: 47 bytes, expected 48"},
      {[](auto* r) { r->mutable_input_ids()->set_dtype(static_cast<grail::v1::DType>(77)); }, "input_ids.dtype"},
      {[](auto* r) { r->mutable_input_ids()->set_shape(0, -2); }, "input_ids.shape[0]: negative"},
      {[](auto* r) { r->mutable_input_ids()->set_shape(0, int64_t{1} << 40); }, "input_ids.shape"},
      {[](auto* r) { r->mutable_input_ids()->set_dtype(grail::v1::DTYPE_FLOAT64); }, "input_ids.dtype: float64, expected int64"},
      {[](auto* r) { r->mutable_input_ids()->mutable_data()->assign(48, '\x7f'); }, "input_ids: token ids"},
      {[](auto* r) {
         auto* m = r->mutable_attention_mask();
         m->set_dtype(grail::v1::DTYPE_BOOL);
         m->add_shape(2), m->add_shape(2);
         m->set_data(std::string(4, 1));
       }, "attention_mask.shape"},
  };
  for (const auto& c : cases) {
    grail::v1::LogProbsRequest req;
    *req.mutable_input_ids() = Int64Tensor({{3, 4, 5}, {6, 7, 8}});
    c.edit(&req);
    auto result = reference_->ComputeLogProbs(req);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << c.message;
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(c.message));
  }
  // Still serving, and a good request still works.
  EXPECT_TRUE(*CheckServing(MakeChannel({reference_proc_->grpc_address()}).get(), absl::Seconds(5)));
  grail::v1::LogProbsRequest good;
  *good.mutable_input_ids() = Int64Tensor({{3, 4, 5}, {6, 7, 8}});
  auto ok = reference_->ComputeLogProbs(good);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->log_probs().shape(1), 2);
}

TEST_F(WeightsFlowTest, LearnerRefusesBadModelSpecsNamingTheField) {
  auto spec = SmallModelSpec();
  spec.mutable_model()->mutable_config()->set_num_key_value_heads(3);
  auto r = learner_->InitModel(spec);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("model.config.num_key_value_heads"));
  grail::v1::RunSpec escape;
  escape.mutable_model()->set_path("../../etc");
  EXPECT_EQ(learner_->InitModel(escape).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(learner_->GetWeights(0).status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(WeightsFlowTest, SigtermLetsAnInFlightGenerateFinish) {
  ASSERT_TRUE(learner_->InitModel(SmallModelSpec()).ok());
  auto weights = learner_->GetWeights(0);
  ASSERT_TRUE(actor_->LoadWeights(weights->blob, 0).ok());
  grail::v1::GenerateRequest gen;
  gen.set_group_size(16);
  for (int p = 0; p < 24; ++p) {
    auto* prompt = gen.add_prompts();
    prompt->set_prompt_id(p);
    prompt->add_token_ids(3 + p % 30);
  }
  gen.mutable_sampling()->set_temperature(1.0);
  gen.mutable_sampling()->set_max_new_tokens(60);
  absl::Status result;
  std::atomic<size_t> received{0};
  const size_t expected = 24u * 16u;
  std::thread call([&] {
    result = actor_->Generate(gen, [&](grail::v1::Sample) { ++received; });
  });
  // SIGTERM only once the server is serving the call: a fixed sleep raced the call's
  // arrival on slow machines, and a call that arrives after shutdown began is refused.
  // Either sign will do: the server's in-flight gauge, or samples streaming back before
  // the last. Each scrape is bounded, so one stuck scrape does not use up the wait.
  const std::string in_flight = "grail_actor_rpc_in_flight{method=\"/grail.v1.ActorService/Generate\"} 1";
  auto serving = [&] {
    if (received > 0 && received < expected) return true;
    return RunCommand("curl -sf --max-time 2 http://" + actor_proc_->metrics_address() + "/metrics")
               .output.find(in_flight) != std::string::npos;
  };
  bool seen_in_flight = false;
  for (const absl::Time deadline = absl::Now() + absl::Seconds(30);
       !seen_in_flight && absl::Now() < deadline && received < expected; absl::SleepFor(absl::Milliseconds(20))) {
    seen_in_flight = serving();
  }
  EXPECT_TRUE(seen_in_flight) << "the Generate call never showed as in flight (" << received << " of " << expected
                              << " samples back)";
  auto status = actor_proc_->SignalAndWait(SIGTERM, absl::Seconds(30));
  call.join();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0);
  EXPECT_TRUE(result.ok()) << result;
  EXPECT_EQ(received, expected);
}

}  // namespace
}  // namespace grail::testing
