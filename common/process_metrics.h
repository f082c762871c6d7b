#ifndef GRAIL_COMMON_PROCESS_METRICS_H_
#define GRAIL_COMMON_PROCESS_METRICS_H_

#include <vector>

#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace grail {

// Standard process metrics read from /proc/self at scrape time: process_cpu_seconds_total,
// process_resident_memory_bytes, process_virtual_memory_bytes, process_open_fds,
// process_start_time_seconds. Thread-safe (stateless).
class ProcessMetricsCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace grail

#endif  // GRAIL_COMMON_PROCESS_METRICS_H_
