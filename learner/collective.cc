#include "learner/collective.h"

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#ifdef GRAIL_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"

namespace grail::learner {
namespace {

std::chrono::milliseconds Millis(absl::Duration d) { return absl::ToChronoMilliseconds(d); }

class SingleRankCollective : public Collective {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  absl::Status AllReduceSum(const std::vector<torch::Tensor>&, const std::string&) override {
    return absl::OkStatus();
  }
  absl::Status Broadcast(const std::vector<torch::Tensor>&, int, const std::string&) override {
    return absl::OkStatus();
  }
};

bool IsLoopback(const std::string& addr) {
  return addr == "localhost" || absl::StartsWith(addr, "127.") || addr == "::1";
}

class ProcessGroupCollective : public Collective {
 public:
  ProcessGroupCollective(c10::intrusive_ptr<c10d::Store> store, c10::intrusive_ptr<c10d::ProcessGroup> group,
                         const CollectiveOptions& options)
      : store_(std::move(store)), group_(std::move(group)), options_(options) {}

  int rank() const override { return options_.rank; }
  int world_size() const override { return options_.world_size; }

  absl::Status AllReduceSum(const std::vector<torch::Tensor>& tensors, const std::string& what) override {
    return Run(what, tensors, [&](std::vector<at::Tensor>& one) { return group_->allreduce(one); });
  }

  absl::Status Broadcast(const std::vector<torch::Tensor>& tensors, int root, const std::string& what) override {
    c10d::BroadcastOptions opts;
    opts.rootRank = root;
    return Run(what, tensors, [&](std::vector<at::Tensor>& one) { return group_->broadcast(one, opts); });
  }

 private:
  template <typename Launch>
  absl::Status Run(const std::string& what, const std::vector<torch::Tensor>& tensors, Launch launch) {
    absl::MutexLock lock(&mu_);
    if (!broken_.ok()) return broken_;
    try {
      // Launch every collective first so that they overlap, then wait for each in order.
      std::vector<std::vector<at::Tensor>> staged(tensors.size());
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (size_t i = 0; i < tensors.size(); ++i) {
        staged[i] = {ToDevice(tensors[i])};
        works.push_back(launch(staged[i]));
      }
      for (size_t i = 0; i < works.size(); ++i) {
        works[i]->wait(Millis(options_.timeout));
        if (staged[i][0].data_ptr() != tensors[i].data_ptr()) tensors[i].copy_(staged[i][0]);
      }
      return absl::OkStatus();
    } catch (const std::exception& e) {
      std::string message = e.what();
      if (const auto* c10_error = dynamic_cast<const c10::Error*>(&e)) {
        message = c10_error->what_without_backtrace();
      }
      broken_ = absl::UnavailableError(absl::StrCat(
          "learner group: ", what, " failed on rank ", options_.rank, " of ", options_.world_size,
          " (a peer died or did not answer within ", absl::FormatDuration(options_.timeout), "): ", message));
      return broken_;
    }
  }

  at::Tensor ToDevice(const at::Tensor& t) const {
#ifdef GRAIL_WITH_NCCL
    if (options_.backend == "nccl") {
      const int devices = static_cast<int>(torch::cuda::device_count());
      return t.to(torch::Device(torch::kCUDA, options_.rank % std::max(1, devices)));
    }
#endif
    return t;
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  const CollectiveOptions options_;
  absl::Mutex mu_;
  absl::Status broken_ ABSL_GUARDED_BY(mu_);
};

}  // namespace

std::unique_ptr<Collective> NewSingleRankCollective() { return std::make_unique<SingleRankCollective>(); }

absl::StatusOr<std::unique_ptr<Collective>> ConnectCollective(const CollectiveOptions& options) {
  if (options.world_size < 1) return absl::InvalidArgumentError("world_size: must be >= 1");
  if (options.rank < 0 || options.rank >= options.world_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("rank: ", options.rank, " is not in [0, world_size=", options.world_size, ")"));
  }
  if (options.world_size == 1) return NewSingleRankCollective();
  if (options.master_port <= 0 || options.master_port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("master_port: ", options.master_port, " is not a port"));
  }
  if (options.backend != "gloo" && options.backend != "nccl") {
    return absl::InvalidArgumentError(absl::StrCat("backend: '", options.backend, "' is not gloo or nccl"));
  }
#ifndef GRAIL_WITH_NCCL
  if (options.backend == "nccl") {
    return absl::UnimplementedError("backend: nccl needs a build with -DGRAIL_WITH_CUDA=ON");
  }
#endif
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = static_cast<uint16_t>(options.master_port);
    store_options.isServer = options.rank == 0;
    store_options.numWorkers = options.world_size;
    store_options.waitWorkers = true;
    store_options.timeout = Millis(options.rendezvous_timeout);
    auto store = c10::make_intrusive<c10d::TCPStore>(options.master_addr, store_options);
    c10::intrusive_ptr<c10d::ProcessGroup> group;
#ifdef GRAIL_WITH_NCCL
    if (options.backend == "nccl") {
      auto nccl = c10d::ProcessGroupNCCL::Options::create();
      nccl->timeout = Millis(options.timeout);
      group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, options.rank, options.world_size, nccl);
    }
#endif
    if (!group) {
      auto gloo = c10d::ProcessGroupGloo::Options::create(Millis(options.timeout));
      std::string local = options.local_addr;
      if (local.empty() && IsLoopback(options.master_addr)) local = "127.0.0.1";
      gloo->devices.push_back(local.empty() ? c10d::ProcessGroupGloo::createDefaultDevice()
                                            : c10d::ProcessGroupGloo::createDeviceForHostname(local));
      gloo->threads = 2;
      group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, options.rank, options.world_size, gloo);
    }
    return std::unique_ptr<Collective>(new ProcessGroupCollective(store, group, options));
  } catch (const std::exception& e) {
    return absl::DeadlineExceededError(absl::StrCat("learner group rendezvous at ", options.master_addr, ":",
                                                    options.master_port, " failed for rank ", options.rank, ": ",
                                                    e.what()));
  }
}

absl::Status AllReduceGradients(Collective& group, const std::vector<torch::Tensor>& params,
                                int64_t bucket_bytes, double* seconds) {
  if (group.world_size() == 1) return absl::OkStatus();
  const auto start = std::chrono::steady_clock::now();
  torch::NoGradGuard no_grad;
  // Buckets of consecutive parameters (one dtype each), flattened into one tensor apiece.
  std::vector<std::vector<torch::Tensor>> members;
  std::vector<torch::Tensor> buckets;
  int64_t current_bytes = 0;
  for (const auto& p : params) {
    torch::Tensor& grad = const_cast<torch::Tensor&>(p).mutable_grad();
    if (!grad.defined()) grad = torch::zeros_like(p);
    const int64_t bytes = grad.numel() * grad.element_size();
    if (members.empty() || current_bytes + bytes > bucket_bytes ||
        members.back().front().scalar_type() != grad.scalar_type()) {
      members.emplace_back();
      current_bytes = 0;
    }
    members.back().push_back(grad);
    current_bytes += bytes;
  }
  for (const auto& m : members) {
    std::vector<torch::Tensor> flat;
    for (const auto& g : m) flat.push_back(g.reshape({-1}));
    buckets.push_back(torch::cat(flat));
  }
  absl::Status status = group.AllReduceSum(buckets, "gradient all-reduce");
  if (status.ok()) {
    for (size_t b = 0; b < buckets.size(); ++b) {
      int64_t offset = 0;
      for (auto& g : members[b]) {
        g.copy_(buckets[b].narrow(0, offset, g.numel()).view_as(g));
        offset += g.numel();
      }
    }
  }
  if (seconds != nullptr) {
    *seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return status;
}

}  // namespace grail::learner
