// grailctl: command-line client of a grail cluster.

#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "algo/run_spec.h"
#include "common/cli.h"
#include "common/config.h"
#include "common/grpc_client.h"
#include "common/security_flags.h"
#include "coordinator/probe_report.h"
#include "coordinator/run_client.h"
#include "learner/checkpoint_manifest.h"
#include "model/hf_export.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:50051", "Coordinator address HOST:PORT");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(30), "Deadline of each call");
ABSL_FLAG(std::string, dtype, "float32", "export: the exported weights' dtype (float32 or bfloat16)");
ABSL_FLAG(int64_t, max_shard_bytes, int64_t{5} << 30, "export: shard the weights past this many bytes per file");
ABSL_FLAG(std::string, tokenizer, "", "export: copy tokenizer files from this directory (default: the checkpoint's)");
ABSL_FLAG(bool, merge, false,
          "export: merge a LoRA checkpoint's adapters into a plain model directory (default: a PEFT adapter directory)");
ABSL_FLAG(bool, json, false, "watch: print each step report as one JSON line instead of a progress line");
ABSL_FLAG(std::string, out, "", "probes: write the probe records to this CSV file");
ABSL_FLAG(std::string, plot, "", "probes: draw the probe trajectories to this SVG file");

namespace {

constexpr char kUsage[] =
    "grailctl: drive a grail cluster over gRPC.\n"
    "Usage: grailctl [--coordinator=HOST:PORT] COMMAND [ARGS]\n"
    "Commands:\n"
    "  submit FILE       submit a run spec (YAML or JSON); prints the run id\n"
    "  status [RUN]      one run, or every run\n"
    "  watch RUN         follow a run's step reports\n"
    "  cancel RUN        cancel a run\n"
    "  probes RUN        a run's learning-dynamics probes: --out=FILE.csv (the records),\n"
    "                    --plot=FILE.svg (mean per response type over steps, with a band)\n"
    "  health TARGET     exit 0 if the service at TARGET (HOST:PORT) is SERVING\n"
    "  validate FILE     check a run spec locally (fields and stages) without submitting it\n"
    "  export DIR OUT    write checkpoint DIR as a Hugging Face model directory OUT (local files;\n"
    "                    --dtype=float32|bfloat16, --max_shard_bytes=N, --tokenizer=DIR to copy);\n"
    "                    a LoRA checkpoint: its adapters in PEFT's format, or --merge for a merged model\n"
    "Security: --auth_token_file=F sends the cluster's bearer token; --tls_ca=CA.pem uses TLS\n"
    "(add --tls_cert/--tls_key for mutual TLS).";

int Fail(const absl::Status& status) {
  std::cerr << "grailctl: " << status << std::endl;
  return 1;
}

std::string StateName(grail::v1::RunState s) {
  return absl::AsciiStrToLower(grail::v1::RunState_Name(s).substr(10));
}

double Metric(const grail::v1::StepReport& r, const std::string& key) {
  auto it = r.metrics().find(key);
  return it == r.metrics().end() ? 0 : it->second;
}

// One line per report: "[rl] step 12/40  reward 0.53  acc 0.53  tok/s 812  ETA 1m20s".
std::string ProgressLine(const grail::v1::StepReport& r, absl::Time* rl_start, int64_t* rl_first_step) {
  const std::string& phase = r.phase();
  if (phase == "rl") {
    if (*rl_start == absl::InfinitePast()) {
      *rl_start = absl::Now();
      *rl_first_step = r.step();
    }
    std::string eta = "?";
    const int64_t done = r.step() - *rl_first_step;
    if (done > 0) {
      const absl::Duration per_step = (absl::Now() - *rl_start) / done;
      eta = absl::FormatDuration(absl::Trunc(per_step * (r.total_steps() - r.step()), absl::Seconds(1)));
    }
    // Against a reward model, the math verifier's accuracy on rows with an answer too.
    const std::string answer_acc =
        absl::StrCat(r.metrics().contains("answer_accuracy")
                         ? absl::StrFormat("  answer_acc %.3f", Metric(r, "answer_accuracy"))
                         : "",
                     r.metrics().contains("answer_ranking_accuracy")
                         ? absl::StrFormat(" rank %.3f", Metric(r, "answer_ranking_accuracy"))
                         : "");
    return absl::StrFormat("[rl] step %d/%d  reward %.3f  acc %.3f%s  len %.1f  filtered %.2f  tok/s %.0f  v%d  ETA %s",
                           r.step(), r.total_steps(), Metric(r, "reward_mean"), Metric(r, "accuracy"), answer_acc,
                           Metric(r, "response_length_mean"), Metric(r, "filtered_group_ratio"),
                           Metric(r, "tokens_per_second"), r.policy_version(), eta);
  }
  if (phase == "sft") {
    return absl::StrFormat("[sft] step %d/%d  loss %.4f", r.step(), static_cast<int64_t>(Metric(r, "sft_steps")),
                           Metric(r, "sft_loss"));
  }
  if (phase == "preference") {
    std::string line =
        absl::StrFormat("[preference] step %d/%d  loss %.4f  reward_acc %.3f  margin %.3f", r.step(), r.total_steps(),
                        Metric(r, "loss"), Metric(r, "reward_accuracy"), Metric(r, "reward_margin"));
    // A reward model's steps carry scores, not the policy's log-probs.
    if (r.metrics().contains("logp_chosen")) {
      absl::StrAppendFormat(&line, "  logp c/r %.2f/%.2f", Metric(r, "logp_chosen"), Metric(r, "logp_rejected"));
    }
    return line;
  }
  if (phase == "eval") {
    std::string line =
        absl::StrFormat("[eval] after step %d  heldout_accuracy %.3f", r.step(), Metric(r, "heldout_accuracy"));
    for (const char* k : {"heldout_preference_accuracy", "heldout_reward_accuracy"}) {
      if (r.metrics().count(k)) absl::StrAppend(&line, absl::StrFormat("  %s %.3f", k, Metric(r, k)));
    }
    return line;
  }
  if (phase == "sft_eval") {
    return absl::StrFormat("[sft_eval] step %d  heldout_accuracy %.3f", r.step(), Metric(r, "heldout_accuracy"));
  }
  if (phase == "probe") {
    return absl::StrFormat("[probe] step %d  logp chosen %.2f  rejected %.2f  chosen_paraphrase %.2f  argmax_prob %.3f",
                           r.step(), Metric(r, "probe_chosen_log_prob"), Metric(r, "probe_rejected_log_prob"),
                           Metric(r, "probe_chosen_paraphrase_log_prob"), Metric(r, "probe_rejected_argmax_prob"));
  }
  if (phase == "sampled_pairs") {
    return absl::StrFormat("[sampled_pairs] %d pairs from the policy's samples (accuracy %.3f, %d prompts tied) "
                           "+ %d from the dataset, %.1f s",
                           static_cast<int64_t>(Metric(r, "sampled_pairs")), Metric(r, "sampled_accuracy"),
                           static_cast<int64_t>(Metric(r, "sampled_prompts_tied")),
                           static_cast<int64_t>(Metric(r, "dataset_pairs")), Metric(r, "sampled_pairs_seconds"));
  }
  if (phase == "checkpoint") return absl::StrCat("[checkpoint] step ", r.step(), ": ", r.message());
  if (phase == "recovered") return absl::StrCat("[recovered] step ", r.step(), ": ", r.message());
  if (phase == "done") return absl::StrCat("[done] ", StateName(r.state()), r.message().empty() ? "" : ": ", r.message());
  return absl::StrCat("[", phase, "] step ", r.step());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args = grail::ParseCommandLineOrExit(argc, argv, kUsage);
  absl::StatusOr<grail::SecurityOptions> security = grail::SecurityFromFlags();
  if (!security.ok()) {
    std::cerr << "grailctl: " << security.status() << std::endl;
    return 2;
  }
  if (args.size() < 2) {
    std::cerr << kUsage << std::endl;
    return 2;
  }
  const std::string& command = args[1];
  auto need = [&](size_t n) {
    if (args.size() != n + 2) {
      std::cerr << "grailctl " << command << ": expected " << n << " argument(s)\n" << kUsage << std::endl;
      return false;
    }
    return true;
  };
  grail::ClientOptions options;
  options.security = *security;
  options.target = absl::GetFlag(FLAGS_coordinator);
  options.timeout = absl::GetFlag(FLAGS_timeout);

  if (command == "health") {
    if (!need(1)) return 2;
    options.target = args[2];
    auto serving = grail::CheckServing(grail::MakeChannel(options).get(), options.timeout);
    if (!serving.ok()) return Fail(serving.status());
    std::cout << args[2] << ": " << (*serving ? "SERVING" : "NOT_SERVING") << std::endl;
    return *serving ? 0 : 1;
  }
  if (command == "export") {
    if (!need(2)) return 2;
    // A grail checkpoint is exported only if it is committed and matches its digests; a
    // plain model directory (no manifest) is taken as it is.
    absl::Status verified = grail::learner::VerifyCheckpointDir(args[2], args[2]);
    if (!verified.ok()) return Fail(verified);
    grail::model::HfExportOptions o;
    o.dtype = absl::GetFlag(FLAGS_dtype);
    o.max_shard_bytes = absl::GetFlag(FLAGS_max_shard_bytes);
    o.tokenizer_dir = absl::GetFlag(FLAGS_tokenizer);
    o.merge_adapters = absl::GetFlag(FLAGS_merge);
    absl::Status exported = grail::model::ExportHfDir(args[2], args[3], o);
    if (!exported.ok()) return Fail(exported);
    std::cout << args[3] << ": exported (" << o.dtype << ")" << std::endl;
    return 0;
  }
  if (command == "validate" || command == "submit") {
    if (!need(1)) return 2;
    auto spec = grail::LoadRunSpecFile(args[2]);
    if (!spec.ok()) return Fail(spec.status());
    if (command == "validate") {
      // The checks the coordinator makes at submit time that need no data root: every
      // field's range and combination, and each stage's (files are checked on submit).
      absl::Status valid = grail::algo::ValidateRunSpec(*spec);
      if (!valid.ok()) return Fail(valid);
      std::cout << args[2] << ": valid" << std::endl;
      return 0;
    }
    auto id = grail::coordinator::NewGrpcRunClient(options)->Submit(*spec);
    if (!id.ok()) return Fail(id.status());
    std::cout << *id << std::endl;
    return 0;
  }
  auto client = grail::coordinator::NewGrpcRunClient(options);
  if (command == "status") {
    if (args.size() > 3) return need(1) ? 0 : 2;
    std::vector<grail::v1::Run> runs;
    if (args.size() == 3) {
      auto run = client->Get(args[2]);
      if (!run.ok()) return Fail(run.status());
      runs.push_back(*run);
    } else {
      auto all = client->List();
      if (!all.ok()) return Fail(all.status());
      runs = *all;
    }
    for (const auto& run : runs) {
      std::cout << run.run_id() << "  " << StateName(run.state())
                << (run.stage().empty() ? "" : absl::StrCat("  stage ", run.stage())) << "  step "
                << run.last_report().step() << "/"
                << (run.stage().empty() ? run.spec().trainer().total_steps() : run.last_report().total_steps())
                << (run.error().empty() ? "" : absl::StrCat("  error: ", run.error())) << std::endl;
      for (const auto& [k, v] : run.summary()) std::cout << "  " << k << "=" << v << std::endl;
    }
    return 0;
  }
  if (command == "cancel") {
    if (!need(1)) return 2;
    absl::Status status = client->Cancel(args[2]);
    if (!status.ok()) return Fail(status);
    std::cout << args[2] << ": cancel requested" << std::endl;
    return 0;
  }
  if (command == "probes") {
    if (!need(1)) return 2;
    const std::string out = absl::GetFlag(FLAGS_out), plot = absl::GetFlag(FLAGS_plot);
    if (out.empty() && plot.empty()) {
      std::cerr << "grailctl probes: name --out=FILE.csv and/or --plot=FILE.svg" << std::endl;
      return 2;
    }
    if (!plot.empty() && !absl::EndsWith(plot, ".svg")) {
      std::cerr << "grailctl probes: --plot writes SVG; name a .svg file" << std::endl;
      return 2;
    }
    auto records = client->Probes(args[2]);
    if (!records.ok()) return Fail(records.status());
    if (records->empty()) {
      std::cerr << "grailctl: run " << args[2] << " has no probe records (probes.every in its spec)" << std::endl;
      return 1;
    }
    for (const auto& [path, text] : {std::pair{out, grail::coordinator::ProbesCsv(*records)},
                                     std::pair{plot, plot.empty() ? std::string()
                                                                  : grail::coordinator::ProbesSvg(
                                                                        *records, absl::StrCat("probes of ", args[2]))}}) {
      if (path.empty()) continue;
      std::ofstream f(path, std::ios::binary);
      f << text;
      if (!f.good()) return Fail(absl::InternalError(absl::StrCat("cannot write ", path)));
      std::cout << path << ": " << records->size() << " probe records" << std::endl;
    }
    return 0;
  }
  if (command == "watch") {
    if (!need(1)) return 2;
    const std::string run_id = args[2];
    absl::Time rl_start = absl::InfinitePast();
    int64_t rl_first_step = 0;
    std::string stage;
    grail::v1::RunState final_state = grail::v1::RUN_STATE_UNSPECIFIED;
    std::string final_message;
    absl::Status status = client->Watch(run_id, [&](const grail::v1::StepReport& r) {
      if (absl::GetFlag(FLAGS_json)) {
        std::string line;
        google::protobuf::util::MessageToJsonString(r, &line);
        std::cout << line << std::endl;
      } else {
        if (r.stage() != stage) {  // a staged run: a new stage's steps count from 1 again
          stage = r.stage();
          rl_start = absl::InfinitePast();
        }
        std::cout << (stage.empty() || r.phase() == "done" ? "" : absl::StrCat(stage, " | "))
                  << ProgressLine(r, &rl_start, &rl_first_step) << std::endl;
      }
      if (r.phase() == "done") {
        final_state = r.state();
        final_message = r.message();
      }
    });
    if (!status.ok()) return Fail(status);
    if (final_state != grail::v1::RUN_STATE_SUCCEEDED) {
      std::cerr << "grailctl: run " << run_id << " ended " << StateName(final_state)
                << (final_message.empty() ? "" : ": " + final_message) << std::endl;
      return 1;
    }
    auto run = client->Get(run_id);
    if (run.ok()) {
      for (const auto& [k, v] : run->summary()) std::cout << "summary " << k << "=" << v << std::endl;
    }
    return 0;
  }
  std::cerr << "grailctl: unknown command '" << command << "'\n" << kUsage << std::endl;
  return 2;
}
