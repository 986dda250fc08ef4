// SPDX-License-Identifier: GPL-2.0-or-later
// This node's two conntrack tables and what the control socket can do with them:
//   internal — this node's kernel view (source dump + events, through the filters);
//   external — what peers sent (filled by the replication engine, or by `ctsyncctl import`);
// plus the writes into the kernel: commit (external -> kernel, masters before expectations), flush.
#pragma once

#include <ctsync/sdk/filter.hpp>
#include <ctsync/sdk/source.hpp>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/cache/flow_cache.hpp"
#include "core/cache/kernel_view.hpp"
#include "core/control/server.hpp"
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
    // The same three as the control socket runs them (control::StagedHandler), so that a whole table does
    // not stall the event loop: called on the loop, each takes its snapshot there and returns the work for
    // the control worker — dump: the JSON of a copy of the cache; import: parsing and checking every entry,
    // then (on the loop again) applying them; commit: the kernel write of an adjusted copy of the external
    // cache (on the loop when the source cannot be written from another thread).
    control::Work dump_staged(const nlohmann::json& args) const;
    control::Work import_staged(nlohmann::json args);
    control::Work commit_staged(const nlohmann::json& args);
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
    // The proto handlers' adjustment of entries about to be written (on the executor thread: proto handlers
    // run there only).
    void adjust_for_commit(std::vector<sdk::FlowState>& flows) const;
    // A routine write of flows already adjusted (adjust_for_commit), without expectations: the warm
    // standby's. Thread-safe when writes_off_loop(): it touches only the source's writer and atomic
    // counters, and every write into the kernel (this one, write_entries, flush) is serialised by one lock.
    nlohmann::json write_adjusted(const std::vector<sdk::FlowState>& upserts,
                                  const std::vector<sdk::FlowState>& deletes, std::string_view event);
    // The source may be written from a thread other than the executor's (Source::concurrent_writes, ABI
    // 1.2; set by the daemon, which knows the plugin's ABI minor).
    void set_writes_off_loop(bool on) { writes_off_loop_ = on; }
    bool writes_off_loop() const { return writes_off_loop_; }
    // The internal cache holds a complete dump of the kernel table.
    bool internal_synced() const;
    // The source, or null (no kernel to write).
    sdk::Source* source() const { return source_; }

    FlowCache& internal() { return internal_; }
    FlowCache& external() { return external_; }
    // Sets the gauges external.flows and external.expectations from the cache, which the replication engine
    // changes without telling: called before every read of the metrics (stats, metrics, the endpoint).
    void refresh_external_gauges();

  private:
    sdk::Source& require_source() const;
    nlohmann::json write_ops(const std::vector<sdk::FlowState>& upserts,
                             const std::vector<sdk::FlowState>& deletes,
                             const std::vector<sdk::Expectation>& expectations, std::string_view event,
                             bool routine);
    std::vector<sdk::Expectation> external_expectations() const;

    MetricsRegistry& metrics_;
    sdk::Logger& log_;
    sdk::Source* source_;
    const ProtoTable* protos_ = nullptr;
    bool writes_off_loop_ = false;
    std::mutex write_mutex_;  // one write into the kernel at a time (the warm standby's thread, the loop)
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
