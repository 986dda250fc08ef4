// SPDX-License-Identifier: GPL-2.0-or-later
#include "rtnetlink.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <libmnl/libmnl.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

namespace mcast {
namespace {

// IFF_LOWER_UP (carrier) is in <linux/if.h>, which clashes with <net/if.h> on older C libraries.
constexpr unsigned kIffLowerUp = 1u << 16;
constexpr std::size_t kQueryBufferBytes = 64 * 1024;  // one RTM_NEWLINK with all its attributes fits
constexpr int kQueryTimeoutSeconds = 2;

struct LinkQuery {
    LinkInfo* out;
    bool found = false;
};

int link_answer(const nlmsghdr* nlh, void* data) {
    auto* query = static_cast<LinkQuery*>(data);
    if (nlh->nlmsg_type == RTM_NEWLINK && parse_link(nlh, *query->out)) {
        query->found = true;
    }
    return MNL_CB_OK;
}

struct AddressQuery {
    int ifindex;
    int family;
    std::vector<IpAddress>* out;
};

int address_answer(const nlmsghdr* nlh, void* data) {
    auto* query = static_cast<AddressQuery*>(data);
    int ifindex = 0;
    IpAddress address;
    if (nlh->nlmsg_type == RTM_NEWADDR && parse_address(nlh, ifindex, address) && ifindex == query->ifindex &&
        address.family == query->family) {
        query->out->push_back(address);
    }
    return MNL_CB_OK;
}

int link_attribute(const nlattr* attr, void* data) {
    auto* link = static_cast<LinkInfo*>(data);
    switch (mnl_attr_get_type(attr)) {
        case IFLA_IFNAME:
            if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) >= 0) {
                try {  // called from C: nothing may propagate
                    link->name = mnl_attr_get_str(attr);
                } catch (...) {
                    return MNL_CB_ERROR;
                }
            }
            break;
        case IFLA_MTU:
            if (mnl_attr_validate(attr, MNL_TYPE_U32) >= 0) {
                link->mtu = mnl_attr_get_u32(attr);
            }
            break;
        default:
            break;
    }
    return MNL_CB_OK;
}

struct AddressAttributes {
    std::size_t length;  // of an address of the message's family
    const nlattr* local = nullptr;
    const nlattr* address = nullptr;
};

int address_attribute(const nlattr* attr, void* data) {
    auto* found = static_cast<AddressAttributes*>(data);
    if (mnl_attr_get_payload_len(attr) == found->length) {
        if (mnl_attr_get_type(attr) == IFA_LOCAL) {
            found->local = attr;
        } else if (mnl_attr_get_type(attr) == IFA_ADDRESS) {
            found->address = attr;
        }
    }
    return MNL_CB_OK;
}

mnl_socket* open_socket(int flags, unsigned groups, std::string& error) {
    mnl_socket* socket = mnl_socket_open2(NETLINK_ROUTE, flags | SOCK_CLOEXEC);
    if (socket == nullptr) {
        error = fmt::format("cannot open an rtnetlink socket: {}", std::strerror(errno));
        return nullptr;
    }
    if (mnl_socket_bind(socket, groups, MNL_SOCKET_AUTOPID) < 0) {
        error =
            fmt::format("cannot bind the rtnetlink socket (groups {:#x}): {}", groups, std::strerror(errno));
        mnl_socket_close(socket);
        return nullptr;
    }
    return socket;
}

}  // namespace

std::string IpAddress::to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    if (family != AF_INET && family != AF_INET6) {
        return "unset";
    }
    if (inet_ntop(family, bytes.data(), text, sizeof(text)) == nullptr) {
        return "invalid";
    }
    return text;
}

bool link_is_up(const LinkInfo& link) noexcept {
    return (link.flags & IFF_UP) != 0 && (link.flags & IFF_RUNNING) != 0;
}

std::string down_reason(const LinkInfo& link, bool was_up) {
    if ((link.flags & IFF_UP) == 0) {
        return fmt::format("{} is administratively down", link.name);
    }
    if ((link.flags & kIffLowerUp) == 0) {
        return (was_up ? "carrier lost on " : "no carrier on ") + link.name;
    }
    return fmt::format("{} is not running (operationally down or dormant)", link.name);
}

bool parse_link(const nlmsghdr* nlh, LinkInfo& out) noexcept {
    if ((nlh->nlmsg_type != RTM_NEWLINK && nlh->nlmsg_type != RTM_DELLINK) ||
        mnl_nlmsg_get_payload_len(nlh) < sizeof(ifinfomsg)) {
        return false;
    }
    const auto* ifi = static_cast<const ifinfomsg*>(mnl_nlmsg_get_payload(nlh));
    LinkInfo link;
    link.family = ifi->ifi_family;
    link.ifindex = ifi->ifi_index;
    link.flags = ifi->ifi_flags;
    if (mnl_attr_parse(nlh, sizeof(ifinfomsg), link_attribute, &link) == MNL_CB_ERROR) {
        return false;
    }
    out = std::move(link);
    return true;
}

bool parse_address(const nlmsghdr* nlh, int& ifindex, IpAddress& out) noexcept {
    if ((nlh->nlmsg_type != RTM_NEWADDR && nlh->nlmsg_type != RTM_DELADDR) ||
        mnl_nlmsg_get_payload_len(nlh) < sizeof(ifaddrmsg)) {
        return false;
    }
    const auto* ifa = static_cast<const ifaddrmsg*>(mnl_nlmsg_get_payload(nlh));
    const std::size_t length = ifa->ifa_family == AF_INET ? 4 : ifa->ifa_family == AF_INET6 ? 16 : 0;
    if (length == 0) {
        return false;
    }
    AddressAttributes found{length};
    mnl_attr_parse(nlh, sizeof(ifaddrmsg), address_attribute, &found);
    const nlattr* chosen = found.local != nullptr ? found.local : found.address;
    if (chosen == nullptr) {
        return false;
    }
    ifindex = static_cast<int>(ifa->ifa_index);
    out = IpAddress{};
    out.family = ifa->ifa_family;
    std::memcpy(out.bytes.data(), mnl_attr_get_payload(chosen), length);
    return true;
}

std::unique_ptr<RouteNetlink> RouteNetlink::open(int family, std::size_t event_buffer_bytes,
                                                 std::string& error) {
    const unsigned groups = RTMGRP_LINK | (family == AF_INET6 ? RTMGRP_IPV6_IFADDR : RTMGRP_IPV4_IFADDR);
    mnl_socket* events = open_socket(SOCK_NONBLOCK, groups, error);
    if (events == nullptr) {
        return nullptr;
    }
    // A busy host (many interfaces flapping) can overrun the default buffer; the owner then re-reads the
    // state, but a larger buffer makes that rare.
    int bytes = static_cast<int>(event_buffer_bytes);
    if (setsockopt(mnl_socket_get_fd(events), SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(bytes)) != 0) {
        error = fmt::format("setsockopt(SO_RCVBUF, {}) on the rtnetlink event socket: {}", bytes,
                            std::strerror(errno));
        mnl_socket_close(events);
        return nullptr;
    }
    mnl_socket* queries = open_socket(0, 0, error);
    if (queries == nullptr) {
        mnl_socket_close(events);
        return nullptr;
    }
    timeval timeout{kQueryTimeoutSeconds, 0};
    if (setsockopt(mnl_socket_get_fd(queries), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) != 0) {
        error =
            fmt::format("setsockopt(SO_RCVTIMEO) on the rtnetlink query socket: {}", std::strerror(errno));
        mnl_socket_close(events);
        mnl_socket_close(queries);
        return nullptr;
    }
    std::unique_ptr<RouteNetlink> route(new RouteNetlink(events, queries));
    route->buffer_.resize(kQueryBufferBytes);
    return route;
}

RouteNetlink::~RouteNetlink() {
    mnl_socket_close(events_);
    mnl_socket_close(queries_);
}

int RouteNetlink::events_fd() const {
    return mnl_socket_get_fd(events_);
}

bool RouteNetlink::request(nlmsghdr* nlh, int (*callback)(const nlmsghdr*, void*), void* data,
                           std::string& error) {
    // An answer to an earlier request that timed out may still be queued: drop it.
    last_error_ = 0;
    const int fd = mnl_socket_get_fd(queries_);
    while (::recv(fd, buffer_.data(), buffer_.size(), MSG_DONTWAIT) > 0) {
    }
    nlh->nlmsg_seq = ++seq_;
    if (mnl_socket_sendto(queries_, nlh, nlh->nlmsg_len) < 0) {
        last_error_ = errno;
        error = fmt::format("rtnetlink request failed: {}", std::strerror(errno));
        return false;
    }
    const unsigned portid = mnl_socket_get_portid(queries_);
    while (true) {
        ssize_t n = mnl_socket_recvfrom(queries_, buffer_.data(), buffer_.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            last_error_ = errno;
            error = errno == EAGAIN || errno == EWOULDBLOCK
                        ? fmt::format("no rtnetlink answer within {} s", kQueryTimeoutSeconds)
                        : fmt::format("rtnetlink read failed: {}", std::strerror(errno));
            return false;
        }
        int result = mnl_cb_run(buffer_.data(), static_cast<std::size_t>(n), seq_, portid, callback, data);
        if (result == MNL_CB_ERROR) {
            last_error_ = errno;
            error = std::strerror(errno);
            return false;
        }
        if (result == MNL_CB_STOP) {
            return true;
        }
    }
}

bool RouteNetlink::query_link_by_name(const std::string& name, LinkInfo& out, std::string& error) {
    char message[512];
    nlmsghdr* nlh = mnl_nlmsg_put_header(message);
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    mnl_attr_put_strz(nlh, IFLA_IFNAME, name.c_str());
    LinkQuery query{&out};
    if (!request(nlh, link_answer, &query, error)) {
        return false;
    }
    if (!query.found) {
        error = "no answer describes the interface";
        return false;
    }
    return true;
}

bool RouteNetlink::query_link(int ifindex, LinkInfo& out, std::string& error) {
    char message[512];
    nlmsghdr* nlh = mnl_nlmsg_put_header(message);
    nlh->nlmsg_type = RTM_GETLINK;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
    auto* ifi = static_cast<ifinfomsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifinfomsg)));
    ifi->ifi_family = AF_UNSPEC;
    ifi->ifi_index = ifindex;
    LinkQuery query{&out};
    if (!request(nlh, link_answer, &query, error)) {
        return false;
    }
    if (!query.found) {
        error = "no answer describes the interface";
        return false;
    }
    return true;
}

bool RouteNetlink::query_addresses(int ifindex, int family, std::vector<IpAddress>& out, std::string& error) {
    char message[512];
    nlmsghdr* nlh = mnl_nlmsg_put_header(message);
    nlh->nlmsg_type = RTM_GETADDR;
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;  // a dump ends with NLMSG_DONE, no ACK
    auto* ifa = static_cast<ifaddrmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(ifaddrmsg)));
    ifa->ifa_family = static_cast<std::uint8_t>(family);
    out.clear();
    AddressQuery query{ifindex, family, &out};
    return request(nlh, address_answer, &query, error);
}

}  // namespace mcast
