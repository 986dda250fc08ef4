// SPDX-License-Identifier: GPL-2.0-or-later
// Which ctsync nodes are reachable over TIPC, as the topology service reports them: every node binds the
// service {service_type, its node id}, and the topology server tells us each port that publishes or
// withdraws an instance. One node can be published by several ports at once (a restarting ctsyncd whose
// old socket is not closed yet, two slots of one daemon): it is up while at least one port publishes it.
// Plain data, no I/O, no threads: the transport feeds it and reports the transitions it returns.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tipc {

// A TIPC socket: its node's 32-bit address and its reference on that node (struct tipc_socket_addr).
struct PortId {
    std::uint32_t node = 0;
    std::uint32_t ref = 0;
    friend auto operator<=>(const PortId&, const PortId&) = default;
};

// "1001002:3938447364": the node address in hex, as `tipc` prints it, then the reference.
std::string format_port(PortId port);

// A ctsync node (the instance it publishes) became reachable or unreachable; `port` is the port whose
// event caused it (its first port for up, its last for down).
struct PeerTransition {
    std::uint32_t node = 0;
    bool up = false;
    PortId port;
    friend bool operator==(const PeerTransition&, const PeerTransition&) = default;
};

class PeerTable {
  public:
    // `own_node` is this node's id: its publications are ours, never a peer.
    explicit PeerTable(std::uint32_t own_node) : own_node_(own_node) {}

    // `port` publishes `node`. Returns the transition when it is the node's first port; nothing for our
    // own node, for a port already known (the event repeated) and while rebuilding.
    std::optional<PeerTransition> publish(std::uint32_t node, PortId port);
    // `port` no longer publishes `node`. Returns the transition when it was the node's last port; nothing
    // for our own node, for a port not known and while rebuilding.
    std::optional<PeerTransition> withdraw(std::uint32_t node, PortId port);

    // The topology connection was replaced: the server reports every publication again. From now until
    // finish_rebuild() events fill a new table and report nothing; the old table stays what up() and
    // peers_up() answer, so that the last known state holds meanwhile. Calling it again restarts the rebuild.
    void begin_rebuild();
    // Replaces the table with the rebuilt one and returns how it differs, by node id: a node up before
    // and not now is down, and the other way round. Nothing when not rebuilding.
    std::vector<PeerTransition> finish_rebuild();
    bool rebuilding() const { return rebuilt_.has_value(); }

    bool up(std::uint32_t node) const { return ports_.count(node) != 0; }
    std::size_t peers_up() const { return ports_.size(); }
    // Ports publishing `node` (0 when it is down).
    std::size_t ports(std::uint32_t node) const;
    // The distinct TIPC nodes whose ports publish `node` (in the table being rebuilt, if any): more than one
    // means that two machines use one node id.
    std::size_t tipc_nodes(std::uint32_t node) const;
    std::vector<std::uint32_t> nodes_up() const;

  private:
    using Ports = std::map<std::uint32_t, std::set<PortId>>;
    Ports& target() { return rebuilt_ ? *rebuilt_ : ports_; }
    const Ports& latest() const { return rebuilt_ ? *rebuilt_ : ports_; }

    std::uint32_t own_node_;
    Ports ports_;                   // what has been reported: a node is in it while it has a port
    std::optional<Ports> rebuilt_;  // being filled after a reconnect
};

}  // namespace tipc
