#include "learner/collective.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace grail::learner {
namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// Two ranks of one Gloo group in this process, each on its own thread.
std::vector<std::unique_ptr<Collective>> ConnectPair() {
  const int port = FreePort();
  std::vector<std::unique_ptr<Collective>> ranks(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      CollectiveOptions o;
      o.rank = r;
      o.world_size = 2;
      o.master_port = port;
      o.timeout = absl::Seconds(20);
      o.rendezvous_timeout = absl::Seconds(30);
      auto c = ConnectCollective(o);
      EXPECT_TRUE(c.ok()) << c.status();
      if (c.ok()) ranks[r] = std::move(*c);
    });
  }
  for (auto& t : threads) t.join();
  return ranks;
}

TEST(CollectiveTest, ASingleRankGroupLeavesTensorsAlone) {
  auto group = NewSingleRankCollective();
  EXPECT_EQ(group->world_size(), 1);
  auto t = torch::tensor({1.0, 2.0});
  ASSERT_TRUE(group->AllReduceSum({t}, "sum").ok());
  EXPECT_TRUE(torch::equal(t, torch::tensor({1.0, 2.0})));
}

TEST(CollectiveTest, TwoRanksSumBroadcastAndAllReduceGradients) {
  auto ranks = ConnectPair();
  ASSERT_TRUE(ranks[0] && ranks[1]);
  std::vector<torch::Tensor> sums = {torch::tensor({1.0f, 2.0f}), torch::tensor({10.0f, 20.0f})};
  std::vector<torch::Tensor> roots = {torch::tensor({7.0f}), torch::tensor({-1.0f})};
  // Rank 1's parameter has no gradient (an empty shard): it counts as zeros.
  std::vector<torch::Tensor> params = {torch::zeros({3}, torch::requires_grad()),
                                       torch::zeros({3}, torch::requires_grad())};
  params[0].mutable_grad() = torch::tensor({1.0f, 2.0f, 3.0f});
  std::vector<absl::Status> status(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      status[r] = ranks[r]->AllReduceSum({sums[r]}, "sum");
      if (status[r].ok()) status[r] = ranks[r]->Broadcast({roots[r]}, 0, "broadcast");
      double seconds = 0;
      if (status[r].ok()) status[r] = AllReduceGradients(*ranks[r], {params[r]}, /*bucket_bytes=*/8, &seconds);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(status[0].ok()) << status[0];
  ASSERT_TRUE(status[1].ok()) << status[1];
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::equal(sums[r], torch::tensor({11.0f, 22.0f}))) << r;
    EXPECT_TRUE(torch::equal(roots[r], torch::tensor({7.0f}))) << r;
    EXPECT_TRUE(torch::equal(params[r].grad(), torch::tensor({1.0f, 2.0f, 3.0f}))) << r;
  }
}

TEST(CollectiveTest, APeerThatLeftFailsTheCollectiveNamingIt) {
  auto ranks = ConnectPair();
  ASSERT_TRUE(ranks[0] && ranks[1]);
  ranks[1].reset();  // rank 1 is gone
  auto t = torch::ones({4});
  absl::Status s = ranks[0]->AllReduceSum({t}, "gradient sum");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("gradient sum"));
}

}  // namespace
}  // namespace grail::learner
