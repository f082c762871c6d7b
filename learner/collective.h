#ifndef GRAIL_LEARNER_COLLECTIVE_H_
#define GRAIL_LEARNER_COLLECTIVE_H_

// The learner group's collectives over torch c10d: rendezvous through a TCPStore hosted by
// rank 0, ProcessGroupGloo on CPU, ProcessGroupNCCL in CUDA builds (GRAIL_WITH_CUDA). Used
// only by the trainer; includes LibTorch.

#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace grail::learner {

struct CollectiveOptions {
  int rank = 0;
  int world_size = 1;
  // Rank 0's address; rank 0 hosts the TCPStore on master_port.
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  // "gloo" (CPU tensors) or "nccl" (CUDA builds only; tensors travel through the GPU of
  // local rank `rank % device count`).
  std::string backend = "gloo";
  // The address this rank's Gloo transport binds to; empty = 127.0.0.1 when master_addr is a
  // loopback address, else this host's name.
  std::string local_addr;
  // A collective that has not completed after this long fails, as does a collective whose
  // peer has gone away (at once).
  absl::Duration timeout = absl::Seconds(60);
  // How long rendezvous waits for every rank to join.
  absl::Duration rendezvous_timeout = absl::Minutes(5);
};

// Collectives across the ranks of one learner group. A failed collective returns
// UNAVAILABLE naming the operation; after one the group is unusable (the peers' sequences of
// collectives no longer line up) and every later call fails the same way.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Sums each tensor across ranks, in place. Tensors are independent (one collective each,
  // all in flight together); CPU, contiguous.
  virtual absl::Status AllReduceSum(const std::vector<torch::Tensor>& tensors, const std::string& what) = 0;
  // Overwrites each tensor with root's copy.
  virtual absl::Status Broadcast(const std::vector<torch::Tensor>& tensors, int root, const std::string& what) = 0;
};

// A group of one: every collective is a no-op.
std::unique_ptr<Collective> NewSingleRankCollective();

// Joins the group described by options (blocks until every rank has joined, or fails with
// DEADLINE_EXCEEDED after rendezvous_timeout). world_size 1 returns a single-rank group.
absl::StatusOr<std::unique_ptr<Collective>> ConnectCollective(const CollectiveOptions& options);

// Sums the gradients of `params` across ranks: gradients are flattened into buckets of about
// bucket_bytes, all buckets are reduced concurrently, and the sums are copied back. A missing
// gradient counts as zeros (a rank whose shard of a mini-batch was empty). Adds the wall time
// spent to *seconds.
absl::Status AllReduceGradients(Collective& group, const std::vector<torch::Tensor>& params,
                                int64_t bucket_bytes, double* seconds);

}  // namespace grail::learner

#endif  // GRAIL_LEARNER_COLLECTIVE_H_
