// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/cache/flow_cache.hpp"

#include <cstring>
#include <random>

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

// Random per process: the keys come from traffic and peers (see sdk::hash_flow_key).
const std::uint64_t kFlowKeySeed = [] {
    std::random_device device;
    return (std::uint64_t{device()} << 32) ^ device();
}();

std::size_t FlowKeyHash::operator()(const sdk::FlowKey& key) const {
    return sdk::hash_flow_key(key, kFlowKeySeed);
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

bool FlowCache::upsert(const sdk::FlowState& flow, std::uint64_t generation, std::uint32_t origin) {
    auto [it, inserted] = flows_.try_emplace(flow.key());
    auto& entry = it->second;
    if (inserted) {
        entry.id = take_id();
    }
    bool changed = inserted || !(entry.flow == flow);
    entry.generation = generation;
    entry.origin = origin;
    if (!changed) {
        return false;
    }
    if (observer_ != nullptr) {
        sdk::FlowState before;
        if (!inserted) {
            before = entry.flow;
        }
        entry.flow = flow;
        observer_->flow_changed(entry.id, inserted ? nullptr : &before, entry.flow);
    } else {
        entry.flow = flow;
    }
    return true;
}

std::uint32_t FlowCache::take_id() {
    for (;;) {
        if (++next_id_ == 0) {  // 0 means "no flow"
            if (!ids_wrapped_) {
                ids_wrapped_ = true;
                for (const auto& [key, e] : flows_) {
                    if (e.id != 0) {
                        ids_in_use_.insert(e.id);
                    }
                }
            }
            continue;
        }
        if (!ids_wrapped_ || ids_in_use_.insert(next_id_).second) {
            return next_id_;
        }
    }
}

void FlowCache::release_id(std::uint32_t id) {
    if (ids_wrapped_) {
        ids_in_use_.erase(id);
    }
}

std::uint32_t FlowCache::id_of(const sdk::FlowKey& key) const {
    auto it = flows_.find(key);
    return it == flows_.end() ? 0 : it->second.id;
}

bool FlowCache::erase(const sdk::FlowKey& key) {
    auto it = flows_.find(key);
    if (it == flows_.end()) {
        return false;
    }
    release_id(it->second.id);
    if (observer_ != nullptr) {
        FlowEntry last = std::move(it->second);
        flows_.erase(it);
        observer_->flow_removed(last.id, last.flow);
    } else {
        flows_.erase(it);
    }
    return true;
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

bool FlowCache::upsert(const sdk::Expectation& expectation, std::uint64_t generation, std::uint32_t origin) {
    auto [it, inserted] = expectations_.try_emplace(key_of(expectation));
    bool changed = inserted || !(it->second.expectation == expectation);
    it->second.expectation = expectation;
    it->second.generation = generation;
    it->second.origin = origin;
    if (changed && observer_ != nullptr) {
        observer_->expectation_changed(it->second.expectation);
    }
    return changed;
}

bool FlowCache::erase(const ExpectationKey& key) {
    auto it = expectations_.find(key);
    if (it == expectations_.end()) {
        return false;
    }
    sdk::Expectation last = std::move(it->second.expectation);
    expectations_.erase(it);
    if (observer_ != nullptr) {
        observer_->expectation_removed(last);
    }
    return true;
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

namespace {

// Removes the entries `stale` selects, telling the observer about each.
template <class Map, class Stale, class Tell>
std::size_t remove_if(Map& map, Stale stale, Tell tell) {
    std::size_t removed = 0;
    for (auto it = map.begin(); it != map.end();) {
        if (stale(it->second)) {
            auto entry = std::move(it->second);
            it = map.erase(it);
            tell(entry);
            ++removed;
        } else {
            ++it;
        }
    }
    return removed;
}

}  // namespace

std::size_t FlowCache::sweep_if(std::uint64_t generation, std::optional<std::uint32_t> origin) {
    auto stale = [&](std::uint64_t g, std::uint32_t o) {
        return g < generation && (!origin || o == *origin);
    };
    std::size_t removed = remove_if(
        flows_, [&](const FlowEntry& e) { return stale(e.generation, e.origin); },
        [this](const FlowEntry& e) {
            release_id(e.id);
            if (observer_ != nullptr) {
                observer_->flow_removed(e.id, e.flow);
            }
        });
    removed += remove_if(
        expectations_, [&](const ExpectationEntry& e) { return stale(e.generation, e.origin); },
        [this](const ExpectationEntry& e) {
            if (observer_ != nullptr) {
                observer_->expectation_removed(e.expectation);
            }
        });
    return removed;
}

std::size_t FlowCache::sweep_origin(std::uint64_t generation, std::uint32_t origin) {
    return sweep_if(generation, origin);
}

std::size_t FlowCache::sweep(std::uint64_t generation) {
    return sweep_if(generation, std::nullopt);
}

void FlowCache::clear() {
    if (observer_ != nullptr) {
        for (const auto& [key, e] : flows_) {
            observer_->flow_removed(e.id, e.flow);
        }
        for (const auto& [key, e] : expectations_) {
            observer_->expectation_removed(e.expectation);
        }
    }
    flows_.clear();
    expectations_.clear();
    ids_in_use_.clear();
}

std::size_t FlowCache::memory_bytes() const {
    // libstdc++: a node holds the next pointer, the value and the cached hash; buckets are pointers.
    constexpr std::size_t kFlowNode =
        sizeof(void*) + sizeof(std::pair<const sdk::FlowKey, FlowEntry>) + sizeof(std::size_t);
    constexpr std::size_t kExpNode =
        sizeof(void*) + sizeof(std::pair<const ExpectationKey, ExpectationEntry>) + sizeof(std::size_t);
    constexpr std::size_t kIdNode = sizeof(void*) + sizeof(std::uint32_t) + sizeof(std::size_t);
    return flows_.size() * kFlowNode + flows_.bucket_count() * sizeof(void*) +
           expectations_.size() * kExpNode + expectations_.bucket_count() * sizeof(void*) +
           ids_in_use_.size() * kIdNode + (ids_wrapped_ ? ids_in_use_.bucket_count() * sizeof(void*) : 0);
}

void FlowCache::for_each_flow(const std::function<void(const sdk::FlowState&)>& f) const {
    for (const auto& [key, entry] : flows_) {
        f(entry.flow);
    }
}

void FlowCache::for_each_flow_from(std::uint32_t origin,
                                   const std::function<void(const sdk::FlowState&)>& f) const {
    for (const auto& [key, entry] : flows_) {
        if (entry.origin == origin) {
            f(entry.flow);
        }
    }
}

void FlowCache::for_each_expectation(const std::function<void(const sdk::Expectation&)>& f) const {
    for (const auto& [key, entry] : expectations_) {
        f(entry.expectation);
    }
}

}  // namespace ctsync::core
