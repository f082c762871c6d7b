#include "common/net_address.h"

#include "gtest/gtest.h"

namespace grail {
namespace {

TEST(NetAddressTest, Parses) {
  auto hp = ParseHostPort("127.0.0.1:0", "listen");
  ASSERT_TRUE(hp.ok());
  EXPECT_EQ(hp->host, "127.0.0.1");
  EXPECT_EQ(hp->port, 0);
  auto v6 = ParseHostPort("[::1]:8080", "listen");
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6->host, "::1");
  EXPECT_EQ(FormatHostPort(v6->host, 8080), "[::1]:8080");
}

TEST(NetAddressTest, RejectsNamingTheField) {
  auto bad = ParseHostPort("localhost", "metrics_listen");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("metrics_listen"), std::string::npos);
  EXPECT_FALSE(ParseHostPort("h:70000", "listen").ok());
  EXPECT_FALSE(ParseHostPort("h:x", "listen").ok());
}

}  // namespace
}  // namespace grail
