// grail-bench: measurements with a baseline taken in the same run, one JSON line each:
//   {"name", "value", "unit", "baseline_name", "baseline_value", "ratio": value / baseline}
//
//   grail-bench weight_sync       a >= 100 MB model: learner -> coordinator -> two actors over
//                                 loopback gRPC, as the synchronous loop syncs (chunks streamed
//                                 through to the actors as they arrive, digest-checked, staged
//                                 and swapped), bytes delivered per second, against an
//                                 in-process memcpy of the same bytes, and against the
//                                 store-and-forward path (whole fetch, then upload).
//   grail-bench async_step_time   mean RL step time with max_staleness 1 against the
//                                 synchronous loop, on the demo run (same seed, same steps).
//   grail-bench tokenize          bytes of mixed text (tests/tokenizer/make_corpus.py) encoded
//                                 per second on one thread with the real Qwen3, Llama-3 and Llama-2
//                                 tokenizers, against Hugging Face's tokenizers library on one
//                                 thread on the same strings (bench/tokenize_reference.js).
//   grail-bench lora              LoRA and QLoRA against full fine-tuning (Lora() below).
//   grail-bench rollout           generated tokens per second of one actor against an eager
//                                 PyTorch generation loop (bench/eager_peer.py), batch 64 and 16,
//                                 and the actor's decode FLOP/s against a one-thread sgemm.
//   grail-bench sft_packing       a supervised step on sequences of mixed lengths, packed
//                                 (trainer.sft_pack_length) against right-padded (SftPacking()).
//   grail-bench learner_step      the learner's PPO step time and peak RSS against the eager
//                                 peer's (LearnerStep() below).
//   grail-bench time_to_accuracy  wall time to 0.75 held-out accuracy on the demo task against
//                                 the eager peer's single-process GRPO loop (TimeToAccuracy()),
//                                 and what it is made of: warm-up time, RL steps, RL step time.
//
// Service binaries come from GRAIL_BIN_DIR (default build/bin); the demo spec from
// GRAIL_SOURCE_DIR (default .).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "actor/actor_client.h"
#include "common/config.h"
#include "common/memory.h"
#include "common/parallel.h"
#include "common/status_macros.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/experience.h"
#include "coordinator/run_client.h"
#include "coordinator/weights_tracker.h"
#include "learner/learner_client.h"
#include "model/safetensors.h"
#include "tests/local_cluster.h"
#include "tests/service_process.h"
#include "tokenizer/hf_tokenizer.h"

namespace grail::bench {
namespace {

using testing::LocalCluster;
using testing::ServiceProcess;

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

void Emit(const std::string& name, double value, const std::string& unit, const std::string& baseline_name,
          double baseline) {
  nlohmann::ordered_json j;
  j["name"] = name;
  j["value"] = value;
  j["unit"] = unit;
  j["baseline_name"] = baseline_name;
  j["baseline_value"] = baseline;
  j["ratio"] = baseline != 0 ? value / baseline : 0.0;
  std::cout << j.dump() << std::endl;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// "median (min..max)" of a list of repetitions, for stderr.
std::string Spread(const std::vector<double>& v) {
  return absl::StrCat(Median(v), " (", *std::min_element(v.begin(), v.end()), "..",
                      *std::max_element(v.begin(), v.end()), ")");
}

int Fail(const std::string& what, const absl::Status& status) {
  std::cerr << "grail-bench: " << what << ": " << status << std::endl;
  return 1;
}

// A float32 or int64 [rows, cols] wire tensor.
template <typename T>
grail::v1::Tensor WireMatrix(int64_t rows, int64_t cols, const std::vector<T>& values) {
  grail::v1::Tensor t;
  t.set_dtype(std::is_same_v<T, float> ? grail::v1::DTYPE_FLOAT32 : grail::v1::DTYPE_INT64);
  t.add_shape(rows);
  t.add_shape(cols);
  t.set_data(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T));
  return t;
}

// The weight_sync and lora benches' model: about 37M float32 parameters (~170 MB of
// safetensors).
grail::v1::RunSpec BenchModelSpec() {
  grail::v1::RunSpec spec;
  auto* c = spec.mutable_model()->mutable_config();
  c->set_vocab_size(8192);
  c->set_hidden_size(1024);
  c->set_intermediate_size(2816);
  c->set_num_hidden_layers(2);
  c->set_num_attention_heads(8);
  c->set_num_key_value_heads(8);
  c->set_max_position_embeddings(256);
  spec.mutable_model()->set_init_seed(1);
  return spec;
}

// A learner and two actors, one thread each, with clients (5-minute deadlines).
struct Services {
  std::unique_ptr<ServiceProcess> learner_proc;
  std::vector<std::unique_ptr<ServiceProcess>> actor_procs;
  std::vector<std::shared_ptr<actor::ActorClient>> actors;
  std::unique_ptr<learner::LearnerClient> learner;
};

// `actor_flags[i]`, where given, are actor i's flags beyond --threads=1.
absl::StatusOr<Services> StartLearnerAndActors(int num_actors = 2,
                                               const std::vector<std::vector<std::string>>& actor_flags = {}) {
  Services s;
  ASSIGN_OR_RETURN(s.learner_proc, ServiceProcess::Start("grail-learner", {"--threads=1"}));
  for (int i = 0; i < num_actors; ++i) {
    std::vector<std::string> flags = {"--threads=1"};
    if (i < static_cast<int>(actor_flags.size())) flags.insert(flags.end(), actor_flags[i].begin(), actor_flags[i].end());
    ASSIGN_OR_RETURN(std::unique_ptr<ServiceProcess> a, ServiceProcess::Start("grail-actor", flags));
    ClientOptions o;
    o.target = a->grpc_address();
    o.timeout = absl::Minutes(5);
    s.actors.push_back(actor::NewGrpcActorClient(o));
    s.actor_procs.push_back(std::move(a));
  }
  ClientOptions lo;
  lo.target = s.learner_proc->grpc_address();
  lo.timeout = absl::Minutes(5);
  s.learner = learner::NewGrpcLearnerClient(lo);
  return s;
}

int WeightSync() {
  const grail::v1::RunSpec spec = BenchModelSpec();
  auto services = StartLearnerAndActors();
  if (!services.ok()) return Fail("services", services.status());
  auto& actors = services->actors;
  auto& learner = services->learner;
  auto init = learner->InitModel(spec);
  if (!init.ok()) return Fail("InitModel", init.status());
  // A one-row supervised step between syncs, so that every sync carries a new version.
  grail::v1::SupervisedStepRequest tiny;
  *tiny.mutable_input_ids() = WireMatrix<int64_t>(1, 8, {3, 4, 5, 6, 7, 8, 9, 10});
  *tiny.mutable_loss_mask() = WireMatrix<float>(1, 8, {0, 1, 1, 1, 1, 1, 1, 1});
  int64_t version = init->weights_version();
  auto next_version = [&]() -> absl::Status {
    ASSIGN_OR_RETURN(auto stepped, learner->SupervisedStep(tiny));
    version = stepped.weights_version();
    return absl::OkStatus();
  };

  // The coordinator's path (WeightsTracker::KeepAndSync, as the synchronous loop syncs):
  // each chunk goes on to both actors as it arrives from the learner. Store-and-forward,
  // for comparison: the whole blob fetched, then uploaded to both actors. Five rounds each,
  // interleaved; the first two build each actor's two resident models, later ones stage
  // into the spare; the best round counts.
  // This process relays as the coordinator does, with its memory settings.
  KeepFreedMemory();
  prometheus::Registry registry;
  coordinator::CoordinatorMetrics metrics(registry);
  coordinator::WeightsTracker tracker(actors, learner.get(), &metrics, /*max_staleness=*/0);
  double best_stream = 1e30, best_store = 1e30;
  int64_t bytes = 0;
  for (int round = 0; round < 5; ++round) {
    if (auto s = next_version(); !s.ok()) return Fail("SupervisedStep", s);
    double t0 = Now();
    if (auto s = tracker.KeepAndSync(round, version); !s.ok()) return Fail("KeepAndSync", s);
    const double stream = Now() - t0;
    bytes = static_cast<int64_t>(tracker.After(round)->blob.size());
    if (auto s = next_version(); !s.ok()) return Fail("SupervisedStep", s);
    t0 = Now();
    auto weights = learner->GetWeights(version);
    if (!weights.ok()) return Fail("GetWeights", weights.status());
    const double t1 = Now();
    absl::Status s = ParallelFor(actors.size(), [&](size_t i) {
      return actors[i]->LoadWeights(weights->blob, version).status();
    });
    if (!s.ok()) return Fail("LoadWeights", s);
    const double store = Now() - t0;
    std::cerr << "grail-bench: weight_sync round " << round << ": stream-through " << stream
              << " s; store-and-forward " << store << " s (fetch " << t1 - t0 << " s, load into 2 actors "
              << Now() - t1 << " s)" << std::endl;
    if (round >= 2) best_stream = std::min(best_stream, stream), best_store = std::min(best_store, store);
  }
  std::cerr << "grail-bench: weight_sync model " << bytes / 1e6 << " MB, " << init->num_parameters()
            << " parameters, best sync " << best_stream << " s streamed through, " << best_store
            << " s stored and forwarded" << std::endl;
  // Baseline: memcpy of the same bytes, twice (one copy per actor), best of three.
  std::string src(static_cast<size_t>(bytes), '\x5a'), dst(static_cast<size_t>(bytes), '\0');
  double copy_best = 1e30;
  for (int round = 0; round < 3; ++round) {
    const double t0 = Now();
    for (int i = 0; i < 2; ++i) {
      src[i] = static_cast<char>(round + i);
      std::memcpy(dst.data(), src.data(), src.size());
    }
    copy_best = std::min(copy_best, Now() - t0);
  }
  if (dst[1] != src[1]) std::cerr << "";  // keeps the copies observable
  Emit("weight_sync", 2.0 * bytes / best_stream, "bytes/s", "memcpy", 2.0 * bytes / copy_best);
  Emit("weight_sync_vs_store_and_forward", 2.0 * bytes / best_stream, "bytes/s", "store_and_forward",
       2.0 * bytes / best_store);
  return 0;
}

// LoRA (README, "PEFT"), r 8 on all seven projections of WeightSync's model, against full
// fine-tuning of the same model in the same run:
//   lora_weight_sync_bytes  bytes per version sent to the actors (the adapters), vs the whole model
//   lora_weight_sync_time   one version fetched and loaded into two actors, vs the whole model
//   lora_step_time          one supervised learner step on the same batch (32 x 128 tokens)
//   qlora_base_memory       the frozen base's resident bytes in NF4 vs float32 (and bfloat16)
//   qlora_logprob_drift     mean per-token |log-prob change| of the batch from quantising
// Times are the median of 5 (syncs) or 3 (steps), full and LoRA interleaved, each after an
// untimed first step and fetch.
int Lora() {
  grail::v1::RunSpec full = BenchModelSpec();
  full.mutable_trainer()->set_sft_learning_rate(1e-4f);
  grail::v1::RunSpec lora = full;
  lora.mutable_model()->mutable_peft()->set_type(grail::v1::PEFT_TYPE_LORA);
  lora.mutable_model()->mutable_peft()->set_r(8);
  auto services = StartLearnerAndActors();
  if (!services.ok()) return Fail("services", services.status());
  auto& actors = services->actors;
  auto& learner = services->learner;
  grail::v1::SupervisedStepRequest batch;
  {
    const int64_t B = 32, T = 128;
    std::vector<int64_t> ids(B * T);
    std::vector<float> mask(B * T);
    for (int64_t i = 0; i < B * T; ++i) ids[i] = 3 + (i * 7919) % 8000, mask[i] = (i % T) >= 16 ? 1.0f : 0.0f;
    auto* t = batch.mutable_input_ids();
    t->set_dtype(grail::v1::DTYPE_INT64);
    t->add_shape(B), t->add_shape(T);
    t->set_data(reinterpret_cast<const char*>(ids.data()), ids.size() * 8);
    auto* m = batch.mutable_loss_mask();
    m->set_dtype(grail::v1::DTYPE_FLOAT32);
    m->add_shape(B), m->add_shape(T);
    m->set_data(reinterpret_cast<const char*>(mask.data()), mask.size() * 4);
  }
  int64_t version = 0;  // actors accept only newer versions
  std::map<std::string, std::vector<double>> sync_times, step_times;
  std::map<std::string, int64_t> sync_bytes;
  for (int round = 0; round < 5; ++round) {
    for (const auto* spec : {&full, &lora}) {
      const std::string name = spec == &full ? "full" : "lora";
      auto init = learner->InitModel(*spec);
      if (!init.ok()) return Fail("InitModel", init.status());
      // Untimed, after each InitModel: a first step (allocations) and a first fetch (the
      // frozen part's digest, computed once per model), so that both modes are timed as a
      // run's later steps are.
      if (!learner->SupervisedStep(batch).ok() || !learner->GetWeights(0).ok()) {
        return Fail("warm-up", absl::InternalError("first step or fetch failed"));
      }
      if (round == 0 && spec == &lora) {
        // Each actor holds the frozen base once per run, before the first adapter.
        auto frozen = learner->GetWeights(0, grail::v1::WEIGHTS_PART_FROZEN);
        if (!frozen.ok()) return Fail("GetWeights(frozen)", frozen.status());
        for (auto& a : actors) {
          auto loaded = a->LoadWeights(frozen->blob, version);
          if (!loaded.ok()) return Fail("LoadWeights(frozen)", loaded.status());
        }
      }
      if (round < 3) {  // three timed steps each
        const double t0 = Now();
        auto stepped = learner->SupervisedStep(batch);
        if (!stepped.ok()) return Fail("SupervisedStep", stepped.status());
        step_times[name].push_back(Now() - t0);
        std::cerr << "grail-bench: lora round " << round << " " << name << " step " << Now() - t0 << " s" << std::endl;
      }
      const double t0 = Now();
      auto weights = learner->GetWeights(0);
      if (!weights.ok()) return Fail("GetWeights", weights.status());
      ++version;
      absl::Status s = ParallelFor(actors.size(), [&](size_t i) {
        return actors[i]->LoadWeights(weights->blob, version).status();
      });
      if (!s.ok()) return Fail("LoadWeights", s);
      sync_times[name].push_back(Now() - t0);
      sync_bytes[name] = static_cast<int64_t>(weights->blob.size());
      std::cerr << "grail-bench: lora round " << round << " " << name << " sync " << weights->blob.size() / 1e6
                << " MB in " << Now() - t0 << " s" << std::endl;
    }
  }
  // QLoRA: the frozen base held in NF4 (double-quantised scales) against float32, and the
  // quality cost: the mean per-token change of the same tokens' log-probs.
  grail::v1::RunSpec qlora = lora;
  qlora.mutable_model()->set_quantize("nf4");
  grail::v1::ScoreSequencesRequest score;
  *score.mutable_input_ids() = batch.input_ids();
  std::vector<std::vector<float>> log_probs;
  int64_t base_bytes[2] = {0, 0};
  for (const auto* spec : {&lora, &qlora}) {
    auto init = learner->InitModel(*spec);
    if (!init.ok()) return Fail("InitModel", init.status());
    base_bytes[spec == &qlora] = init->frozen_resident_bytes();
    auto scored = learner->ScoreSequences(score);
    if (!scored.ok()) return Fail("ScoreSequences", scored.status());
    const auto& t = scored->log_probs();
    const float* v = reinterpret_cast<const float*>(t.data().data());
    log_probs.emplace_back(v, v + t.data().size() / 4);
  }
  double drift = 0;
  for (size_t i = 0; i < log_probs[0].size(); ++i) drift += std::abs(log_probs[0][i] - log_probs[1][i]);
  drift /= std::max<size_t>(1, log_probs[0].size());
  std::cerr << "grail-bench: qlora base " << base_bytes[1] / 1e6 << " MB in nf4, " << base_bytes[0] / 1e6
            << " MB in float32 (" << base_bytes[0] / 2e6 << " MB as bfloat16); mean |log-prob change| per token "
            << drift << std::endl;
  Emit("qlora_base_memory", static_cast<double>(base_bytes[1]), "bytes", "fp32_base_bytes",
       static_cast<double>(base_bytes[0]));
  Emit("qlora_base_memory_vs_bf16", static_cast<double>(base_bytes[1]), "bytes", "bf16_base_bytes",
       static_cast<double>(base_bytes[0]) / 2);
  Emit("qlora_logprob_drift", drift, "nats/token", "none", 0);
  Emit("lora_weight_sync_bytes", static_cast<double>(sync_bytes["lora"]), "bytes", "full_sync_bytes",
       static_cast<double>(sync_bytes["full"]));
  Emit("lora_weight_sync_time", Median(sync_times["lora"]), "s", "full_sync_time", Median(sync_times["full"]));
  Emit("lora_step_time", Median(step_times["lora"]), "s", "full_step_time", Median(step_times["full"]));
  return 0;
}

// Mean RL step time (the step report's time_step) of the demo run cut to `steps` steps.
absl::StatusOr<double> DemoStepTime(int max_staleness, int steps) {
  const char* src = std::getenv("GRAIL_SOURCE_DIR");
  ASSIGN_OR_RETURN(std::string text,
                   model::ReadFileToString(std::string(src ? src : ".") + "/deploy/demo/arithmetic.yaml"));
  grail::v1::RunSpec spec;
  RETURN_IF_ERROR(ParseConfig(text, ConfigFormat::kYaml, &spec));
  spec.mutable_trainer()->set_total_steps(steps);
  spec.mutable_trainer()->set_eval_every(0);
  spec.mutable_trainer()->set_eval_size(50);
  spec.mutable_trainer()->set_sft_steps(200);
  spec.mutable_trainer()->set_sft_target_accuracy(0);  // a fixed warm-up: the bench times RL steps
  spec.mutable_trainer()->set_max_staleness(max_staleness);
  testing::LocalClusterOptions options;
  options.learner_threads = 1;
  ASSIGN_OR_RETURN(auto cluster, LocalCluster::Start(options));
  auto client = cluster->NewRunClient();
  ASSIGN_OR_RETURN(std::string id, client->Submit(spec));
  std::vector<double> times;
  std::map<std::string, double> phases;
  grail::v1::StepReport last;
  RETURN_IF_ERROR(client->Watch(id, [&](const grail::v1::StepReport& r) {
    last = r;
    // Step 1 has nothing to overlap with; the mean is over steps 2..N.
    if (r.phase() == "rl" && r.step() > 1) {
      times.push_back(r.metrics().at("time_step"));
      for (const auto& [k, v] : r.metrics()) {
        if (k.rfind("time_", 0) == 0) phases[k] += v / (steps - 1);
      }
    }
  }));
  for (const auto& [k, v] : phases) std::cerr << "grail-bench: max_staleness " << max_staleness << ": mean " << k << " " << v << " s" << std::endl;
  if (last.state() != grail::v1::RUN_STATE_SUCCEEDED) {
    return absl::InternalError(absl::StrCat("demo run ended ", last.message()));
  }
  double sum = 0;
  for (double t : times) sum += t;
  std::cerr << "grail-bench: max_staleness " << max_staleness << ": mean step " << sum / times.size() << " s over "
            << times.size() << " steps" << std::endl;
  return sum / times.size();
}

int AsyncStepTime() {
  const int steps = 12;
  auto sync = DemoStepTime(0, steps);
  if (!sync.ok()) return Fail("sync run", sync.status());
  auto async = DemoStepTime(1, steps);
  if (!async.ok()) return Fail("async run", async.status());
  Emit("async_step_time", *async, "s", "sync_step_time", *sync);
  return 0;
}

// Runs `command` and returns what it printed, or an error with its exit status.
absl::StatusOr<std::string> Output(const std::string& command) {
  FILE* p = popen(command.c_str(), "r");
  if (p == nullptr) return absl::InternalError("popen failed");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
  const int rc = pclose(p);
  if (rc != 0) return absl::InternalError(absl::StrCat(command, ": exit ", rc));
  return out;
}

// Writes `text` to `path`.
absl::Status WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// The eager PyTorch peer (bench/eager_peer.py) run once on `threads` intra-op threads; its JSON output.
absl::StatusOr<nlohmann::json> RunPeer(const std::string& args, int threads = 1) {
  const char* src = std::getenv("GRAIL_SOURCE_DIR");
  const std::string command =
      absl::StrCat("/usr/bin/python3 ", src ? src : ".", "/bench/eager_peer.py ", args, " --threads=", threads);
  ASSIGN_OR_RETURN(std::string out, Output(command));
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return absl::InternalError(absl::StrCat("peer printed no JSON: ", out));
  return j;
}

// The rollout benches' model (the reference shape): hidden 256, 4 layers, 4 heads
// over 2 key/value heads, vocabulary 2048.
grail::v1::RunSpec RolloutModelSpec() {
  grail::v1::RunSpec spec;
  auto* c = spec.mutable_model()->mutable_config();
  c->set_vocab_size(2048);
  c->set_hidden_size(256);
  c->set_intermediate_size(704);
  c->set_num_hidden_layers(4);
  c->set_num_attention_heads(4);
  c->set_num_key_value_heads(2);
  c->set_max_position_embeddings(256);
  spec.mutable_model()->set_init_seed(1);
  return spec;
}

// The model's config.json for the peer.
std::string PeerConfig(const grail::v1::ModelConfig& c) {
  nlohmann::json j;
  j["vocab_size"] = c.vocab_size();
  j["hidden_size"] = c.hidden_size();
  j["intermediate_size"] = c.intermediate_size();
  j["num_hidden_layers"] = c.num_hidden_layers();
  j["num_attention_heads"] = c.num_attention_heads();
  j["num_key_value_heads"] = c.num_key_value_heads();
  return j.dump();
}

// Rollout throughput, one actor on one thread against the eager peer on one thread, the
// same weights and prompts (16 tokens each, 64 new tokens, temperature 1, no stop token):
//   rollout_tokens_per_s_b64, rollout_tokens_per_s_b16   generated tokens per second
//   rollout_packed_vs_blas_b64   the actor as deployed against one with --pack_weights=false
//                      (OpenBLAS packing its weight operand on every call), same run
//   decode_flops_b64   the actor's matmul FLOP/s at batch 64 against a one-thread sgemm
//                      (1024^3, measured by the peer in the same run)
//   rollout_shared_prefix_g16   4 prompts of 192 tokens, 16 samples each, 48 new tokens:
//                      the actor as deployed against one with --share_prefixes=false (each
//                      sample's slot copies its prompt's keys and values), same run
// Each figure is the median of 3 repetitions, grail and peer interleaved, after one untimed
// generation each.
int Rollout() {
  const grail::v1::RunSpec spec = RolloutModelSpec();
  const auto& c = spec.model().config();
  // Actor 0 as deployed; actor 1 without packed weights, for rollout_packed_vs_blas_b64;
  // actor 2 without shared prefixes, for rollout_shared_prefix_g16.
  auto services =
      StartLearnerAndActors(/*num_actors=*/3, {{}, {"--pack_weights=false"}, {"--share_prefixes=false"}});
  if (!services.ok()) return Fail("services", services.status());
  auto init = services->learner->InitModel(spec);
  if (!init.ok()) return Fail("InitModel", init.status());
  auto weights = services->learner->GetWeights(0);
  if (!weights.ok()) return Fail("GetWeights", weights.status());
  for (auto& actor : services->actors) {
    auto loaded = actor->LoadWeights(weights->blob, weights->version);
    if (!loaded.ok()) return Fail("LoadWeights", loaded.status());
  }
  const std::string dir = absl::StrCat("/tmp/grail-bench-rollout-", getpid());
  std::filesystem::create_directories(dir);
  if (auto s = WriteFile(dir + "/model.safetensors", weights->blob); !s.ok()) return Fail("weights", s);
  if (auto s = WriteFile(dir + "/config.json", PeerConfig(c)); !s.ok()) return Fail("config", s);
  const int kPromptLen = 16, kNewTokens = 64;
  // Matmul FLOPs per generated token: every projection and the lm_head (2 per weight).
  const int64_t head_dim = c.hidden_size() / c.num_attention_heads();
  const double per_layer = static_cast<double>(c.hidden_size()) *
                               (2 * c.num_attention_heads() * head_dim + 2 * c.num_key_value_heads() * head_dim) +
                           3.0 * c.hidden_size() * c.intermediate_size();
  const double flops_per_token = 2 * (c.num_hidden_layers() * per_layer + static_cast<double>(c.hidden_size()) * c.vocab_size());
  for (int batch : {64, 16}) {
    std::vector<std::vector<int64_t>> prompts(batch);
    grail::v1::GenerateRequest request;
    request.set_run_id("bench");
    request.set_group_size(1);
    request.mutable_sampling()->set_temperature(1.0f);
    request.mutable_sampling()->set_max_new_tokens(kNewTokens);
    request.mutable_sampling()->set_seed(7);
    for (int b = 0; b < batch; ++b) {
      auto* p = request.add_prompts();
      p->set_prompt_id(b);
      for (int t = 0; t < kPromptLen; ++t) {
        prompts[b].push_back(3 + (b * 131 + t * 977 + 17) % (c.vocab_size() - 3));
        p->add_token_ids(static_cast<int32_t>(prompts[b].back()));
      }
    }
    if (auto s = WriteFile(dir + "/prompts.json", nlohmann::json(prompts).dump()); !s.ok()) return Fail("prompts", s);
    const std::string peer_args = absl::StrCat("generate --weights=", dir, "/model.safetensors --config=", dir,
                                               "/config.json --prompts=", dir, "/prompts.json --new_tokens=",
                                               kNewTokens, " --temperature=1 --seed=7");
    // Tokens per second of one Generate call on `actor`.
    auto generate = [&](actor::ActorClient& actor) -> absl::StatusOr<double> {
      int64_t tokens = 0;
      const double t0 = Now();
      absl::Status s = actor.Generate(request, [&](grail::v1::Sample sample) { tokens += sample.token_ids_size(); });
      const double seconds = Now() - t0;
      if (!s.ok()) return s;
      return tokens / seconds;
    };
    std::vector<double> grail_rate, blas_rate, peer_rate;
    for (int rep = 0; rep < 4; ++rep) {  // rep 0 untimed on every side
      auto packed = generate(*services->actors[0]);
      if (!packed.ok()) return Fail("Generate", packed.status());
      auto blas = batch == 64 ? generate(*services->actors[1]) : absl::StatusOr<double>(0.0);
      if (!blas.ok()) return Fail("Generate (unpacked)", blas.status());
      auto peer = RunPeer(peer_args);
      if (!peer.ok()) return Fail("peer generate", peer.status());
      if (rep == 0) continue;
      grail_rate.push_back(*packed);
      blas_rate.push_back(*blas);
      peer_rate.push_back((*peer)["tokens"].get<double>() / (*peer)["seconds"].get<double>());
      std::cerr << "grail-bench: rollout batch " << batch << " rep " << rep << ": grail " << grail_rate.back()
                << " tokens/s" << (batch == 64 ? absl::StrCat(" (unpacked ", blas_rate.back(), ")") : "")
                << ", eager peer " << peer_rate.back() << " tokens/s" << std::endl;
    }
    std::cerr << "grail-bench: rollout batch " << batch << ": grail " << Spread(grail_rate) << ", eager peer "
              << Spread(peer_rate) << " tokens/s" << std::endl;
    Emit(absl::StrCat("rollout_tokens_per_s_b", batch), Median(grail_rate), "tokens/s", "eager_pytorch_tokens_per_s",
         Median(peer_rate));
    if (batch == 64) {
      std::cerr << "grail-bench: rollout batch 64 without packed weights: " << Spread(blas_rate) << " tokens/s"
                << std::endl;
      Emit("rollout_packed_vs_blas_b64", Median(grail_rate), "tokens/s", "grail_actor_pack_weights_false",
           Median(blas_rate));
      auto peak = RunPeer("sgemm");
      if (!peak.ok()) return Fail("peer sgemm", peak.status());
      Emit("decode_flops_b64", Median(grail_rate) * flops_per_token, "FLOP/s", "sgemm_1thread_flops",
           (*peak)["flops"].get<double>());
    }
  }
  std::filesystem::remove_all(dir);

  // Group sampling of long prompts: what sharing each prompt's keys and values saves.
  grail::v1::GenerateRequest group;
  group.set_run_id("bench");
  group.set_group_size(16);
  group.mutable_sampling()->set_temperature(1.0f);
  group.mutable_sampling()->set_max_new_tokens(48);
  group.mutable_sampling()->set_seed(7);
  for (int p = 0; p < 4; ++p) {
    auto* prompt = group.add_prompts();
    prompt->set_prompt_id(p);
    for (int t = 0; t < 192; ++t) prompt->add_token_ids(3 + (p * 131 + t * 977 + 17) % (c.vocab_size() - 3));
  }
  auto group_rate = [&](actor::ActorClient& actor) -> absl::StatusOr<double> {
    int64_t tokens = 0;
    const double t0 = Now();
    absl::Status s = actor.Generate(group, [&](grail::v1::Sample sample) { tokens += sample.token_ids_size(); });
    if (!s.ok()) return s;
    return tokens / (Now() - t0);
  };
  std::vector<double> shared_rate, copied_rate;
  for (int rep = 0; rep < 4; ++rep) {  // rep 0 untimed
    auto shared = group_rate(*services->actors[0]);
    if (!shared.ok()) return Fail("Generate (shared prefixes)", shared.status());
    auto copied = group_rate(*services->actors[2]);
    if (!copied.ok()) return Fail("Generate (copied prefixes)", copied.status());
    if (rep == 0) continue;
    shared_rate.push_back(*shared);
    copied_rate.push_back(*copied);
    std::cerr << "grail-bench: rollout 4 x 16 samples of 192-token prompts rep " << rep << ": shared prefixes "
              << shared_rate.back() << " tokens/s, copied " << copied_rate.back() << std::endl;
  }
  std::cerr << "grail-bench: rollout 4 x 16 samples of 192-token prompts: shared prefixes " << Spread(shared_rate)
            << ", copied " << Spread(copied_rate) << " tokens/s" << std::endl;
  Emit("rollout_shared_prefix_g16", Median(shared_rate), "tokens/s", "grail_actor_share_prefixes_false",
       Median(copied_rate));
  return 0;
}

// A PPO batch of `rows` x `cols` tokens (16 prompt tokens, the rest response) on the
// learner's current policy: old log-probs 0.01 below its own, one advantage per row.
absl::StatusOr<grail::v1::TrainStepRequest> PpoBatch(learner::LearnerClient& learner, int64_t vocab, int64_t rows,
                                                     int64_t cols) {
  std::vector<int64_t> ids(rows * cols);
  std::vector<float> mask(rows * cols), adv(rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i) {
    ids[i] = 3 + (i * 7919 + 13) % (vocab - 3);
    mask[i] = (i % cols) >= 16 ? 1.0f : 0.0f;
    adv[i] = static_cast<float>(((i / cols) * 37 % 11) - 5) / 5.0f;
  }
  grail::v1::TrainStepRequest request;
  auto* x = request.mutable_experience();
  *x->mutable_input_ids() = WireMatrix(rows, cols, ids);
  *x->mutable_response_mask() = WireMatrix(rows, cols, mask);
  *x->mutable_advantages() = WireMatrix(rows, cols, adv);
  grail::v1::ScoreSequencesRequest score;
  *score.mutable_input_ids() = x->input_ids();
  ASSIGN_OR_RETURN(auto scored, learner.ScoreSequences(score));
  std::vector<float> old(rows * cols);
  std::memcpy(old.data(), scored.log_probs().data().data(), old.size() * 4);
  for (float& v : old) v -= 0.01f;
  *x->mutable_old_log_probs() = WireMatrix(rows, cols, old);
  return request;
}

// Peak resident bytes of a process (VmHWM).
int64_t PeakRss(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

// Sequence packing (trainer.sft_pack_length) against right padding, on the rollout model
// with a 512-token context: one supervised step on 64 sequences whose lengths spread from
// 16 to 512 tokens (the second half of each trains), packed into rows of at most 512
// tokens or padded to the longest. Medians of 3 steps after an untimed one, the two
// interleaved; both take the same update (learner/trainer_test.cc). Prints the padded and
// packed token counts too.
//   sft_packed_step_time   against sft_padded_step_time
int SftPacking() {
  grail::v1::RunSpec spec = RolloutModelSpec();
  spec.mutable_model()->mutable_config()->set_max_position_embeddings(512);
  spec.mutable_trainer()->set_sft_learning_rate(1e-4f);
  auto services = StartLearnerAndActors(/*num_actors=*/0);
  if (!services.ok()) return Fail("services", services.status());
  auto init = services->learner->InitModel(spec);
  if (!init.ok()) return Fail("InitModel", init.status());
  const int64_t vocab = spec.model().config().vocab_size();
  std::vector<coordinator::SupervisedRow> rows(64);
  for (size_t i = 0; i < rows.size(); ++i) {
    const size_t n = 16 + (i * 37 % 64) * 496 / 63;  // 16..512, spread over the batch
    for (size_t t = 0; t < n; ++t) {
      rows[i].ids.push_back(static_cast<int>(3 + (i * 7919 + t * 131) % (vocab - 3)));
      rows[i].loss_mask.push_back(t >= n / 2 ? 1 : 0);
    }
  }
  const auto padded = coordinator::SupervisedStepRequest(1, rows, 0);
  const auto packed = coordinator::SupervisedStepRequest(1, rows, 0, /*pack_length=*/512);
  auto tokens = [](const grail::v1::SupervisedStepRequest& r) { return r.input_ids().shape(0) * r.input_ids().shape(1); };
  std::cerr << "grail-bench: sft_packing: padded " << padded.input_ids().shape(0) << " rows, " << tokens(padded)
            << " tokens; packed " << packed.input_ids().shape(0) << " rows, " << tokens(packed) << " tokens"
            << std::endl;
  std::vector<double> packed_s, padded_s;
  for (int rep = 0; rep < 4; ++rep) {  // rep 0 untimed
    for (const bool pack : {true, false}) {
      auto request = pack ? packed : padded;
      request.set_step(2 * rep + (pack ? 1 : 2));
      const double t0 = Now();
      auto stepped = services->learner->SupervisedStep(request);
      if (!stepped.ok()) return Fail("SupervisedStep", stepped.status());
      if (rep > 0) (pack ? packed_s : padded_s).push_back(Now() - t0);
    }
    if (rep > 0) {
      std::cerr << "grail-bench: sft_packing rep " << rep << ": packed " << packed_s.back() << " s, padded "
                << padded_s.back() << " s" << std::endl;
    }
  }
  std::cerr << "grail-bench: sft_packing: packed " << Spread(packed_s) << " s, padded " << Spread(padded_s) << " s"
            << std::endl;
  Emit("sft_packed_step_time", Median(packed_s), "s", "sft_padded_step_time", Median(padded_s));
  return 0;
}

// The learner's PPO step (one thread) against the eager peer's (one thread), the same
// weights and batch (token-mean clipped loss, gradient clip 1, AdamW, entropy reported):
//   ppo_step_time      64 rows x 128 tokens on the rollout model: median of 3 steps, each
//                      side after an untimed first step, grail and peer interleaved
//   learner_peak_rss   peak RSS of a fresh learner process through one PPO step on a
//                      150k-vocabulary model (hidden 256, 2 layers) with one 2048-token row,
//                      against the peer's process on the same step
//   checkpointing_peak_rss, checkpointing_step_time
//                      trainer.gradient_checkpointing against the same learner without it,
//                      on a model whose activations dominate (8 layers, hidden 256, vocab
//                      2048, one 2048-token row): peak RSS and the time of the (second) step
int LearnerStep() {
  const std::string dir = absl::StrCat("/tmp/grail-bench-learner-", getpid());
  std::filesystem::create_directories(dir);
  double plain_peak = 0, plain_seconds = 0;  // the deep model without recomputation
  // The PPO step; peak RSS at a 150k vocabulary; the deep model without and with recomputation.
  for (const int variant : {0, 1, 2, 3}) {
    const bool big = variant == 1, deep = variant >= 2;
    grail::v1::RunSpec spec = RolloutModelSpec();
    auto* c = spec.mutable_model()->mutable_config();
    int64_t rows = 64, cols = 128;
    if (big) {
      c->set_vocab_size(151936);
      c->set_num_hidden_layers(2);
      c->set_max_position_embeddings(2048);
      rows = 1, cols = 2048;
    }
    if (deep) {
      c->set_num_hidden_layers(8);
      c->set_max_position_embeddings(2048);
      rows = 1, cols = 2048;
    }
    spec.mutable_algorithm()->set_policy_loss(grail::v1::POLICY_LOSS_PPO);
    spec.mutable_algorithm()->set_clip_ratio_low(0.2f);
    spec.mutable_algorithm()->set_clip_ratio_high(0.28f);
    spec.mutable_trainer()->set_learning_rate(1e-5f);
    spec.mutable_trainer()->set_grad_clip(1.0f);
    spec.mutable_trainer()->set_gradient_checkpointing(variant == 3);
    auto services = StartLearnerAndActors(/*num_actors=*/0);
    if (!services.ok()) return Fail("services", services.status());
    auto& learner = services->learner;
    auto init = learner->InitModel(spec);
    if (!init.ok()) return Fail("InitModel", init.status());
    auto weights = learner->GetWeights(0);
    if (!weights.ok()) return Fail("GetWeights", weights.status());
    if (auto s = WriteFile(dir + "/model.safetensors", weights->blob); !s.ok()) return Fail("weights", s);
    if (auto s = WriteFile(dir + "/config.json", PeerConfig(*c)); !s.ok()) return Fail("config", s);
    auto batch = PpoBatch(*learner, c->vocab_size(), rows, cols);
    if (!batch.ok()) return Fail("batch", batch.status());
    const std::string peer_args =
        absl::StrCat("ppo_step --weights=", dir, "/model.safetensors --config=", dir, "/config.json --batch=", rows,
                     " --seq_len=", cols, " --prompt_len=16 --repeats=", big ? 1 : 2);
    if (deep) {
      double seconds = 0;
      for (int step = 1; step <= 2; ++step) {
        batch->set_step(step);
        const double t0 = Now();
        auto stepped = learner->TrainStep(*batch);
        if (!stepped.ok()) return Fail("TrainStep", stepped.status());
        seconds = Now() - t0;
      }
      const double peak = static_cast<double>(PeakRss(services->learner_proc->pid()));
      std::cerr << "grail-bench: deep model, " << (variant == 3 ? "recomputing layers" : "keeping activations")
                << ": peak RSS " << peak / 1e9 << " GB, step " << seconds << " s" << std::endl;
      if (variant == 2) {
        plain_peak = peak, plain_seconds = seconds;
        continue;
      }
      Emit("checkpointing_peak_rss", peak, "bytes", "no_checkpointing_peak_rss", plain_peak);
      Emit("checkpointing_step_time", seconds, "s", "no_checkpointing_step_time", plain_seconds);
      continue;
    }
    if (big) {
      const int64_t before = PeakRss(services->learner_proc->pid());
      batch->set_step(1);
      auto stepped = learner->TrainStep(*batch);
      if (!stepped.ok()) return Fail("TrainStep", stepped.status());
      const int64_t grail_peak = PeakRss(services->learner_proc->pid());
      auto peer = RunPeer(peer_args);
      if (!peer.ok()) return Fail("peer ppo_step", peer.status());
      const double peer_peak = (*peer)["peak_rss_bytes"].get<double>();
      std::cerr << "grail-bench: learner_peak_rss: grail " << grail_peak / 1e9 << " GB (" << before / 1e9
                << " GB before the step), eager peer " << peer_peak / 1e9 << " GB" << std::endl;
      Emit("learner_peak_rss", static_cast<double>(grail_peak), "bytes", "eager_pytorch_peak_rss", peer_peak);
      continue;
    }
    std::vector<double> grail_s, peer_s;
    for (int rep = 0; rep < 4; ++rep) {  // rep 0: grail's untimed first step
      batch->set_step(rep + 1);
      const double t0 = Now();
      auto stepped = learner->TrainStep(*batch);
      if (!stepped.ok()) return Fail("TrainStep", stepped.status());
      if (rep == 0) continue;
      grail_s.push_back(Now() - t0);
      auto peer = RunPeer(peer_args);
      if (!peer.ok()) return Fail("peer ppo_step", peer.status());
      peer_s.push_back((*peer)["seconds"].back().get<double>());  // the peer's second step
      std::cerr << "grail-bench: ppo_step rep " << rep << ": grail " << grail_s.back() << " s, eager peer "
                << peer_s.back() << " s" << std::endl;
    }
    std::cerr << "grail-bench: ppo_step: grail " << Spread(grail_s) << " s, eager peer " << Spread(peer_s) << " s"
              << std::endl;
    Emit("ppo_step_time", Median(grail_s), "s", "eager_pytorch_step_time", Median(peer_s));
  }
  std::filesystem::remove_all(dir);
  return 0;
}

// The demo spec (deploy/demo/arithmetic.yaml) with run and init seed `seed`.
absl::StatusOr<grail::v1::RunSpec> DemoSpec(int seed) {
  const char* src = std::getenv("GRAIL_SOURCE_DIR");
  ASSIGN_OR_RETURN(std::string text,
                   model::ReadFileToString(std::string(src ? src : ".") + "/deploy/demo/arithmetic.yaml"));
  grail::v1::RunSpec spec;
  RETURN_IF_ERROR(ParseConfig(text, ConfigFormat::kYaml, &spec));
  spec.set_seed(seed);
  spec.mutable_model()->set_init_seed(seed);
  return spec;
}

// The demo model's initial weights for `seed`, as safetensors.
absl::StatusOr<std::string> InitialDemoWeights(int seed) {
  ASSIGN_OR_RETURN(grail::v1::RunSpec spec, DemoSpec(seed));
  ASSIGN_OR_RETURN(Services services, StartLearnerAndActors(/*num_actors=*/0));
  RETURN_IF_ERROR(services.learner->InitModel(spec).status());
  ASSIGN_OR_RETURN(auto weights, services.learner->GetWeights(0));
  return std::move(weights.blob);
}

// One side's way to the target on the demo task: the wall time, and what it is made of.
struct TimeToTarget {
  double seconds = 0;          // to the first held-out evaluation at or above the target
  double warmup_seconds = 0;   // the supervised warm-up, its evaluations included
  double warmup_accuracy = 0;  // held-out accuracy where the warm-up stopped
  double rl_steps = 0;         // RL steps to the target (or to the run's end)
  double step_seconds = 0;     // the median RL step
};

// Wall time from submit to the first held-out evaluation (every 10 RL steps) at or above
// `target` of the demo run with run and init seed `seed`, which is then cancelled; the whole
// run's time if it ends below the target (reported on stderr).
absl::StatusOr<TimeToTarget> DemoTimeToAccuracy(int seed, double target) {
  ASSIGN_OR_RETURN(grail::v1::RunSpec spec, DemoSpec(seed));
  spec.mutable_trainer()->set_eval_every(10);
  testing::LocalClusterOptions options;
  options.learner_threads = 2;  // the learner and reference run while the actors wait
  ASSIGN_OR_RETURN(auto cluster, LocalCluster::Start(options));
  auto client = cluster->NewRunClient();
  const double t0 = Now();
  ASSIGN_OR_RETURN(std::string id, client->Submit(spec));
  TimeToTarget out;
  double reached = -1, accuracy = 0;
  std::vector<double> step_seconds;
  absl::Status watched = client->Watch(id, [&](const grail::v1::StepReport& r) {
    auto find = [&](const std::string& key) {
      auto it = r.metrics().find(key);
      return it == r.metrics().end() ? std::optional<double>() : std::optional<double>(it->second);
    };
    if (reached >= 0) return;
    if (r.phase() == "sft_eval" && find("heldout_accuracy")) out.warmup_accuracy = *find("heldout_accuracy");
    if (r.phase() == "rl" && find("time_step")) {
      // The first RL step began where the warm-up (and the evaluation after it) ended.
      if (step_seconds.empty()) out.warmup_seconds = Now() - t0 - *find("time_step");
      step_seconds.push_back(*find("time_step"));
    }
    if (r.phase() != "eval" || !find("heldout_accuracy")) return;
    accuracy = *find("heldout_accuracy");
    out.rl_steps = static_cast<double>(r.step());
    if (accuracy >= target) {
      reached = Now() - t0;
      (void)client->Cancel(id);
    }
  });
  if (!step_seconds.empty()) out.step_seconds = Median(step_seconds);
  if (reached < 0) {
    RETURN_IF_ERROR(watched);
    std::cerr << "grail-bench: time_to_accuracy seed " << seed << ": grail ended at " << accuracy << " < " << target
              << std::endl;
    out.seconds = Now() - t0;
    return out;
  }
  std::cerr << "grail-bench: time_to_accuracy seed " << seed << ": grail reached " << accuracy << " at RL step "
            << out.rl_steps << " after " << reached << " s" << std::endl;
  out.seconds = reached;
  return out;
}

// Wall time to 0.75 held-out accuracy on the demo task, the demo's model and
// hyper-parameters: grail's six-service cluster (two actors on one thread each, learner and
// reference on two, as deploy/local/cluster.sh starts them) against the eager peer's single
// process on two threads (this machine's cores), median over seeds 1-3, the two interleaved.
// What the time is made of is printed too: the warm-up's time, the RL steps taken and the
// median RL step's time, each side's (tta_warmup_time, tta_rl_steps, tta_rl_step_time).
int TimeToAccuracy() {
  const double target = 0.75;
  std::vector<TimeToTarget> grail, peer;
  const std::string dir = absl::StrCat("/tmp/grail-bench-tta-", getpid());
  std::filesystem::create_directories(dir);
  for (int seed = 1; seed <= 3; ++seed) {
    // The peer starts from grail's initial weights for the seed (a learner's InitModel).
    {
      auto init = InitialDemoWeights(seed);
      if (!init.ok()) return Fail("initial weights", init.status());
      if (auto s = WriteFile(dir + "/init.safetensors", *init); !s.ok()) return Fail("weights", s);
    }
    auto ours = DemoTimeToAccuracy(seed, target);
    if (!ours.ok()) return Fail("demo run", ours.status());
    grail.push_back(*ours);
    const double t0 = Now();
    auto ran = RunPeer(absl::StrCat("grpo --seed=", seed, " --target=", target, " --weights=", dir, "/init.safetensors"),
                       /*threads=*/2);
    if (!ran.ok()) return Fail("peer grpo", ran.status());
    const nlohmann::json& j = *ran;
    TimeToTarget theirs;
    theirs.seconds = j["seconds"].is_null() ? Now() - t0 : j["seconds"].get<double>();
    theirs.warmup_seconds = j["warmup_seconds"].get<double>();
    theirs.warmup_accuracy = j["warmup_accuracy"].get<double>();
    theirs.rl_steps = j["steps"].get<double>();
    theirs.step_seconds = j["step_seconds_median"].get<double>();
    peer.push_back(theirs);
    std::cerr << "grail-bench: time_to_accuracy seed " << seed << ": grail " << ours->seconds << " s, eager peer "
              << theirs.seconds << " s (" << (j["seconds"].is_null() ? "ended below the target at " : "reached at ")
              << j["accuracy"] << ", RL step " << theirs.rl_steps << ")" << std::endl;
    std::cerr << "grail-bench: time_to_accuracy seed " << seed << ": warm-up to " << ours->warmup_accuracy << " in "
              << ours->warmup_seconds << " s against " << theirs.warmup_accuracy << " in " << theirs.warmup_seconds
              << " s; RL steps " << ours->rl_steps << " against " << theirs.rl_steps << ", median RL step "
              << ours->step_seconds << " s against " << theirs.step_seconds << " s" << std::endl;
  }
  auto column = [](const std::vector<TimeToTarget>& v, double TimeToTarget::*field) {
    std::vector<double> out;
    for (const auto& t : v) out.push_back(t.*field);
    return out;
  };
  std::cerr << "grail-bench: time_to_accuracy: grail " << Spread(column(grail, &TimeToTarget::seconds))
            << " s, eager peer " << Spread(column(peer, &TimeToTarget::seconds)) << " s" << std::endl;
  Emit("time_to_accuracy", Median(column(grail, &TimeToTarget::seconds)), "s", "eager_pytorch_time",
       Median(column(peer, &TimeToTarget::seconds)));
  Emit("tta_warmup_time", Median(column(grail, &TimeToTarget::warmup_seconds)), "s", "eager_pytorch_warmup_time",
       Median(column(peer, &TimeToTarget::warmup_seconds)));
  Emit("tta_rl_steps", Median(column(grail, &TimeToTarget::rl_steps)), "steps", "eager_pytorch_rl_steps",
       Median(column(peer, &TimeToTarget::rl_steps)));
  Emit("tta_rl_step_time", Median(column(grail, &TimeToTarget::step_seconds)), "s", "eager_pytorch_rl_step_time",
       Median(column(peer, &TimeToTarget::step_seconds)));
  std::filesystem::remove_all(dir);
  return 0;
}

int Tokenize() {
  const char* src = std::getenv("GRAIL_SOURCE_DIR");
  const std::string root = src ? src : ".";
  const std::string corpus = "/tmp/grail-bench-corpus.jsonl";
  auto made = Output(absl::StrCat("python3 ", root, "/tests/tokenizer/make_corpus.py 60000 7 > ", corpus));
  if (!made.ok()) return Fail("corpus", made.status());
  std::vector<std::string> texts;
  {
    std::ifstream in(corpus);
    std::string line;
    while (std::getline(in, line)) texts.push_back(nlohmann::json::parse(line).get<std::string>());
  }
  double bytes = 0;
  for (const auto& t : texts) bytes += t.size();
  for (const char* name : {"qwen3", "llama3", "llama2"}) {
    const std::string dir = absl::StrCat(root, "/.cache/npm/models/", name);
    auto tok = tokenizer::HfTokenizer::FromDir(dir);
    if (!tok.ok()) return Fail(absl::StrCat("load ", dir, " (make deps fetches it)"), tok.status());
    const double t0 = Now();
    size_t ids = 0;
    for (const auto& t : texts) {
      auto e = (*tok)->Encode(t, tokenizer::EncodeOptions{false, true});
      if (!e.ok()) return Fail("encode", e.status());
      ids += e->size();
    }
    const double ours = Now() - t0;
    auto ref = Output(absl::StrCat("RAYON_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false node ", root,
                                   "/bench/tokenize_reference.js ", root, "/.cache/npm/reference/node_modules ", dir,
                                   "/tokenizer.json ", corpus));
    if (!ref.ok()) return Fail("reference", ref.status());
    const double theirs = std::stod(*ref);
    std::cerr << "tokenize " << name << ": " << texts.size() << " strings, " << bytes / 1e6 << " MB, " << ids
              << " ids" << std::endl;
    Emit(absl::StrCat("tokenize_", name), bytes / ours / 1e6, "MB/s", "hf_tokenizers_one_thread",
         bytes / theirs / 1e6);
  }
  return 0;
}

}  // namespace
}  // namespace grail::bench

int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "all";
  int rc = 0;
  if (what == "weight_sync" || what == "all") rc |= grail::bench::WeightSync();
  if (what == "async_step_time" || what == "all") rc |= grail::bench::AsyncStepTime();
  if (what == "tokenize" || what == "all") rc |= grail::bench::Tokenize();
  if (what == "lora" || what == "all") rc |= grail::bench::Lora();
  if (what == "rollout" || what == "all") rc |= grail::bench::Rollout();
  if (what == "learner_step" || what == "all") rc |= grail::bench::LearnerStep();
  if (what == "sft_packing" || what == "all") rc |= grail::bench::SftPacking();
  if (what == "time_to_accuracy" || what == "all") rc |= grail::bench::TimeToAccuracy();
  if (what != "all" && what != "weight_sync" && what != "async_step_time" && what != "tokenize" && what != "lora" &&
      what != "rollout" && what != "learner_step" && what != "sft_packing" && what != "time_to_accuracy") {
    std::cerr << "usage: grail-bench [all|weight_sync|async_step_time|tokenize|lora|rollout|learner_step|"
                 "sft_packing|time_to_accuracy]"
              << std::endl;
    return 2;
  }
  return rc;
}
