// SPDX-License-Identifier: GPL-2.0-or-later
#include "conntrackd_filter.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <netdb.h>

#include <algorithm>
#include <vector>

namespace filter_bpf {
namespace {

struct Word {
    std::string text;
    std::size_t line;
};

// The words of the file, comments left out. A word may hold only printable ASCII (conntrackd's own lexer
// takes nothing else): any other byte sets `error` (with its line) and ends the list.
std::vector<Word> words(std::string_view conf, std::string& error) {
    std::vector<Word> out;
    std::size_t line = 1;
    std::size_t i = 0;
    while (i < conf.size()) {
        const char c = conf[i];
        if (c == '\n') {
            ++line;
            ++i;
        } else if (c == '#') {
            while (i < conf.size() && conf[i] != '\n') {
                ++i;
            }
        } else if (c == ' ' || c == '\t' || c == '\r') {
            ++i;
        } else if (c == '{' || c == '}') {
            out.push_back({std::string(1, c), line});
            ++i;
        } else {
            std::size_t j = i;
            while (j < conf.size() && conf[j] != ' ' && conf[j] != '\t' && conf[j] != '\n' &&
                   conf[j] != '\r' && conf[j] != '{' && conf[j] != '}' && conf[j] != '#') {
                const auto byte = static_cast<unsigned char>(conf[j]);
                if (byte < 0x20 || byte >= 0x7f) {
                    error = fmt::format(
                        "line {}: unexpected byte 0x{:02x} (only printable ASCII outside comments)", line,
                        byte);
                    return {};
                }
                ++j;
            }
            out.push_back({std::string(conf.substr(i, j - i)), line});
            i = j;
        }
    }
    return out;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](char c) { return static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c); });
    return s;
}

bool protocol_atom(const std::string& name, std::string& out) {
    const std::string n = lower(name);
    static const char* const kKnown[] = {"tcp", "udp", "sctp", "dccp", "icmp", "gre", "udplite"};
    for (const char* k : kKnown) {
        if (n == k) {
            out = std::string("proto ") + k;
            return true;
        }
    }
    if (n == "ipv6-icmp" || n == "icmpv6") {
        out = "proto icmpv6";
        return true;
    }
    // conntrackd resolves other names with getprotobyname(3).
    if (const protoent* p = getprotobyname(name.c_str())) {
        out = fmt::format("proto {}", p->p_proto);
        return true;
    }
    return false;
}

bool state_atom(const std::string& name, std::string& out) {
    static const std::pair<const char*, const char*> kStates[] = {
        {"syn_sent", "syn_sent"},   {"syn_recv", "syn_recv"},     {"established", "established"},
        {"fin_wait", "fin_wait"},   {"close_wait", "close_wait"}, {"last_ack", "last_ack"},
        {"time_wait", "time_wait"}, {"closed", "close"},          {"close", "close"},
        {"listen", "syn_sent2"},
    };
    const std::string n = lower(name);
    for (const auto& [from, to] : kStates) {
        if (n == from) {
            out = std::string("state ") + to;
            return true;
        }
    }
    return false;
}

bool address_atom(const std::string& kind, const std::string& value, std::string& out, std::string& why) {
    const bool v6 = lower(kind) == "ipv6_address";
    if (!v6 && lower(kind) != "ipv4_address") {
        why = fmt::format("expected IPv4_address or IPv6_address, found '{}'", kind);
        return false;
    }
    std::string addr = value;
    std::string prefix;
    if (const auto slash = addr.find('/'); slash != std::string::npos) {
        prefix = addr.substr(slash + 1);
        addr.resize(slash);
    }
    unsigned char buf[16];
    if (inet_pton(v6 ? AF_INET6 : AF_INET, addr.c_str(), buf) != 1) {
        why = fmt::format("'{}' is not an {} address", value, v6 ? "IPv6" : "IPv4");
        return false;
    }
    if (value.find('/') == std::string::npos) {
        out = fmt::format("(orig src host {} or reply src host {})", addr, addr);
        return true;
    }
    // conntrackd masks the address with the prefix: so does the translation.
    const unsigned bits = v6 ? 128 : 32;
    unsigned p = bits + 1;
    if (!prefix.empty() && prefix.size() <= 3 &&
        std::all_of(prefix.begin(), prefix.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        p = static_cast<unsigned>(std::stoul(prefix));
    }
    if (p > bits) {
        why = fmt::format("'{}' has no valid prefix length", value);
        return false;
    }
    for (unsigned b = p; b < bits; ++b) {
        buf[b / 8] = static_cast<unsigned char>(buf[b / 8] & ~(0x80u >> (b % 8)));
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(v6 ? AF_INET6 : AF_INET, buf, text, sizeof(text));
    out = fmt::format("(orig src net {}/{} or reply src net {}/{})", text, p, text, p);
    return true;
}

}  // namespace

bool conntrackd_filter_expression(std::string_view conf, std::string& expression, std::string& error) {
    error.clear();
    const std::vector<Word> w = words(conf, error);
    if (!error.empty()) {
        return false;
    }
    std::size_t i = 0;
    // The section: Filter [From Userspace|Kernelspace] { ... }
    while (i < w.size() && lower(w[i].text) != "filter") {
        ++i;
    }
    if (i == w.size()) {
        error = "no Filter section: without one conntrackd replicates every flow (no filter-bpf needed)";
        return false;
    }
    const std::size_t filter_line = w[i].line;
    ++i;
    if (i < w.size() && lower(w[i].text) == "from") {
        if (i + 1 >= w.size() ||
            (lower(w[i + 1].text) != "userspace" && lower(w[i + 1].text) != "kernelspace")) {
            error = fmt::format("line {}: expected Userspace or Kernelspace after 'Filter From'", w[i].line);
            return false;
        }
        i += 2;
    }
    if (i >= w.size() || w[i].text != "{") {
        error = fmt::format("line {}: expected '{{' after Filter", filter_line);
        return false;
    }
    ++i;
    std::vector<std::string> parts;
    std::vector<std::string> seen;  // conntrackd merges repeated blocks of a kind; say so rather than guess
    while (i < w.size() && w[i].text != "}") {
        const Word& section = w[i];
        const std::string kind = lower(section.text);
        if (kind != "protocol" && kind != "address" && kind != "state") {
            error =
                fmt::format("line {}: expected Protocol, Address or State in the Filter section, found '{}'",
                            section.line, section.text);
            return false;
        }
        if (std::find(seen.begin(), seen.end(), kind) != seen.end()) {
            error = fmt::format(
                "line {}: a second {} block: conntrackd merges them (the last Accept or Ignore "
                "wins for all); write one",
                section.line, section.text);
            return false;
        }
        seen.push_back(kind);
        if (i + 2 >= w.size() || (lower(w[i + 1].text) != "accept" && lower(w[i + 1].text) != "ignore") ||
            w[i + 2].text != "{") {
            error = fmt::format("line {}: expected '{} Accept {{' or '{} Ignore {{'", section.line,
                                section.text, section.text);
            return false;
        }
        const bool accept = lower(w[i + 1].text) == "accept";
        i += 3;
        std::vector<std::string> atoms;
        while (i < w.size() && w[i].text != "}") {
            std::string atom;
            if (kind == "protocol") {
                if (!protocol_atom(w[i].text, atom)) {
                    error = fmt::format("line {}: unknown protocol '{}'", w[i].line, w[i].text);
                    return false;
                }
                ++i;
            } else if (kind == "address") {
                std::string why;
                if (i + 1 >= w.size() || !address_atom(w[i].text, w[i + 1].text, atom, why)) {
                    error = fmt::format("line {}: {}", w[i].line,
                                        why.empty() ? "an address entry is cut short" : why);
                    return false;
                }
                i += 2;
            } else {
                if (lower(w[i].text) == "for") {
                    // "for TCP": conntrackd's states are TCP's only.
                    if (i + 1 >= w.size() || lower(w[i + 1].text) != "tcp") {
                        error = fmt::format("line {}: conntrackd filters states of TCP only ('for TCP')",
                                            w[i].line);
                        return false;
                    }
                    i += 2;
                    continue;
                }
                if (!state_atom(w[i].text, atom)) {
                    error = fmt::format("line {}: unknown TCP state '{}'", w[i].line, w[i].text);
                    return false;
                }
                ++i;
            }
            if (std::find(atoms.begin(), atoms.end(), atom) == atoms.end()) {
                atoms.push_back(atom);
            }
        }
        if (i == w.size()) {
            error = fmt::format("line {}: the {} block is not closed", section.line, section.text);
            return false;
        }
        ++i;  // '}'
        if (atoms.empty()) {
            error = fmt::format("line {}: the {} block is empty", section.line, section.text);
            return false;
        }
        std::string any;
        for (const auto& a : atoms) {
            any += any.empty() ? "" : " or ";
            any += a;
        }
        if (atoms.size() > 1) {
            any = "(" + any + ")";
        }
        if (kind == "state") {
            // Only TCP flows are judged by their state.
            parts.push_back(accept ? fmt::format("(not tcp or {})", any)
                                   : fmt::format("not (tcp and {})", any));
        } else {
            parts.push_back(accept ? any : "not " + any);
        }
    }
    if (i == w.size()) {
        error = fmt::format("line {}: the Filter section is not closed", filter_line);
        return false;
    }
    if (parts.empty()) {
        error = fmt::format("line {}: the Filter section is empty", filter_line);
        return false;
    }
    expression.clear();
    for (const auto& p : parts) {
        expression += expression.empty() ? "" : " and ";
        expression += p;
    }
    return true;
}

}  // namespace filter_bpf
