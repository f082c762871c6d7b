// Structural checks of the deployment files (no kubectl or Grafana exists on the build
// machines): the Kubernetes manifests are well-formed objects whose selectors match their
// pods, whose containers run grail binaries with gRPC probes, metrics annotations and
// resources, and whose Services point at declared ports; the Grafana dashboard has the
// fields Grafana's dashboard schema requires, unique panel ids and a sane grid.

#include <filesystem>
#include <fstream>
#include <set>

#include "algo/run_spec.h"
#include "common/config.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "yaml-cpp/yaml.h"

namespace grail::testing {
namespace {

std::string Source(const std::string& rel) { return std::string(getenv("GRAIL_SOURCE_DIR")) + "/" + rel; }

std::vector<YAML::Node> LoadManifests() {
  std::vector<YAML::Node> docs;
  YAML::Node kustomization = YAML::LoadFile(Source("deploy/k8s/kustomization.yaml"));
  for (const auto& r : kustomization["resources"]) {
    for (const auto& d : YAML::LoadAllFromFile(Source("deploy/k8s/" + r.as<std::string>()))) {
      if (d.IsMap()) docs.push_back(d);
    }
  }
  return docs;
}

TEST(DeployTest, KubernetesManifestsAreConsistent) {
  const auto docs = LoadManifests();
  std::set<std::string> kinds_seen, binaries;
  std::map<std::string, YAML::Node> services;  // name -> spec
  std::map<std::string, std::set<std::string>> workload_ports;  // component -> port names
  for (const auto& d : docs) {
    ASSERT_TRUE(d["apiVersion"] && d["kind"] && d["metadata"]["name"]) << YAML::Dump(d);
    const std::string kind = d["kind"].as<std::string>(), name = d["metadata"]["name"].as<std::string>();
    kinds_seen.insert(kind);
    if (kind == "Service") services[name] = d["spec"];
    if (kind != "Deployment" && kind != "StatefulSet") continue;
    SCOPED_TRACE(name);
    const auto spec = d["spec"];
    const auto match = spec["selector"]["matchLabels"];
    const auto labels = spec["template"]["metadata"]["labels"];
    ASSERT_TRUE(match.IsMap() && labels.IsMap());
    for (const auto& kv : match) {
      EXPECT_EQ(labels[kv.first.as<std::string>()].as<std::string>(""), kv.second.as<std::string>());
    }
    if (kind == "StatefulSet") EXPECT_TRUE(services.count(spec["serviceName"].as<std::string>()) ||
                                           spec["serviceName"].as<std::string>() == name);
    const auto ann = spec["template"]["metadata"]["annotations"];
    EXPECT_EQ(ann["prometheus.io/scrape"].as<std::string>(""), "true");
    const auto containers = spec["template"]["spec"]["containers"];
    ASSERT_EQ(containers.size(), 1u);
    const auto c = containers[0];
    const std::string binary = c["command"][0].as<std::string>();
    binaries.insert(binary.substr(binary.rfind('/') + 1));
    std::set<std::string> ports;
    int grpc_port = 0;
    for (const auto& p : c["ports"]) {
      ports.insert(p["name"].as<std::string>());
      if (p["name"].as<std::string>() == "grpc") grpc_port = p["containerPort"].as<int>();
    }
    EXPECT_TRUE(ports.count("grpc") && ports.count("metrics"));
    EXPECT_EQ(c["readinessProbe"]["grpc"]["port"].as<int>(0), grpc_port);
    EXPECT_EQ(c["livenessProbe"]["grpc"]["port"].as<int>(0), grpc_port);
    EXPECT_TRUE(c["resources"]["requests"]["cpu"] && c["resources"]["requests"]["memory"]);
    bool listens = false, token = false;
    for (const auto& a : c["args"]) {
      listens |= a.as<std::string>() == "--listen=0.0.0.0:" + std::to_string(grpc_port);
      token |= a.as<std::string>().rfind("--auth_token_file=", 0) == 0;
    }
    EXPECT_TRUE(listens);
    EXPECT_TRUE(token);
    workload_ports[labels["app.kubernetes.io/component"].as<std::string>()] = ports;
  }
  EXPECT_EQ(binaries, (std::set<std::string>{"grail-actor", "grail-reward", "grail-reference", "grail-learner",
                                             "grail-coordinator"}));
  EXPECT_TRUE(kinds_seen.count("StatefulSet"));
  // Every Service selects a workload and targets ports it declares.
  for (const auto& [name, spec] : services) {
    SCOPED_TRACE(name);
    const std::string component = spec["selector"]["app.kubernetes.io/component"].as<std::string>("");
    ASSERT_TRUE(workload_ports.count(component));
    for (const auto& p : spec["ports"]) {
      EXPECT_TRUE(workload_ports[component].count(p["targetPort"].as<std::string>()));
    }
  }
  EXPECT_EQ(services["grail-learner"]["clusterIP"].as<std::string>(""), "None");  // headless: rank names
}

// The demo and example run specs load strictly and pass the coordinator's validation.
TEST(DeployTest, RunSpecsLoadAndValidate) {
  int specs = 0;
  for (const char* dir : {"deploy/demo", "deploy/examples"}) {
    for (const auto& entry : std::filesystem::directory_iterator(Source(dir))) {
      if (entry.path().extension() != ".yaml") continue;
      ++specs;
      std::ifstream in(entry.path());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      grail::v1::RunSpec spec;
      absl::Status s = ParseConfig(text, ConfigFormat::kYaml, &spec);
      ASSERT_TRUE(s.ok()) << entry.path() << ": " << s;
      algo::ResolveDefaults(&spec);
      s = algo::ValidateRunSpec(spec);
      EXPECT_TRUE(s.ok()) << entry.path() << ": " << s;
    }
  }
  EXPECT_GE(specs, 2);
}

TEST(DeployTest, GrafanaDashboardHasTheRequiredShape) {
  std::ifstream in(Source("deploy/grafana/dashboards/grail.json"));
  nlohmann::json d = nlohmann::json::parse(in);
  for (const char* f : {"uid", "title", "schemaVersion", "panels", "templating", "time"}) {
    EXPECT_TRUE(d.contains(f)) << f;
  }
  EXPECT_GE(d["schemaVersion"].get<int>(), 30);
  std::set<int> ids;
  std::set<std::string> titles;
  for (const auto& p : d["panels"]) {
    ASSERT_TRUE(p.contains("id") && p.contains("type") && p.contains("gridPos") && p.contains("targets"));
    EXPECT_TRUE(ids.insert(p["id"].get<int>()).second) << "duplicate id " << p["id"];
    titles.insert(p["title"].get<std::string>());
    const auto& g = p["gridPos"];
    EXPECT_GE(g["x"].get<int>(), 0);
    EXPECT_LE(g["x"].get<int>() + g["w"].get<int>(), 24);
    EXPECT_GT(g["h"].get<int>(), 0);
    EXPECT_FALSE(p["targets"].empty());
    for (const auto& t : p["targets"]) EXPECT_FALSE(t["expr"].get<std::string>().empty());
  }
  for (const char* t : {"Reward and accuracy", "KL and entropy", "Clip fractions", "Response length and truncation",
                        "Dynamic sampling", "Throughput", "Phase timings (p50)", "Version lag", "Service health"}) {
    EXPECT_TRUE(titles.count(t)) << t;
  }
}

}  // namespace
}  // namespace grail::testing
