// SPDX-License-Identifier: GPL-2.0-or-later
// The daemon's metrics in the Prometheus text exposition format (version 0.0.4), served by the metrics
// endpoint and printed by `ctsyncctl stats --prometheus`. Name scheme (docs/METRICS.md):
//   core metric "replication.tx_records" (counter)  -> ctsync_replication_tx_records_total
//   core metric "external.flows" (gauge)            -> ctsync_external_flows
//   plugin metric "datagrams_sent" of instance "sync-eth2" (plugin transport-mcast)
//                                                   ->
//                                                   ctsync_transport_mcast_datagrams_sent_total{instance="sync-eth2"}
// '.' and '-' become '_'; counters end in "_total". Every family has HELP and TYPE lines. A sample whose
// family name another metric already took (two names that differ only in '.' vs '_') is left out and named
// in a comment, never emitted twice.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/metrics/registry.hpp"

namespace ctsync::core {

// Labels of the ctsync_info gauge (always 1).
struct PrometheusInfo {
    std::string version;
    std::uint32_t node_id = 0;
    std::string node_name;
};

// The family name a sample is exposed under.
std::string prometheus_family(const MetricSample& sample);

std::string render_prometheus(const std::vector<MetricSample>& samples, const PrometheusInfo& info);

// The content type of render_prometheus's output.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace ctsync::core
