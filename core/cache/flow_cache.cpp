// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/cache/flow_cache.hpp"

#include <cstring>

namespace ctsync::core {
namespace {

// FNV-1a over the fields that identify an entry, in a fixed order (no padding bytes are read).
struct Hasher {
    std::uint64_t h = 1469598103934665603ull;
    void bytes(const void* p, std::size_t n) {
        const auto* b = static_cast<const std::uint8_t*>(p);
        for (std::size_t i = 0; i < n; ++i) {
            h = (h ^ b[i]) * 1099511628211ull;
        }
    }
    template <class T>
    void value(T v) {
        bytes(&v, sizeof(v));
    }
    void tuple(const sdk::Tuple& t) {
        bytes(t.src.bytes.data(), 16);
        bytes(t.dst.bytes.data(), 16);
        value(static_cast<std::uint8_t>(t.family));
        value(t.protocol);
        value(t.src_port);
        value(t.dst_port);
        value(t.icmp_type);
        value(t.icmp_code);
    }
    void zone(const sdk::Zone& z) {
        value(z.id);
        value(z.directions);
    }
};

}  // namespace

std::size_t FlowKeyHash::operator()(const sdk::FlowKey& key) const noexcept {
    Hasher h;
    h.zone(key.zone);
    h.tuple(key.original);
    return static_cast<std::size_t>(h.h);
}

std::size_t ExpectationKeyHash::operator()(const ExpectationKey& key) const noexcept {
    Hasher h;
    h.zone(key.zone);
    h.tuple(key.master);
    h.tuple(key.expected);
    return static_cast<std::size_t>(h.h);
}

ExpectationKey key_of(const sdk::Expectation& e) noexcept {
    return {e.zone, e.master, e.expected};
}

bool FlowCache::upsert(const sdk::FlowState& flow, std::uint64_t generation) {
    auto [it, inserted] = flows_.try_emplace(flow.key());
    bool changed = inserted || !(it->second.flow == flow);
    it->second.flow = flow;
    it->second.generation = generation;
    return changed;
}

bool FlowCache::erase(const sdk::FlowKey& key) {
    return flows_.erase(key) != 0;
}

const sdk::FlowState* FlowCache::find(const sdk::FlowKey& key) const {
    auto it = flows_.find(key);
    return it == flows_.end() ? nullptr : &it->second.flow;
}

void FlowCache::touch(const sdk::FlowKey& key, std::uint64_t generation) {
    if (auto it = flows_.find(key); it != flows_.end()) {
        it->second.generation = generation;
    }
}

bool FlowCache::upsert(const sdk::Expectation& expectation, std::uint64_t generation) {
    auto [it, inserted] = expectations_.try_emplace(key_of(expectation));
    bool changed = inserted || !(it->second.expectation == expectation);
    it->second.expectation = expectation;
    it->second.generation = generation;
    return changed;
}

bool FlowCache::erase(const ExpectationKey& key) {
    return expectations_.erase(key) != 0;
}

const sdk::Expectation* FlowCache::find(const ExpectationKey& key) const {
    auto it = expectations_.find(key);
    return it == expectations_.end() ? nullptr : &it->second.expectation;
}

void FlowCache::touch(const ExpectationKey& key, std::uint64_t generation) {
    if (auto it = expectations_.find(key); it != expectations_.end()) {
        it->second.generation = generation;
    }
}

std::size_t FlowCache::sweep(std::uint64_t generation) {
    std::size_t removed =
        std::erase_if(flows_, [&](const auto& kv) { return kv.second.generation < generation; });
    removed +=
        std::erase_if(expectations_, [&](const auto& kv) { return kv.second.generation < generation; });
    return removed;
}

void FlowCache::clear() {
    flows_.clear();
    expectations_.clear();
}

std::size_t FlowCache::memory_bytes() const {
    // libstdc++: a node holds the next pointer, the value and the cached hash; buckets are pointers.
    constexpr std::size_t kFlowNode =
        sizeof(void*) + sizeof(std::pair<const sdk::FlowKey, FlowEntry>) + sizeof(std::size_t);
    constexpr std::size_t kExpNode =
        sizeof(void*) + sizeof(std::pair<const ExpectationKey, ExpectationEntry>) + sizeof(std::size_t);
    return flows_.size() * kFlowNode + flows_.bucket_count() * sizeof(void*) +
           expectations_.size() * kExpNode + expectations_.bucket_count() * sizeof(void*);
}

void FlowCache::for_each_flow(const std::function<void(const sdk::FlowState&)>& f) const {
    for (const auto& [key, entry] : flows_) {
        f(entry.flow);
    }
}

void FlowCache::for_each_expectation(const std::function<void(const sdk::Expectation&)>& f) const {
    for (const auto& [key, entry] : expectations_) {
        f(entry.expectation);
    }
}

}  // namespace ctsync::core
