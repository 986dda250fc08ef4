// SPDX-License-Identifier: GPL-2.0-or-later
// filter-bpf's property, and its random input: flows and expressions that draw on the same addresses, ports,
// states and marks, so that both verdicts occur often.
#pragma once

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <ctsync/sdk/flow.hpp>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "bpf.hpp"
#include "expr.hpp"

namespace filter_bpf::test {

namespace sdk = ctsync::sdk;
namespace l4 = sdk::l4;

class Random {
  public:
    explicit Random(std::uint64_t seed) : rng_(seed) {}
    std::size_t below(std::size_t n) { return std::uniform_int_distribution<std::size_t>(0, n - 1)(rng_); }
    bool chance(unsigned percent) { return below(100) < percent; }
    template <class T>
    const T& pick(const std::vector<T>& v) {
        return v[below(v.size())];
    }

  private:
    std::mt19937_64 rng_;
};

inline const std::vector<std::string> kV4 = {"192.0.2.1",     "192.0.2.10",  "192.0.2.200",  "198.51.100.1",
                                             "198.51.100.77", "203.0.113.5", "203.0.113.250"};
inline const std::vector<std::string> kV6 = {"fd00::1", "fd00::10", "fd00:1::5", "fd00:0:0:1::1",
                                             "fd00:ffff::9"};
inline const std::vector<std::uint16_t> kPorts = {0, 22, 53, 80, 443, 1000, 1005, 40000, 65535};

inline sdk::Address address_of(const std::string& text) {
    sdk::Address a;
    if (inet_pton(AF_INET, text.c_str(), a.bytes.data()) != 1) {
        inet_pton(AF_INET6, text.c_str(), a.bytes.data());
    }
    return a;
}

inline sdk::FlowState random_flow(Random& r) {
    sdk::FlowState f;
    const bool six = r.chance(35);
    f.original.family = six ? sdk::Family::kIpv6 : sdk::Family::kIpv4;
    const std::vector<std::uint8_t> protos = {l4::kTcp,     l4::kTcp,  l4::kUdp,
                                              l4::kSctp,    l4::kDccp, l4::kGre,
                                              l4::kUdplite, 50,        six ? l4::kIcmpv6 : l4::kIcmp};
    f.original.protocol = r.pick(protos);
    const auto& pool = six ? kV6 : kV4;
    f.original.src = address_of(r.pick(pool));
    f.original.dst = address_of(r.pick(pool));
    f.original.src_port = r.chance(70) ? r.pick(kPorts) : static_cast<std::uint16_t>(r.below(65536));
    f.original.dst_port = r.pick(kPorts);
    if (f.original.protocol == l4::kIcmp || f.original.protocol == l4::kIcmpv6) {
        f.original.dst_port = 0;
        f.original.icmp_type = f.original.protocol == l4::kIcmp ? 8 : 128;
    } else if (!has_ports(f.original.protocol)) {
        f.original.src_port = f.original.dst_port = 0;
    }
    f.reply = f.original;
    std::swap(f.reply.src, f.reply.dst);
    std::swap(f.reply.src_port, f.reply.dst_port);
    if (f.original.protocol == l4::kIcmp || f.original.protocol == l4::kIcmpv6) {
        f.reply.src_port = f.original.src_port;
        f.reply.dst_port = 0;
        f.reply.icmp_type = f.original.protocol == l4::kIcmp ? 0 : 129;
    }
    f.status = static_cast<std::uint32_t>(r.below(1u << 16)) & ~((1u << 4) | (1u << 5));
    if (r.chance(40)) {  // SNAT: the reply goes back to the translated source
        f.reply.dst = address_of(r.pick(pool));
        if (has_ports(f.original.protocol) && r.chance(50)) {
            f.reply.dst_port = r.pick(kPorts);
        }
        f.status |= 1u << 4;
    }
    if (r.chance(25)) {  // DNAT: the reply comes from the translated destination
        f.reply.src = address_of(r.pick(pool));
        if (has_ports(f.original.protocol) && r.chance(50)) {
            f.reply.src_port = r.pick(kPorts);
        }
        f.status |= 1u << 5;
    }
    if (r.chance(30)) {
        f.zone.id = static_cast<std::uint16_t>(r.below(4));
        f.zone.directions = r.chance(70) ? sdk::Zone::kDirBoth
                                         : (r.chance(50) ? sdk::Zone::kDirOriginal : sdk::Zone::kDirReply);
    }
    f.mark = r.chance(50)
                 ? 0
                 : static_cast<std::uint32_t>(r.pick(std::vector<std::uint32_t>{1, 2, 0x10, 0x12, 0xff00}));
    f.tcp.state = f.original.protocol == l4::kTcp ? static_cast<std::uint8_t>(r.below(10)) : 0;
    f.sctp.state = f.original.protocol == l4::kSctp ? static_cast<std::uint8_t>(r.below(9)) : 0;
    f.dccp.state = f.original.protocol == l4::kDccp ? static_cast<std::uint8_t>(r.below(8)) : 0;
    if (r.chance(15)) {
        sdk::set_helper_name(f.helper, r.chance(50) ? "ftp" : "sip");
    }
    f.timeout = 120;
    f.kernel_id = static_cast<std::uint32_t>(r.below(1u << 30));
    return f;
}

inline std::string random_atom(Random& r) {
    auto where = [&] {
        std::string out;
        if (r.chance(50)) {
            out += r.chance(50) ? "orig " : "reply ";
        }
        if (r.chance(60)) {
            out += r.chance(50) ? "src " : "dst ";
        }
        return out;
    };
    auto prefix_of = [&](const std::string& addr, bool six) {
        sdk::Address a = address_of(addr);
        const unsigned bits = six ? 128 : 32;
        const unsigned p = static_cast<unsigned>(r.below(bits + 1));
        for (unsigned b = p; b < bits; ++b) {
            a.bytes[b / 8] = static_cast<std::uint8_t>(a.bytes[b / 8] & ~(0x80u >> (b % 8)));
        }
        char text[INET6_ADDRSTRLEN];
        inet_ntop(six ? AF_INET6 : AF_INET, a.bytes.data(), text, sizeof(text));
        return std::string(text) + "/" + std::to_string(p);
    };
    switch (r.below(14)) {
        case 0:
            return r.pick(std::vector<std::string>{"ip", "ip6", "l3 ipv4", "l3 ipv6"});
        case 1:
            return r.pick(std::vector<std::string>{"tcp", "udp", "sctp", "icmp", "icmpv6", "gre", "udplite",
                                                   "dccp", "proto 50", "proto 6", "proto 99"});
        case 2:
        case 3: {
            const bool six = r.chance(35);
            return where() + "host " + r.pick(six ? kV6 : kV4);
        }
        case 4:
        case 5: {
            const bool six = r.chance(35);
            return where() + "net " + prefix_of(r.pick(six ? kV6 : kV4), six);
        }
        case 6:
        case 7: {
            const std::uint16_t a = r.pick(kPorts);
            if (r.chance(50)) {
                return where() + "port " + std::to_string(a);
            }
            const std::uint16_t b = r.pick(kPorts);
            return where() + "port " + std::to_string(std::min(a, b)) + "-" + std::to_string(std::max(a, b));
        }
        case 8:
            return "zone " + std::to_string(r.below(4));
        case 9:
            return r.pick(std::vector<std::string>{"nat", "snat", "dnat"});
        case 10:
            return "state " + r.pick(std::vector<std::string>{"established", "syn_sent", "time_wait", "close",
                                                              "cookie_echoed", "open", "none"});
        case 11:
            return "status " + r.pick(std::vector<std::string>{"assured", "seen-reply", "confirmed", "snat",
                                                               "expected", "dying"});
        case 12:
            return r.pick(std::vector<std::string>{"mark 0x12", "mark 0", "mark 0x10/0xf0", "mark 2"});
        default:
            return r.pick(std::vector<std::string>{"helper ftp", "helper any", "helper sip"});
    }
}

inline std::string random_expression(Random& r, int depth) {
    if (depth == 0 || r.chance(30)) {
        return random_atom(r);
    }
    switch (r.below(4)) {
        case 0:
            return "not " + random_expression(r, depth - 1);
        case 1:
            return "(" + random_expression(r, depth - 1) + ")";
        case 2: {
            std::string out = random_expression(r, depth - 1);
            for (std::size_t i = 0, n = 1 + r.below(3); i < n; ++i) {
                out += (r.chance(50) ? " and " : " && ") + random_expression(r, depth - 1);
            }
            return "(" + out + ")";
        }
        default: {
            std::string out = random_expression(r, depth - 1);
            for (std::size_t i = 0, n = 1 + r.below(3); i < n; ++i) {
                out += (r.chance(50) ? " or " : " || ") + random_expression(r, depth - 1);
            }
            return "(" + out + ")";
        }
    }
}

// How often each verdict occurred, to show the input is not degenerate.
struct Tally {
    std::size_t verdicts = 0;
    std::size_t dropped_in_kernel = 0;
    std::size_t accepted = 0;
};

// The property for one expression and one flow's event message: the program accepts exactly when the
// three-valued (kernel) view of the expression is not false; it never drops what the process accepts; and
// when the kernel decides every atom, its verdict is the process's.
inline ::testing::AssertionResult verdicts_agree(const Node& root, const Program& program,
                                                 std::span<const std::uint8_t> message,
                                                 const sdk::FlowState& flow, Tally& tally) {
    const bool kernel_accepts = run(program, message) != kDrop;
    const Tri view = evaluate_kernel_view(root, flow);
    const bool process = evaluate(root, flow);
    ++tally.verdicts;
    tally.dropped_in_kernel += !kernel_accepts;
    tally.accepted += process;
    const char* verdict = kernel_accepts ? "accepts" : "drops";
    if (kernel_accepts != (view != Tri::kFalse)) {
        return ::testing::AssertionFailure() << "the program " << verdict << " but the kernel view is "
                                             << (view == Tri::kFalse ? "false" : "not false") << "\n"
                                             << disassemble(program);
    }
    if (process && !kernel_accepts) {
        return ::testing::AssertionFailure() << "the program drops what the process accepts";
    }
    if (kernel_exact(root) && kernel_accepts != process) {
        return ::testing::AssertionFailure()
               << "every atom is decided in the kernel, yet the program " << verdict << " and the process "
               << (process ? "accepts" : "drops");
    }
    return ::testing::AssertionSuccess();
}

}  // namespace filter_bpf::test
