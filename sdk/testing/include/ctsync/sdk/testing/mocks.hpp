// SPDX-License-Identifier: GPL-2.0-or-later
// gmock mocks of every SDK interface: the host services a plugin receives, the sinks it calls, and the
// plugin interfaces themselves (for testing code that drives plugins). Test-only; not thread-safe beyond
// what gmock guarantees.
#pragma once

#include <gmock/gmock.h>

#include <ctsync/sdk/sdk.hpp>
#include <map>
#include <memory>
#include <string>

namespace ctsync::testkit {

// The test kit speaks the SDK's types unqualified; it lives apart from ctsync::sdk so that
// `using namespace ctsync::sdk` in a test does not make gtest's ::testing ambiguous.
using namespace ::ctsync::sdk;

class MockLogger : public Logger {
  public:
    MOCK_METHOD(void, log, (LogLevel level, std::string_view message), (noexcept, override));
    MOCK_METHOD(bool, enabled, (LogLevel level), (const, noexcept, override));
};

// Metrics that really count (so that tests can assert values) and record what was asked for.
class FakeMetrics : public Metrics {
  public:
    Counter& counter(std::string_view name, std::string_view help) noexcept override {
        help_[std::string(name)] = std::string(help);
        auto& slot = counters_[std::string(name)];
        if (!slot) {
            slot = std::make_unique<Counter>();
        }
        return *slot;
    }
    Gauge& gauge(std::string_view name, std::string_view help) noexcept override {
        help_[std::string(name)] = std::string(help);
        auto& slot = gauges_[std::string(name)];
        if (!slot) {
            slot = std::make_unique<Gauge>();
        }
        return *slot;
    }
    // Value of a counter, or -1 when the plugin never asked for it.
    std::int64_t counter_value(const std::string& name) const {
        auto it = counters_.find(name);
        return it == counters_.end() ? -1 : static_cast<std::int64_t>(it->second->value());
    }
    bool has(const std::string& name) const { return help_.count(name) != 0; }

  private:
    std::map<std::string, std::unique_ptr<Counter>> counters_;
    std::map<std::string, std::unique_ptr<Gauge>> gauges_;
    std::map<std::string, std::string> help_;
};

class MockMetrics : public Metrics {
  public:
    MOCK_METHOD(Counter&, counter, (std::string_view name, std::string_view help), (noexcept, override));
    MOCK_METHOD(Gauge&, gauge, (std::string_view name, std::string_view help), (noexcept, override));
};

class MockFlowSink : public FlowSink {
  public:
    MOCK_METHOD(void, on_flow, (EventKind kind, const FlowState& flow), (noexcept, override));
    MOCK_METHOD(void, on_expectation, (EventKind kind, const Expectation& expectation), (noexcept, override));
    MOCK_METHOD(void, on_dump_begin, (std::uint64_t generation), (noexcept, override));
    MOCK_METHOD(void, on_dump_end, (std::uint64_t generation, bool complete), (noexcept, override));
    MOCK_METHOD(void, on_loss, (LossReason reason, std::uint64_t count), (noexcept, override));
};

class MockSource : public Source {
  public:
    MOCK_METHOD(void, stop, (), (noexcept, override));
    MOCK_METHOD(bool, start, (FlowSink & sink, std::string& error), (noexcept, override));
    MOCK_METHOD(void, request_dump, (), (noexcept, override));
    MOCK_METHOD(WriteReport, write, (std::span<const WriteOp> ops), (noexcept, override));
    MOCK_METHOD(WriteReport, flush, (), (noexcept, override));
    MOCK_METHOD(bool, attach_event_filter, (std::span<const BpfInstruction> program, std::string& error),
                (noexcept, override));
    MOCK_METHOD(bool, concurrent_writes, (), (const, noexcept, override));
};

class MockProtoHandler : public ProtoHandler {
  public:
    MOCK_METHOD(void, stop, (), (noexcept, override));
    MOCK_METHOD(std::span<const std::uint8_t>, protocols, (), (const, noexcept, override));
    MOCK_METHOD(bool, worth_replicating, (const FlowState& flow), (const, noexcept, override));
    MOCK_METHOD(Change, classify, (const FlowState& before, const FlowState& after),
                (const, noexcept, override));
    MOCK_METHOD(void, adjust_for_commit, (FlowState & flow), (const, noexcept, override));
    MOCK_METHOD(bool, validate_peer, (const FlowState& flow, std::string& reason),
                (const, noexcept, override));
};

class MockFilter : public Filter {
  public:
    MOCK_METHOD(void, stop, (), (noexcept, override));
    MOCK_METHOD(Verdict, evaluate, (const FlowState& flow), (const, noexcept, override));
    MOCK_METHOD(std::optional<std::vector<BpfInstruction>>, kernel_program, (), (const, noexcept, override));
    MOCK_METHOD(nlohmann::json, describe, (), (const, noexcept, override));
};

class MockTransportSink : public TransportSink {
  public:
    MOCK_METHOD(void, on_datagram, (std::span<const std::byte> data), (noexcept, override));
    MOCK_METHOD(void, on_link_state, (LinkState state, const std::string& detail), (noexcept, override));
    MOCK_METHOD(void, on_peer_state, (std::uint32_t node, PeerState state, const std::string& detail),
                (noexcept, override));
};

class MockTransport : public Transport {
  public:
    MOCK_METHOD(void, stop, (), (noexcept, override));
    MOCK_METHOD(bool, start, (TransportSink & sink, std::string& error), (noexcept, override));
    MOCK_METHOD(bool, send, (std::span<const std::byte> datagram), (noexcept, override));
    MOCK_METHOD(std::size_t, max_datagram_size, (), (const, noexcept, override));
};

class MockRoleSink : public RoleSink {
  public:
    MOCK_METHOD(void, on_role, (Role role, const std::string& reason), (noexcept, override));
};

class MockHaAdapter : public HaAdapter {
  public:
    MOCK_METHOD(void, stop, (), (noexcept, override));
    MOCK_METHOD(bool, start, (RoleSink & sink, std::string& error), (noexcept, override));
    MOCK_METHOD(void, update_readiness, (const SyncReadiness& readiness), (noexcept, override));
};

}  // namespace ctsync::testkit
