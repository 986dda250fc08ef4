// SPDX-License-Identifier: GPL-2.0-or-later
// This node's two conntrack tables and what the control socket can do with them:
//   internal — this node's kernel view (source dump + events, through the filters);
//   external — what peers sent (filled by the replication engine, or by `ctsyncctl import`);
// plus the writes into the kernel: commit (external -> kernel, masters before expectations), flush.
#pragma once

#include <ctsync/sdk/filter.hpp>
#include <ctsync/sdk/source.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/cache/flow_cache.hpp"
#include "core/cache/kernel_view.hpp"
#include "core/metrics/registry.hpp"
#include "core/replication/proto_table.hpp"

namespace ctsync::core {

class Tables {
  public:
    Tables(MetricsRegistry& metrics, sdk::Logger& log, sdk::Source* source,
           std::vector<sdk::Filter*> filters);

    // Starts the source (subscribe, then dump). Returns an error message, empty on success or without source.
    std::string start();

    // Control commands. Arguments were parsed by the control server; bad arguments throw
    // std::invalid_argument, impossible requests std::runtime_error (both become error replies).
    nlohmann::json dump(const nlohmann::json& args) const;
    nlohmann::json import(const nlohmann::json& args);
    nlohmann::json commit(const nlohmann::json& args);
    nlohmann::json flush(const nlohmann::json& args);
    nlohmann::json resync(const nlohmann::json& args);
    nlohmann::json summary() const;

    // The proto handlers adjust every entry written into the kernel (TCP: window tracking off).
    void set_protos(const ProtoTable* protos) { protos_ = protos; }
    // Writes `upserts` (adjusted by the proto handlers) and `deletes` into the kernel, then, with
    // `expectations`, every expectation of the external cache (masters first). Logs one `event=<event>`
    // line with the time taken; returns the report (applied, failed, errors naming the entries, ms).
    // `routine` writes (warm standby, many a second) log at debug level and are not counted as commits.
    // Throws std::runtime_error without a source.
    nlohmann::json write_entries(std::vector<sdk::FlowState> upserts,
                                 const std::vector<sdk::FlowState>& deletes, bool expectations,
                                 std::string_view event, bool routine = false);
    // The internal cache holds a complete dump of the kernel table.
    bool internal_synced() const;
    // The source, or null (no kernel to write).
    sdk::Source* source() const { return source_; }

    FlowCache& internal() { return internal_; }
    FlowCache& external() { return external_; }

  private:
    sdk::Source& require_source() const;
    void refresh_external_gauges();

    MetricsRegistry& metrics_;
    sdk::Logger& log_;
    sdk::Source* source_;
    const ProtoTable* protos_ = nullptr;
    std::vector<sdk::Filter*> filters_;
    FlowCache internal_;
    FlowCache external_;
    std::unique_ptr<KernelView> view_;
    sdk::Gauge& external_flows_;
    sdk::Gauge& external_expectations_;
    sdk::Counter& commits_;
    sdk::Counter& commit_failed_;
};

}  // namespace ctsync::core
