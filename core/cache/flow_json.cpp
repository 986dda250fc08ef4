// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/cache/flow_json.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cstring>

namespace ctsync::core {
namespace {

using nlohmann::json;
using sdk::Family;

const char* kTcpStates[] = {"NONE",       "SYN_SENT", "SYN_RECV",  "ESTABLISHED", "FIN_WAIT",
                            "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE",       "SYN_SENT2"};
const char* kSctpStates[] = {"NONE",          "CLOSED",        "COOKIE_WAIT",   "COOKIE_ECHOED",
                             "ESTABLISHED",   "SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT",
                             "HEARTBEAT_SENT"};

const char* protocol_name(std::uint8_t p) {
    switch (p) {
        case sdk::l4::kTcp:
            return "tcp";
        case sdk::l4::kUdp:
            return "udp";
        case sdk::l4::kUdplite:
            return "udplite";
        case sdk::l4::kSctp:
            return "sctp";
        case sdk::l4::kDccp:
            return "dccp";
        case sdk::l4::kIcmp:
            return "icmp";
        case sdk::l4::kIcmpv6:
            return "icmpv6";
        case sdk::l4::kGre:
            return "gre";
        default:
            return "unknown";
    }
}

std::string hex(const std::uint8_t* data, std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) {
        out += fmt::format("{:02x}", data[i]);
    }
    return out;
}

json tuple_json(const sdk::Tuple& t) {
    json j = {{"family", t.family == Family::kIpv6 ? "ipv6" : "ipv4"},
              {"protocol", t.protocol},
              {"src", address_to_string(t.src, t.family)},
              {"dst", address_to_string(t.dst, t.family)}};
    if (t.protocol == sdk::l4::kIcmp || t.protocol == sdk::l4::kIcmpv6) {
        j["icmp_type"] = t.icmp_type;
        j["icmp_code"] = t.icmp_code;
        j["icmp_id"] = t.src_port;
    } else {
        j["sport"] = t.src_port;
        j["dport"] = t.dst_port;
    }
    return j;
}

json nat_json(const sdk::NatBinding& n, Family family) {
    if (!n.present) {
        return nullptr;
    }
    return {{"address", address_to_string(n.address, family)}, {"port", n.port}};
}

json seq_json(const sdk::SeqAdjust& s) {
    if (!s.present) {
        return nullptr;
    }
    return {{"correction_pos", s.correction_pos},
            {"offset_before", s.offset_before},
            {"offset_after", s.offset_after}};
}

// A strict reader: every accessor records a problem with its path and returns a neutral value.
class Reader {
  public:
    Reader(const std::string& path, ConfigIssues& issues) : path_(path), issues_(issues) {}

    bool object(const json& j, const std::string& path) {
        if (!j.is_object()) {
            fail(path, fmt::format("expected object, found {}", j.type_name()));
            return false;
        }
        return true;
    }
    void only(const json& j, const std::string& path, std::initializer_list<const char*> keys) {
        for (const auto& [k, v] : j.items()) {
            bool known = false;
            for (const char* key : keys) {
                known = known || k == key;
            }
            if (!known) {
                fail(join_path(path, k), "unknown key");
            }
        }
    }
    template <class T>
    T integer(const json& j, const std::string& path, const char* key, T fallback, bool required = true) {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) {
            if (required) {
                fail(join_path(path, key), "missing required key");
            }
            return fallback;
        }
        if (!it->is_number_integer()) {
            fail(join_path(path, key), fmt::format("expected integer, found {}", it->type_name()));
            return fallback;
        }
        auto v = it->get<std::int64_t>();
        if (v < static_cast<std::int64_t>(std::numeric_limits<T>::min()) ||
            v > static_cast<std::int64_t>(std::numeric_limits<T>::max())) {
            fail(join_path(path, key), fmt::format("{} does not fit", v));
            return fallback;
        }
        return static_cast<T>(v);
    }
    std::string string(const json& j, const std::string& path, const char* key, bool required = true) {
        auto it = j.find(key);
        if (it == j.end() || it->is_null()) {
            if (required) {
                fail(join_path(path, key), "missing required key");
            }
            return {};
        }
        if (!it->is_string()) {
            fail(join_path(path, key), fmt::format("expected string, found {}", it->type_name()));
            return {};
        }
        return it->get<std::string>();
    }
    sdk::Address address(const std::string& text, Family family, const std::string& path) {
        sdk::Address a;
        int af = family == Family::kIpv6 ? AF_INET6 : AF_INET;
        if (inet_pton(af, text.c_str(), a.bytes.data()) != 1) {
            fail(path,
                 fmt::format("'{}' is not an {} address", text, family == Family::kIpv6 ? "IPv6" : "IPv4"));
        }
        return a;
    }
    sdk::Tuple tuple(const json& j, const std::string& path) {
        sdk::Tuple t;
        if (!object(j, path)) {
            return t;
        }
        only(j, path,
             {"family", "protocol", "src", "dst", "sport", "dport", "icmp_type", "icmp_code", "icmp_id"});
        std::string family = string(j, path, "family");
        if (family == "ipv4") {
            t.family = Family::kIpv4;
        } else if (family == "ipv6") {
            t.family = Family::kIpv6;
        } else if (!family.empty()) {
            fail(join_path(path, "family"), fmt::format("'{}' is not one of ipv4|ipv6", family));
        }
        t.protocol = integer<std::uint8_t>(j, path, "protocol", 0);
        t.src = address(string(j, path, "src"), t.family, join_path(path, "src"));
        t.dst = address(string(j, path, "dst"), t.family, join_path(path, "dst"));
        if (t.protocol == sdk::l4::kIcmp || t.protocol == sdk::l4::kIcmpv6) {
            t.icmp_type = integer<std::uint8_t>(j, path, "icmp_type", 0);
            t.icmp_code = integer<std::uint8_t>(j, path, "icmp_code", 0);
            t.src_port = integer<std::uint16_t>(j, path, "icmp_id", 0);
        } else {
            t.src_port = integer<std::uint16_t>(j, path, "sport", 0, false);
            t.dst_port = integer<std::uint16_t>(j, path, "dport", 0, false);
        }
        return t;
    }
    sdk::NatBinding nat(const json& j, const char* key, Family family, const std::string& path) {
        sdk::NatBinding n;
        auto it = j.find(key);
        std::string p = join_path(path, key);
        if (it == j.end() || it->is_null() || !object(*it, p)) {
            return n;
        }
        only(*it, p, {"address", "port"});
        n.present = true;
        n.address = address(string(*it, p, "address"), family, join_path(p, "address"));
        n.port = integer<std::uint16_t>(*it, p, "port", 0, false);
        return n;
    }
    sdk::SeqAdjust seq(const json& j, const char* key, const std::string& path) {
        sdk::SeqAdjust s;
        auto it = j.find(key);
        std::string p = join_path(path, key);
        if (it == j.end() || it->is_null() || !object(*it, p)) {
            return s;
        }
        only(*it, p, {"correction_pos", "offset_before", "offset_after"});
        s.present = true;
        s.correction_pos = integer<std::uint32_t>(*it, p, "correction_pos", 0);
        s.offset_before = integer<std::int32_t>(*it, p, "offset_before", 0);
        s.offset_after = integer<std::int32_t>(*it, p, "offset_after", 0);
        return s;
    }
    sdk::Zone zone(const json& j, const std::string& path) {
        sdk::Zone z;
        auto it = j.find("zone");
        std::string p = join_path(path, "zone");
        if (it == j.end() || it->is_null() || !object(*it, p)) {
            return z;
        }
        only(*it, p, {"id", "directions"});
        z.id = integer<std::uint16_t>(*it, p, "id", 0);
        std::string dir = string(*it, p, "directions", false);
        if (dir == "original") {
            z.directions = sdk::Zone::kDirOriginal;
        } else if (dir == "reply") {
            z.directions = sdk::Zone::kDirReply;
        } else if (!dir.empty() && dir != "both") {
            fail(join_path(p, "directions"), fmt::format("'{}' is not one of both|original|reply", dir));
        }
        return z;
    }
    void helper(const json& j, const std::string& path, sdk::HelperName& out) {
        std::string h = string(j, path, "helper", false);
        if (!sdk::set_helper_name(out, h)) {
            fail(join_path(path, "helper"), "helper names have at most 15 characters");
        }
    }
    void labels(const json& j, const std::string& path, sdk::Labels& out) {
        std::string text = string(j, path, "labels", false);
        if (text.empty()) {
            return;
        }
        if (text.size() != 32 || text.find_first_not_of("0123456789abcdef") != std::string::npos) {
            fail(join_path(path, "labels"), "expected 32 lower-case hex digits (128 label bits)");
            return;
        }
        for (std::size_t i = 0; i < 16; ++i) {
            out[i] = static_cast<std::uint8_t>(std::stoul(text.substr(i * 2, 2), nullptr, 16));
        }
    }
    void fail(const std::string& path, std::string message) { issues_.push_back({path, std::move(message)}); }

  private:
    std::string path_;
    ConfigIssues& issues_;
};

}  // namespace

std::string address_to_string(const sdk::Address& a, Family family) {
    char buffer[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == Family::kIpv6 ? AF_INET6 : AF_INET, a.bytes.data(), buffer, sizeof(buffer));
    return buffer;
}

json to_json(const sdk::FlowState& f) {
    const char* dirs = f.zone.directions == sdk::Zone::kDirBoth
                           ? "both"
                           : (f.zone.directions == sdk::Zone::kDirOriginal ? "original" : "reply");
    json j = {{"zone", {{"id", f.zone.id}, {"directions", dirs}}},
              {"original", tuple_json(f.original)},
              {"reply", tuple_json(f.reply)},
              {"status", f.status},
              {"mark", f.mark},
              {"timeout", f.timeout},
              {"labels", hex(f.labels.data(), f.labels.size())},
              {"helper", std::string(sdk::helper_name_view(f.helper))},
              {"snat", nat_json(f.snat, f.original.family)},
              {"dnat", nat_json(f.dnat, f.original.family)},
              {"seq_original", seq_json(f.seq_original)},
              {"seq_reply", seq_json(f.seq_reply)}};
    switch (f.original.protocol) {
        case sdk::l4::kTcp:
            j["tcp"] = {{"state", f.tcp.state},
                        {"wscale_original", f.tcp.wscale_original},
                        {"wscale_reply", f.tcp.wscale_reply},
                        {"flags_original", f.tcp.flags_original},
                        {"flags_reply", f.tcp.flags_reply}};
            break;
        case sdk::l4::kSctp:
            j["sctp"] = {{"state", f.sctp.state},
                         {"vtag_original", f.sctp.vtag_original},
                         {"vtag_reply", f.sctp.vtag_reply}};
            break;
        case sdk::l4::kDccp:
            j["dccp"] = {
                {"state", f.dccp.state}, {"role", f.dccp.role}, {"handshake_seq", f.dccp.handshake_seq}};
            break;
        default:
            break;
    }
    return j;
}

json to_json(const sdk::Expectation& e) {
    return {{"zone", {{"id", e.zone.id}, {"directions", "both"}}},
            {"master", tuple_json(e.master)},
            {"expected", tuple_json(e.expected)},
            {"mask", tuple_json(e.mask)},
            {"helper", std::string(sdk::helper_name_view(e.helper))},
            {"class", e.expect_class},
            {"flags", e.flags},
            {"timeout", e.timeout},
            {"nat", nat_json(e.nat, e.expected.family)},
            {"nat_direction", e.nat_direction},
            {"function", std::string(e.function.data(), strnlen(e.function.data(), e.function.size()))}};
}

std::optional<sdk::FlowState> flow_from_json(const json& j, const std::string& path, ConfigIssues& issues) {
    const std::size_t before = issues.size();
    Reader r(path, issues);
    sdk::FlowState f;
    if (!r.object(j, path)) {
        return std::nullopt;
    }
    r.only(j, path,
           {"zone", "original", "reply", "status", "mark", "timeout", "labels", "helper", "snat", "dnat",
            "seq_original", "seq_reply", "tcp", "sctp", "dccp"});
    f.zone = r.zone(j, path);
    f.original = r.tuple(j.value("original", json()), join_path(path, "original"));
    f.reply = r.tuple(j.value("reply", json()), join_path(path, "reply"));
    if (f.original.family != f.reply.family || f.original.protocol != f.reply.protocol) {
        r.fail(join_path(path, "reply"), "family and protocol must match the original tuple");
    }
    f.status = r.integer<std::uint32_t>(j, path, "status", 0, false);
    f.mark = r.integer<std::uint32_t>(j, path, "mark", 0, false);
    f.timeout = r.integer<std::uint32_t>(j, path, "timeout", 0, false);
    r.labels(j, path, f.labels);
    r.helper(j, path, f.helper);
    f.snat = r.nat(j, "snat", f.original.family, path);
    f.dnat = r.nat(j, "dnat", f.original.family, path);
    f.seq_original = r.seq(j, "seq_original", path);
    f.seq_reply = r.seq(j, "seq_reply", path);
    if (auto it = j.find("tcp"); it != j.end() && !it->is_null() && r.object(*it, join_path(path, "tcp"))) {
        const std::string p = join_path(path, "tcp");
        r.only(*it, p, {"state", "wscale_original", "wscale_reply", "flags_original", "flags_reply"});
        f.tcp.state = r.integer<std::uint8_t>(*it, p, "state", 0);
        if (f.tcp.state >= std::size(kTcpStates)) {
            r.fail(join_path(p, "state"), fmt::format("{} is not a TCP conntrack state", f.tcp.state));
        }
        f.tcp.wscale_original = r.integer<std::uint8_t>(*it, p, "wscale_original", 0, false);
        f.tcp.wscale_reply = r.integer<std::uint8_t>(*it, p, "wscale_reply", 0, false);
        f.tcp.flags_original = r.integer<std::uint8_t>(*it, p, "flags_original", 0, false);
        f.tcp.flags_reply = r.integer<std::uint8_t>(*it, p, "flags_reply", 0, false);
    }
    if (auto it = j.find("sctp"); it != j.end() && !it->is_null() && r.object(*it, join_path(path, "sctp"))) {
        const std::string p = join_path(path, "sctp");
        r.only(*it, p, {"state", "vtag_original", "vtag_reply"});
        f.sctp.state = r.integer<std::uint8_t>(*it, p, "state", 0);
        f.sctp.vtag_original = r.integer<std::uint32_t>(*it, p, "vtag_original", 0, false);
        f.sctp.vtag_reply = r.integer<std::uint32_t>(*it, p, "vtag_reply", 0, false);
    }
    if (auto it = j.find("dccp"); it != j.end() && !it->is_null() && r.object(*it, join_path(path, "dccp"))) {
        const std::string p = join_path(path, "dccp");
        r.only(*it, p, {"state", "role", "handshake_seq"});
        f.dccp.state = r.integer<std::uint8_t>(*it, p, "state", 0);
        f.dccp.role = r.integer<std::uint8_t>(*it, p, "role", 0, false);
        auto seq = it->find("handshake_seq");
        if (seq != it->end() && seq->is_number_unsigned()) {
            f.dccp.handshake_seq = seq->get<std::uint64_t>();
        }
    }
    if (issues.size() != before) {
        return std::nullopt;
    }
    return f;
}

std::optional<sdk::Expectation> expectation_from_json(const json& j, const std::string& path,
                                                      ConfigIssues& issues) {
    const std::size_t before = issues.size();
    Reader r(path, issues);
    sdk::Expectation e;
    if (!r.object(j, path)) {
        return std::nullopt;
    }
    r.only(j, path,
           {"zone", "master", "expected", "mask", "helper", "class", "flags", "timeout", "nat",
            "nat_direction", "function"});
    e.zone = r.zone(j, path);
    e.master = r.tuple(j.value("master", json()), join_path(path, "master"));
    e.expected = r.tuple(j.value("expected", json()), join_path(path, "expected"));
    e.mask = r.tuple(j.value("mask", json()), join_path(path, "mask"));
    r.helper(j, path, e.helper);
    e.expect_class = r.integer<std::uint32_t>(j, path, "class", 0, false);
    e.flags = r.integer<std::uint32_t>(j, path, "flags", 0, false);
    e.timeout = r.integer<std::uint32_t>(j, path, "timeout", 0, false);
    e.nat = r.nat(j, "nat", e.expected.family, path);
    e.nat_direction = r.integer<std::uint8_t>(j, path, "nat_direction", 0, false);
    std::string function = r.string(j, path, "function", false);
    if (function.size() >= e.function.size()) {
        r.fail(join_path(path, "function"), "expectation function names have at most 31 characters");
    } else {
        std::copy(function.begin(), function.end(), e.function.begin());
    }
    if (issues.size() != before) {
        return std::nullopt;
    }
    return e;
}

namespace {

std::string tuple_line(const sdk::Tuple& t) {
    std::string s =
        fmt::format("src={} dst={}", address_to_string(t.src, t.family), address_to_string(t.dst, t.family));
    if (t.protocol == sdk::l4::kIcmp || t.protocol == sdk::l4::kIcmpv6) {
        s += fmt::format(" type={} code={} id={}", t.icmp_type, t.icmp_code, t.src_port);
    } else if (t.src_port != 0 || t.dst_port != 0) {
        s += fmt::format(" sport={} dport={}", t.src_port, t.dst_port);
    }
    return s;
}

}  // namespace

std::string to_line(const sdk::FlowState& f) {
    std::string state;
    if (f.original.protocol == sdk::l4::kTcp && f.tcp.state < std::size(kTcpStates)) {
        state = std::string(" ") + kTcpStates[f.tcp.state];
    } else if (f.original.protocol == sdk::l4::kSctp && f.sctp.state < std::size(kSctpStates)) {
        state = std::string(" ") + kSctpStates[f.sctp.state];
    }
    std::string line =
        fmt::format("{:<7} {} {}{} {} {}", protocol_name(f.original.protocol), f.original.protocol, f.timeout,
                    state, tuple_line(f.original), tuple_line(f.reply));
    constexpr std::uint32_t kAssured = 1u << 2;
    constexpr std::uint32_t kSeenReply = 1u << 1;
    if (!(f.status & kSeenReply)) {
        line += " [UNREPLIED]";
    }
    if (f.status & kAssured) {
        line += " [ASSURED]";
    }
    line += fmt::format(" mark={} zone={}", f.mark, f.zone.id);
    if (f.helper[0] != '\0') {
        line += fmt::format(" helper={}", sdk::helper_name_view(f.helper));
    }
    return line;
}

std::string to_line(const sdk::Expectation& e) {
    return fmt::format("{} proto={} {} master {} helper={} zone={}", e.timeout, e.expected.protocol,
                       tuple_line(e.expected), tuple_line(e.master), sdk::helper_name_view(e.helper),
                       e.zone.id);
}

}  // namespace ctsync::core
