// SPDX-License-Identifier: GPL-2.0-or-later
// The interface's side of transport-mcast, through rtnetlink (libmnl): its flags, MTU and addresses, read
// once at start and then followed through link and address notifications. Nothing of libmnl leaves this
// plugin.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct mnl_socket;
struct nlmsghdr;

namespace mcast {

// An IPv4 or IPv6 address in network byte order (IPv4 in the first four bytes).
struct IpAddress {
    int family = 0;  // AF_INET, AF_INET6; 0 when unset
    std::array<std::uint8_t, 16> bytes{};

    bool operator==(const IpAddress&) const = default;
    std::string to_string() const;
};

// What the kernel says about one interface (RTM_NEWLINK).
struct LinkInfo {
    int family = 0;  // ifi_family: AF_UNSPEC for the device itself (AF_BRIDGE for bridge-port messages)
    int ifindex = 0;
    std::string name;
    unsigned flags = 0;  // IFF_*
    std::uint32_t mtu = 0;
};

// Up means able to carry traffic: administratively up and running (carrier, operstate up or unknown).
bool link_is_up(const LinkInfo& link) noexcept;
// Why a link that is not up is down, for the log and the sink: "carrier lost on sync0".
std::string down_reason(const LinkInfo& link, bool was_up);

// Parses an RTM_NEWLINK/RTM_DELLINK message; false when it is not one or is malformed.
bool parse_link(const nlmsghdr* nlh, LinkInfo& out) noexcept;
// Parses an RTM_NEWADDR/RTM_DELADDR message: the interface and the local address (IFA_LOCAL, else
// IFA_ADDRESS: on point-to-point links IFA_ADDRESS is the peer's).
bool parse_address(const nlmsghdr* nlh, int& ifindex, IpAddress& out) noexcept;

// Two NETLINK_ROUTE sockets, both opened by open() in the network namespace of the calling thread:
//   events  — bound to the link and address notification groups; non-blocking, read by the owner on its
//             executor;
//   queries — synchronous requests (one interface, its addresses), each answered within 2 s or failed.
// Nothing opens a socket later, so the object works in the namespace it was created in whatever thread
// uses it afterwards. Not thread-safe; never throws.
class RouteNetlink {
  public:
    // `family` selects the address group (AF_INET: RTMGRP_IPV4_IFADDR, AF_INET6: RTMGRP_IPV6_IFADDR).
    // Returns null and sets `error` on failure.
    static std::unique_ptr<RouteNetlink> open(int family, std::size_t event_buffer_bytes, std::string& error);
    ~RouteNetlink();
    RouteNetlink(const RouteNetlink&) = delete;
    RouteNetlink& operator=(const RouteNetlink&) = delete;

    int events_fd() const;

    // The interface named `name` (error "No such device" when there is none).
    bool query_link_by_name(const std::string& name, LinkInfo& out, std::string& error);
    bool query_link(int ifindex, LinkInfo& out, std::string& error);
    // Every address of `family` on interface `ifindex`.
    bool query_addresses(int ifindex, int family, std::vector<IpAddress>& out, std::string& error);
    // The errno of the last failed query (ENODEV: no such interface), 0 when none was reported.
    int last_error() const { return last_error_; }

  private:
    RouteNetlink(mnl_socket* events, mnl_socket* queries) : events_(events), queries_(queries) {}
    // Sends `nlh` on the query socket and feeds every answer to `callback` until the kernel's ACK or
    // NLMSG_DONE.
    bool request(nlmsghdr* nlh, int (*callback)(const nlmsghdr*, void*), void* data, std::string& error);

    mnl_socket* events_;
    mnl_socket* queries_;
    std::uint32_t seq_ = 0;
    int last_error_ = 0;
    std::vector<char> buffer_;
};

}  // namespace mcast
