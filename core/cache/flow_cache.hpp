// SPDX-License-Identifier: GPL-2.0-or-later
// A cache of flows and expectations keyed as the kernel keys them (zone + original tuple), with a generation
// per entry for mark-and-sweep resynchronisation. Used for the internal cache (this node's kernel view) and
// the external cache (what peers sent). Single-threaded: owned and used by the event loop.
#pragma once

#include <cstdint>
#include <ctsync/sdk/flow.hpp>
#include <functional>
#include <unordered_map>
#include <vector>

namespace ctsync::core {

struct FlowKeyHash {
    std::size_t operator()(const sdk::FlowKey& key) const noexcept;
};

// Expectations are identified by their zone, master and expected tuples.
struct ExpectationKey {
    sdk::Zone zone;
    sdk::Tuple master;
    sdk::Tuple expected;
    friend bool operator==(const ExpectationKey&, const ExpectationKey&) = default;
};
struct ExpectationKeyHash {
    std::size_t operator()(const ExpectationKey& key) const noexcept;
};
ExpectationKey key_of(const sdk::Expectation& expectation) noexcept;

class FlowCache {
  public:
    // Inserts or replaces; stamps the entry with `generation`. Returns true when the stored state changed.
    bool upsert(const sdk::FlowState& flow, std::uint64_t generation = 0);
    bool erase(const sdk::FlowKey& key);
    const sdk::FlowState* find(const sdk::FlowKey& key) const;
    // Stamps an existing entry without changing it (seen by a dump, but an event already told us more).
    void touch(const sdk::FlowKey& key, std::uint64_t generation);

    bool upsert(const sdk::Expectation& expectation, std::uint64_t generation = 0);
    bool erase(const ExpectationKey& key);
    const sdk::Expectation* find(const ExpectationKey& key) const;
    void touch(const ExpectationKey& key, std::uint64_t generation);

    // Removes every entry whose generation is older than `generation`; returns how many went.
    std::size_t sweep(std::uint64_t generation);
    void clear();

    std::size_t flow_count() const { return flows_.size(); }
    std::size_t expectation_count() const { return expectations_.size(); }
    // Heap bytes held by the cache, from the containers' own layout (nodes, buckets); excludes allocator
    // overhead, which the benchmark measures separately.
    std::size_t memory_bytes() const;

    void for_each_flow(const std::function<void(const sdk::FlowState&)>& f) const;
    void for_each_expectation(const std::function<void(const sdk::Expectation&)>& f) const;

  private:
    struct FlowEntry {
        sdk::FlowState flow;
        std::uint64_t generation = 0;
    };
    struct ExpectationEntry {
        sdk::Expectation expectation;
        std::uint64_t generation = 0;
    };
    std::unordered_map<sdk::FlowKey, FlowEntry, FlowKeyHash> flows_;
    std::unordered_map<ExpectationKey, ExpectationEntry, ExpectationKeyHash> expectations_;
};

}  // namespace ctsync::core
