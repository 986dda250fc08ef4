// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/daemon/tables.hpp"

#include <fmt/format.h>

#include <chrono>
#include <stdexcept>

#include "core/cache/flow_json.hpp"

namespace ctsync::core {
namespace {

std::string cache_arg(const nlohmann::json& args, const char* fallback) {
    auto it = args.find("cache");
    if (it == args.end()) {
        return fallback;
    }
    if (!it->is_string() || (*it != "internal" && *it != "external")) {
        throw std::invalid_argument("\"cache\" must be \"internal\" or \"external\"");
    }
    return it->get<std::string>();
}

nlohmann::json write_report_json(const sdk::WriteReport& report) {
    nlohmann::json errors = nlohmann::json::array();
    for (const auto& e : report.errors) {
        errors.push_back({{"index", e.index}, {"errno", e.error}, {"message", e.message}});
    }
    return {{"applied", report.applied}, {"failed", report.failed}, {"errors", errors}};
}

}  // namespace

Tables::Tables(MetricsRegistry& metrics, sdk::Logger& log, sdk::Source* source,
               std::vector<sdk::Filter*> filters)
    : metrics_(metrics),
      log_(log),
      source_(source),
      filters_(std::move(filters)),
      external_flows_(metrics.gauge("external.flows", "flows in the external cache")),
      external_expectations_(metrics.gauge("external.expectations", "expectations in the external cache")),
      commits_(metrics.counter("commit.runs", "commits of the external cache into the kernel")),
      commit_failed_(metrics.counter("commit.failed_entries", "entries the kernel refused during commits")) {
    view_ = std::make_unique<KernelView>(internal_, metrics_, log_, [this](const sdk::FlowState& flow) {
        for (const auto* filter : filters_) {
            if (filter->evaluate(flow) == sdk::Verdict::kDrop) {
                return false;
            }
        }
        return true;
    });
}

std::string Tables::start() {
    if (source_ == nullptr) {
        return {};
    }
    std::string error;
    if (!source_->start(*view_, error)) {
        return "the source refused to start: " + error;
    }
    return {};
}

sdk::Source& Tables::require_source() const {
    if (source_ == nullptr) {
        throw std::runtime_error(
            "no source plugin is configured (.source): nothing reads or writes the kernel table");
    }
    return *source_;
}

void Tables::refresh_external_gauges() {
    external_flows_.set(static_cast<std::int64_t>(external_.flow_count()));
    external_expectations_.set(static_cast<std::int64_t>(external_.expectation_count()));
}

namespace {

// A staged command run to its end on this thread (the direct calls, the fuzzer).
nlohmann::json run_here(const control::Work& work) {
    control::Outcome outcome = work();
    return outcome.on_loop ? outcome.on_loop() : std::move(outcome.result);
}

}  // namespace

nlohmann::json Tables::dump(const nlohmann::json& args) const {
    return run_here(dump_staged(args));
}

nlohmann::json Tables::import(const nlohmann::json& args) {
    return run_here(import_staged(args));
}

nlohmann::json Tables::commit(const nlohmann::json& args) {
    return run_here(commit_staged(args));
}

std::vector<sdk::Expectation> Tables::external_expectations() const {
    std::vector<sdk::Expectation> out;
    out.reserve(external_.expectation_count());
    external_.for_each_expectation([&](const sdk::Expectation& e) { out.push_back(e); });
    return out;
}

control::Work Tables::dump_staged(const nlohmann::json& args) const {
    const std::string which = cache_arg(args, "internal");
    const FlowCache& cache = which == "internal" ? internal_ : external_;
    auto flows = std::make_shared<std::vector<sdk::FlowState>>();
    auto expectations = std::make_shared<std::vector<sdk::Expectation>>();
    flows->reserve(cache.flow_count());
    cache.for_each_flow([&](const sdk::FlowState& f) { flows->push_back(f); });
    cache.for_each_expectation([&](const sdk::Expectation& e) { expectations->push_back(e); });
    return [which, flows, expectations] {
        nlohmann::json flows_json = nlohmann::json::array();
        nlohmann::json expectations_json = nlohmann::json::array();
        for (const auto& f : *flows) {
            flows_json.push_back(to_json(f));
        }
        for (const auto& e : *expectations) {
            expectations_json.push_back(to_json(e));
        }
        return control::Outcome{{{"cache", which},
                                 {"flows", std::move(flows_json)},
                                 {"expectations", std::move(expectations_json)}},
                                {}};
    };
}

control::Work Tables::import_staged(nlohmann::json args) {
    auto in = std::make_shared<nlohmann::json>(std::move(args));
    return [this, in] {
        // All or nothing: a file with one bad entry changes nothing.
        ConfigIssues issues;
        auto flows = std::make_shared<std::vector<sdk::FlowState>>();
        auto expectations = std::make_shared<std::vector<sdk::Expectation>>();
        for (const char* key : {"flows", "expectations"}) {
            auto it = in->find(key);
            if (it != in->end() && !it->is_array()) {
                issues.push_back({std::string(".") + key, "expected an array"});
            }
        }
        if (auto it = in->find("flows"); it != in->end() && it->is_array()) {
            flows->reserve(it->size());
            for (std::size_t i = 0; i < it->size(); ++i) {
                if (auto f = flow_from_json((*it)[i], join_path(".flows", i), issues)) {
                    flows->push_back(*f);
                }
            }
        }
        if (auto it = in->find("expectations"); it != in->end() && it->is_array()) {
            for (std::size_t i = 0; i < it->size(); ++i) {
                if (auto e = expectation_from_json((*it)[i], join_path(".expectations", i), issues)) {
                    expectations->push_back(*e);
                }
            }
        }
        if (!issues.empty()) {
            std::string message = fmt::format("import refused, nothing changed: {} problem{}", issues.size(),
                                              issues.size() == 1 ? "" : "s");
            for (std::size_t i = 0; i < issues.size() && i < 10; ++i) {
                message += "; " + format_issue(issues[i]);
            }
            throw std::invalid_argument(message);
        }
        const bool replace = in->value("replace", false);
        *in = nlohmann::json();  // the request's text is done with: freed here, not on the loop
        return control::Outcome{
            {}, [this, flows, expectations, replace]() -> nlohmann::json {
                if (replace) {
                    external_.clear();
                }
                for (const auto& f : *flows) {
                    external_.upsert(f);
                }
                for (const auto& e : *expectations) {
                    external_.upsert(e);
                }
                refresh_external_gauges();
                log_.info(fmt::format("event=import flows={} expectations={} external_flows={}",
                                      flows->size(), expectations->size(), external_.flow_count()));
                return {{"flows", flows->size()},
                        {"expectations", expectations->size()},
                        {"external_flows", external_.flow_count()},
                        {"external_expectations", external_.expectation_count()}};
            }};
    };
}

control::Work Tables::commit_staged(const nlohmann::json&) {
    require_source();
    struct Snapshot {
        std::vector<sdk::FlowState> flows;
        std::vector<sdk::Expectation> expectations;
    };
    auto snapshot = std::make_shared<Snapshot>();
    snapshot->flows.reserve(external_.flow_count());
    external_.for_each_flow([&](const sdk::FlowState& f) { snapshot->flows.push_back(f); });
    adjust_for_commit(snapshot->flows);  // the proto handlers run on the loop only
    snapshot->expectations = external_expectations();
    auto write = [this, snapshot] {
        return write_ops(snapshot->flows, {}, snapshot->expectations, "commit", /*routine=*/false);
    };
    if (writes_off_loop_) {
        return [write] { return control::Outcome{write(), {}}; };
    }
    return [write] { return control::Outcome{{}, write}; };
}

nlohmann::json Tables::write_entries(std::vector<sdk::FlowState> upserts,
                                     const std::vector<sdk::FlowState>& deletes, bool expectations,
                                     std::string_view event, bool routine) {
    adjust_for_commit(upserts);
    return write_ops(upserts, deletes,
                     expectations ? external_expectations() : std::vector<sdk::Expectation>{}, event,
                     routine);
}

void Tables::adjust_for_commit(std::vector<sdk::FlowState>& flows) const {
    if (protos_ != nullptr) {
        for (auto& f : flows) {
            protos_->adjust_for_commit(f);
        }
    }
}

nlohmann::json Tables::write_adjusted(const std::vector<sdk::FlowState>& upserts,
                                      const std::vector<sdk::FlowState>& deletes, std::string_view event) {
    return write_ops(upserts, deletes, {}, event, /*routine=*/true);
}

nlohmann::json Tables::write_ops(const std::vector<sdk::FlowState>& upserts,
                                 const std::vector<sdk::FlowState>& deletes,
                                 const std::vector<sdk::Expectation>& expectations, std::string_view event,
                                 bool routine) {
    sdk::Source& source = require_source();
    const auto started = std::chrono::steady_clock::now();
    // Masters first: an expectation can only be created once its master exists.
    std::vector<sdk::WriteOp> ops;
    ops.reserve(upserts.size() + deletes.size() + expectations.size());
    for (const auto& f : upserts) {
        ops.push_back({sdk::WriteOp::Kind::kUpsert, &f, nullptr});
    }
    for (const auto& f : deletes) {
        ops.push_back({sdk::WriteOp::Kind::kDelete, &f, nullptr});
    }
    const std::size_t flows = ops.size();
    for (const auto& e : expectations) {
        ops.push_back({sdk::WriteOp::Kind::kUpsert, nullptr, &e});
    }
    sdk::WriteReport report;
    if (!ops.empty()) {
        std::lock_guard lock(write_mutex_);
        report = source.write(ops);
    }
    const auto ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
    if (!routine) {
        commits_.add();
        commit_failed_.add(report.failed);
    }
    const double rate = ms > 0 ? static_cast<double>(ops.size()) / (ms / 1000.0) : 0.0;
    log_.log(routine ? sdk::LogLevel::kDebug : sdk::LogLevel::kInfo,
             fmt::format("event={} flows={} deletes={} expectations={} applied={} failed={} ms={:.1f} "
                         "entries_per_s={:.0f}",
                         event, upserts.size(), deletes.size(), ops.size() - flows, report.applied,
                         report.failed, ms, rate));
    auto describe = [&](std::size_t index) {
        return index >= ops.size()          ? std::string("?")
               : ops[index].flow != nullptr ? to_line(*ops[index].flow)
                                            : to_line(*ops[index].expectation);
    };
    for (const auto& e : report.errors) {
        log_.log(routine ? sdk::LogLevel::kDebug : sdk::LogLevel::kWarn,
                 fmt::format("event={}_refused errno={} reason=\"{}\" entry=\"{}\"", event, e.error,
                             e.message, describe(e.index)));
    }
    nlohmann::json out = write_report_json(report);
    // Name the refused entries: indexes into a hash map's order mean nothing to an operator.
    for (auto& e : out["errors"]) {
        e["entry"] = describe(e["index"].get<std::size_t>());
    }
    out["flows"] = upserts.size();
    out["deletes"] = deletes.size();
    out["expectations"] = ops.size() - flows;
    out["ms"] = ms;
    out["entries_per_s"] = rate;
    return out;
}

nlohmann::json Tables::flush(const nlohmann::json& args) {
    auto it = args.find("target");
    if (it == args.end() || !it->is_string() || (*it != "internal" && *it != "external" && *it != "kernel")) {
        throw std::invalid_argument("\"target\" must be \"internal\", \"external\" or \"kernel\"");
    }
    const std::string target = it->get<std::string>();
    if (target == "external") {
        std::size_t n = external_.flow_count() + external_.expectation_count();
        external_.clear();
        refresh_external_gauges();
        log_.info(fmt::format("event=flush target=external removed={}", n));
        return {{"target", target}, {"removed", n}};
    }
    sdk::Source& source = require_source();
    if (target == "internal") {
        // Emptied and refilled from the kernel by a fresh dump (what conntrackd -f does for its cache).
        std::size_t n = internal_.flow_count() + internal_.expectation_count();
        internal_.clear();
        source.request_dump();
        log_.info(fmt::format("event=flush target=internal removed={} action=resync", n));
        return {{"target", target}, {"removed", n}};
    }
    sdk::WriteReport report;
    {
        std::lock_guard lock(write_mutex_);
        report = source.flush();
    }
    log_.info(fmt::format("event=flush target=kernel failed={}", report.failed));
    if (report.failed != 0) {
        throw std::runtime_error("kernel flush failed: " +
                                 (report.errors.empty() ? "" : report.errors[0].message));
    }
    return {{"target", target}};
}

nlohmann::json Tables::resync(const nlohmann::json&) {
    require_source().request_dump();
    return {{"dump_requested", true}};
}

bool Tables::internal_synced() const {
    return view_->synced();
}

nlohmann::json Tables::summary() const {
    return {{"source", source_ != nullptr},
            {"internal_flows", internal_.flow_count()},
            {"internal_expectations", internal_.expectation_count()},
            {"external_flows", external_.flow_count()},
            {"external_expectations", external_.expectation_count()},
            {"internal_synced", view_->synced()},
            {"dumping", view_->dumping()}};
}

}  // namespace ctsync::core
