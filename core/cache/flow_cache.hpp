// SPDX-License-Identifier: GPL-2.0-or-later
// A cache of flows and expectations keyed as the kernel keys them (zone + original tuple), with a generation
// per entry for mark-and-sweep resynchronisation. Used for the internal cache (this node's kernel view) and
// the external cache (what peers sent). Single-threaded: owned and used by the event loop.
#pragma once

#include <cstdint>
#include <ctsync/sdk/flow.hpp>
#include <functional>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace ctsync::core {

// Deliberately not noexcept: libstdc++ then stores each node's hash code in the node, so that a lookup
// compares codes before keys and walking a bucket or growing the table never hashes a key again (a fifth
// of a primary's CPU during a burst went to those lookups). It never throws.
struct FlowKeyHash {
    std::size_t operator()(const sdk::FlowKey& key) const;
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

// Told of every change a cache undergoes (the replication engine watches the internal cache). Called
// synchronously from inside the cache's mutators, on the event-loop thread; must not modify the cache.
class CacheObserver {
  public:
    virtual ~CacheObserver() = default;
    // `before` is null for a new entry. `id` is the entry's flow id (stable while the entry lives).
    virtual void flow_changed(std::uint32_t id, const sdk::FlowState* before,
                              const sdk::FlowState& after) = 0;
    virtual void flow_removed(std::uint32_t id, const sdk::FlowState& last) = 0;
    virtual void expectation_changed(const sdk::Expectation& after) = 0;
    virtual void expectation_removed(const sdk::Expectation& last) = 0;
};

class FlowCache {
  public:
    // Half-full buckets: a lookup of a new key (most of a burst) walks half as many nodes, each a cache miss,
    // for 8 bytes more per entry (cold backup, 200k burst: 0.49 s of CPU instead of 0.54 s, medians of 3).
    FlowCache() { flows_.max_load_factor(0.5f); }
    void set_observer(CacheObserver* observer) { observer_ = observer; }

    // Inserts or replaces; stamps the entry with `generation` and `origin` (the node it came from; 0 for this
    // node's kernel). A new entry gets a fresh flow id, never 0, not reused while the cache lives. Returns
    // true when the stored state changed.
    bool upsert(const sdk::FlowState& flow, std::uint64_t generation = 0, std::uint32_t origin = 0);
    // The flow id of an entry; 0 when there is none.
    std::uint32_t id_of(const sdk::FlowKey& key) const;
    // Where the id counter stands (tests: an uptime of 2^32 inserts in a moment).
    void set_next_id(std::uint32_t next) { next_id_ = next; }
    bool erase(const sdk::FlowKey& key);
    const sdk::FlowState* find(const sdk::FlowKey& key) const;
    // Stamps an existing entry without changing it (seen by a dump, but an event already told us more).
    void touch(const sdk::FlowKey& key, std::uint64_t generation);

    bool upsert(const sdk::Expectation& expectation, std::uint64_t generation = 0, std::uint32_t origin = 0);
    bool erase(const ExpectationKey& key);
    const sdk::Expectation* find(const ExpectationKey& key) const;
    void touch(const ExpectationKey& key, std::uint64_t generation);

    // Removes every entry whose generation is older than `generation`; returns how many went.
    std::size_t sweep(std::uint64_t generation);
    // The same, limited to the entries that came from `origin`.
    std::size_t sweep_origin(std::uint64_t generation, std::uint32_t origin);
    void clear();

    std::size_t flow_count() const { return flows_.size(); }
    std::size_t expectation_count() const { return expectations_.size(); }
    // Heap bytes held by the cache, from the containers' own layout (nodes, buckets); excludes allocator
    // overhead, which the benchmark measures separately.
    std::size_t memory_bytes() const;

    void for_each_flow(const std::function<void(const sdk::FlowState&)>& f) const;
    // Only the flows that came from `origin` (see upsert).
    void for_each_flow_from(std::uint32_t origin, const std::function<void(const sdk::FlowState&)>& f) const;
    void for_each_expectation(const std::function<void(const sdk::Expectation&)>& f) const;

  private:
    struct FlowEntry {
        sdk::FlowState flow;
        std::uint64_t generation = 0;
        std::uint32_t id = 0;
        std::uint32_t origin = 0;
    };
    struct ExpectationEntry {
        sdk::Expectation expectation;
        std::uint64_t generation = 0;
        std::uint32_t origin = 0;
    };
    std::size_t sweep_if(std::uint64_t generation, std::optional<std::uint32_t> origin);

    // A new flow's id: the next after the last one handed out, 0 skipped ("no flow"). Until the counter
    // first wraps (2^32 inserts, half a day at 100k new flows/s) ids are unique by construction; from then
    // on each new id also skips the ids still held, which are kept in `ids_in_use_` (empty before), so that
    // no id ever names two live flows (peers map ids to flows).
    std::uint32_t take_id();
    void release_id(std::uint32_t id);

    CacheObserver* observer_ = nullptr;
    std::uint32_t next_id_ = 0;
    bool ids_wrapped_ = false;
    std::unordered_set<std::uint32_t> ids_in_use_;
    std::unordered_map<sdk::FlowKey, FlowEntry, FlowKeyHash> flows_;
    std::unordered_map<ExpectationKey, ExpectationEntry, ExpectationKeyHash> expectations_;
};

}  // namespace ctsync::core
