// SPDX-License-Identifier: GPL-2.0-or-later
#include "peer_table.hpp"

#include <fmt/format.h>

#include <utility>

namespace tipc {

std::string format_port(PortId port) {
    return fmt::format("{:x}:{}", port.node, port.ref);
}

std::optional<PeerTransition> PeerTable::publish(std::uint32_t node, PortId port) {
    if (node == own_node_) {
        return std::nullopt;
    }
    auto& ports = target()[node];
    const bool first = ports.empty();
    if (!ports.insert(port).second || !first || rebuilding()) {
        return std::nullopt;
    }
    return PeerTransition{node, true, port};
}

std::optional<PeerTransition> PeerTable::withdraw(std::uint32_t node, PortId port) {
    if (node == own_node_) {
        return std::nullopt;
    }
    auto& table = target();
    auto it = table.find(node);
    if (it == table.end() || it->second.erase(port) == 0 || !it->second.empty()) {
        return std::nullopt;
    }
    table.erase(it);
    if (rebuilding()) {
        return std::nullopt;
    }
    return PeerTransition{node, false, port};
}

void PeerTable::begin_rebuild() {
    rebuilt_.emplace();
}

std::vector<PeerTransition> PeerTable::finish_rebuild() {
    std::vector<PeerTransition> changes;
    if (!rebuilt_) {
        return changes;
    }
    Ports next = std::move(*rebuilt_);
    rebuilt_.reset();
    // Both maps are ordered by node id: one merge pass yields the differences in node order.
    auto old_it = ports_.begin();
    auto new_it = next.begin();
    while (old_it != ports_.end() || new_it != next.end()) {
        if (new_it == next.end() || (old_it != ports_.end() && old_it->first < new_it->first)) {
            changes.push_back({old_it->first, false, *old_it->second.begin()});
            ++old_it;
        } else if (old_it == ports_.end() || new_it->first < old_it->first) {
            changes.push_back({new_it->first, true, *new_it->second.begin()});
            ++new_it;
        } else {
            ++old_it;
            ++new_it;
        }
    }
    ports_ = std::move(next);
    return changes;
}

std::size_t PeerTable::ports(std::uint32_t node) const {
    auto it = ports_.find(node);
    return it == ports_.end() ? 0 : it->second.size();
}

std::size_t PeerTable::tipc_nodes(std::uint32_t node) const {
    const Ports& table = latest();
    auto it = table.find(node);
    if (it == table.end()) {
        return 0;
    }
    std::set<std::uint32_t> nodes;
    for (const auto& port : it->second) {
        nodes.insert(port.node);
    }
    return nodes.size();
}

std::vector<std::uint32_t> PeerTable::nodes_up() const {
    std::vector<std::uint32_t> nodes;
    nodes.reserve(ports_.size());
    for (const auto& [node, ports] : ports_) {
        nodes.push_back(node);
    }
    return nodes;
}

}  // namespace tipc
