// SPDX-License-Identifier: GPL-2.0-or-later
#include "expr.hpp"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>
#include <map>

namespace filter_bpf {
namespace {

using ctsync::sdk::Family;
using ctsync::sdk::FlowState;
using ctsync::sdk::Tuple;
namespace l4 = ctsync::sdk::l4;

struct Name {
    const char* text;
    std::uint8_t value;
};

// Protocol names (IANA numbers, as /etc/protocols spells them where it has them).
const Name kProtocols[] = {{"icmp", l4::kIcmp},    {"tcp", l4::kTcp},   {"udp", l4::kUdp},
                           {"dccp", l4::kDccp},    {"gre", l4::kGre},   {"icmpv6", l4::kIcmpv6},
                           {"icmp6", l4::kIcmpv6}, {"sctp", l4::kSctp}, {"udplite", l4::kUdplite}};

// Conntrack states per protocol (TCP_CONNTRACK_*, SCTP_CONNTRACK_*, CT_DCCP_*), spelled as conntrack(8)
// prints them, lower case.
struct StateName {
    std::uint8_t proto;
    const char* text;
    std::uint8_t value;
};
const StateName kStates[] = {
    {l4::kTcp, "none", 0},
    {l4::kTcp, "syn_sent", 1},
    {l4::kTcp, "syn_recv", 2},
    {l4::kTcp, "established", 3},
    {l4::kTcp, "fin_wait", 4},
    {l4::kTcp, "close_wait", 5},
    {l4::kTcp, "last_ack", 6},
    {l4::kTcp, "time_wait", 7},
    {l4::kTcp, "close", 8},
    {l4::kTcp, "syn_sent2", 9},
    {l4::kSctp, "none", 0},
    {l4::kSctp, "closed", 1},
    {l4::kSctp, "cookie_wait", 2},
    {l4::kSctp, "cookie_echoed", 3},
    {l4::kSctp, "established", 4},
    {l4::kSctp, "shutdown_sent", 5},
    {l4::kSctp, "shutdown_recd", 6},
    {l4::kSctp, "shutdown_ack_sent", 7},
    {l4::kSctp, "heartbeat_sent", 8},
    {l4::kDccp, "none", 0},
    {l4::kDccp, "request", 1},
    {l4::kDccp, "respond", 2},
    {l4::kDccp, "partopen", 3},
    {l4::kDccp, "open", 4},
    {l4::kDccp, "closereq", 5},
    {l4::kDccp, "closing", 6},
    {l4::kDccp, "timewait", 7},
};

// Status bits (IPS_*), spelled as conntrack(8) and nft spell them.
struct StatusName {
    const char* text;
    std::uint32_t bit;
};
const StatusName kStatus[] = {
    {"expected", 1u << 0},  {"seen-reply", 1u << 1}, {"assured", 1u << 2},        {"confirmed", 1u << 3},
    {"snat", 1u << 4},      {"dnat", 1u << 5},       {"seq-adjust", 1u << 6},     {"snat-done", 1u << 7},
    {"dnat-done", 1u << 8}, {"dying", 1u << 9},      {"fixed-timeout", 1u << 10}, {"template", 1u << 11},
    {"helper", 1u << 13},   {"offload", 1u << 14},   {"hw-offload", 1u << 15},
};
constexpr std::uint32_t kIpsSrcNat = 1u << 4;
constexpr std::uint32_t kIpsDstNat = 1u << 5;

// ---- lexer ----

struct Token {
    enum class Kind { kWord, kOpen, kClose, kNot, kAnd, kOr, kEnd } kind = Kind::kEnd;
    std::string text;        // lower case (words are case-insensitive)
    std::string raw;         // as written (helper names are not: the kernel has "RAS", "Q.931")
    std::size_t column = 0;  // 1-based
};

bool word_char(char c) {
    return c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '(' && c != ')' && c != '!' && c != '&' &&
           c != '|';
}

bool lex(std::string_view s, std::vector<Token>& out, ParseError& error) {
    std::size_t i = 0;
    while (i < s.size()) {
        const char c = s[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            ++i;
            continue;
        }
        Token t;
        t.column = i + 1;
        if (c == '(') {
            t.kind = Token::Kind::kOpen;
            t.text = "(";
            ++i;
        } else if (c == ')') {
            t.kind = Token::Kind::kClose;
            t.text = ")";
            ++i;
        } else if (c == '!') {
            t.kind = Token::Kind::kNot;
            t.text = "!";
            ++i;
        } else if (c == '&' || c == '|') {
            if (i + 1 >= s.size() || s[i + 1] != c) {
                error = {i + 1, fmt::format("'{}' alone is not an operator: write '{}{}' or '{}'", c, c, c,
                                            c == '&' ? "and" : "or")};
                return false;
            }
            t.kind = c == '&' ? Token::Kind::kAnd : Token::Kind::kOr;
            t.text = std::string(2, c);
            i += 2;
        } else {
            if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
                error = {i + 1, fmt::format("unexpected byte 0x{:02x}: expressions are printable ASCII",
                                            static_cast<unsigned char>(c))};
                return false;
            }
            std::size_t j = i;
            while (j < s.size() && word_char(s[j])) {
                if (static_cast<unsigned char>(s[j]) < 0x20 || static_cast<unsigned char>(s[j]) >= 0x7f) {
                    error = {j + 1, fmt::format("unexpected byte 0x{:02x}: expressions are printable ASCII",
                                                static_cast<unsigned char>(s[j]))};
                    return false;
                }
                ++j;
            }
            t.kind = Token::Kind::kWord;
            t.text = std::string(s.substr(i, j - i));
            t.raw = t.text;
            std::transform(t.text.begin(), t.text.end(), t.text.begin(),
                           [](char ch) { return static_cast<char>(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch); });
            if (t.text == "and") {
                t.kind = Token::Kind::kAnd;
            } else if (t.text == "or") {
                t.kind = Token::Kind::kOr;
            } else if (t.text == "not") {
                t.kind = Token::Kind::kNot;
            }
            i = j;
        }
        out.push_back(std::move(t));
    }
    Token end;
    end.column = s.size() + 1;
    out.push_back(end);
    return true;
}

// ---- parser ----

std::shared_ptr<Node> make(Node::Kind kind) {
    auto n = std::make_shared<Node>();
    n->kind = kind;
    return n;
}

NodePtr any_of(std::vector<NodePtr> kids) {
    if (kids.size() == 1) {
        return kids[0];
    }
    auto n = make(Node::Kind::kOr);
    n->kids = std::move(kids);
    return n;
}

bool parse_u32(std::string_view s, std::uint32_t& out) {
    int base = 10;
    if (s.size() > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        s.remove_prefix(2);
    }
    if (s.empty()) {
        return false;
    }
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out, base);
    return ec == std::errc() && p == s.data() + s.size();
}

class Parser {
  public:
    Parser(std::vector<Token> tokens, ParseError& error) : t_(std::move(tokens)), error_(error) {}

    std::optional<NodePtr> run() {
        if (t_.front().kind == Token::Kind::kEnd) {
            return fail(t_.front(),
                        "the expression is empty: expected an atom such as 'tcp' or 'dst port 22'");
        }
        auto n = parse_or();
        if (!n) {
            return std::nullopt;
        }
        if (peek().kind != Token::Kind::kEnd) {
            return fail(peek(), fmt::format("expected 'and', 'or' or the end, found {}", describe(peek())));
        }
        return n;
    }

  private:
    const Token& peek() const { return t_[i_]; }
    const Token& next() { return t_[i_ < t_.size() - 1 ? i_++ : i_]; }

    static std::string describe(const Token& t) {
        return t.kind == Token::Kind::kEnd ? std::string("the end of the expression") : "'" + t.text + "'";
    }
    std::nullopt_t fail(const Token& at, std::string message) {
        if (error_.message.empty()) {
            error_ = {at.column, std::move(message)};
        }
        return std::nullopt;
    }

    std::optional<NodePtr> parse_or() {
        auto first = parse_and();
        if (!first) {
            return std::nullopt;
        }
        std::vector<NodePtr> kids{*first};
        while (peek().kind == Token::Kind::kOr) {
            next();
            auto rhs = parse_and();
            if (!rhs) {
                return std::nullopt;
            }
            kids.push_back(*rhs);
        }
        return any_of(std::move(kids));
    }

    std::optional<NodePtr> parse_and() {
        auto first = parse_unary();
        if (!first) {
            return std::nullopt;
        }
        std::vector<NodePtr> kids{*first};
        while (peek().kind == Token::Kind::kAnd) {
            next();
            auto rhs = parse_unary();
            if (!rhs) {
                return std::nullopt;
            }
            kids.push_back(*rhs);
        }
        if (kids.size() == 1) {
            return kids[0];
        }
        auto n = make(Node::Kind::kAnd);
        n->kids = std::move(kids);
        return NodePtr(n);
    }

    std::optional<NodePtr> parse_unary() {
        const Token& t = peek();
        if (depth_ > 64) {
            return fail(t, "the expression nests deeper than 64 levels");
        }
        if (t.kind == Token::Kind::kNot) {
            next();
            ++depth_;
            auto kid = parse_unary();
            --depth_;
            if (!kid) {
                return std::nullopt;
            }
            auto n = make(Node::Kind::kNot);
            n->kids.push_back(*kid);
            return NodePtr(n);
        }
        if (t.kind == Token::Kind::kOpen) {
            const Token& open = next();
            ++depth_;
            auto inner = parse_or();
            --depth_;
            if (!inner) {
                return std::nullopt;
            }
            if (peek().kind != Token::Kind::kClose) {
                return fail(peek(), fmt::format("expected ')' to close the '(' of column {}, found {}",
                                                open.column, describe(peek())));
            }
            next();
            return inner;
        }
        if (t.kind != Token::Kind::kWord) {
            return fail(t, fmt::format("expected an atom, 'not' or '(', found {}", describe(t)));
        }
        return parse_atom();
    }

    // [orig|reply] [src|dst] (host|net|port|portrange) ARG
    std::optional<NodePtr> parse_atom() {
        std::optional<Dir> dir;
        std::optional<Side> side;
        std::string qualifiers;  // what came before the word, for messages ("orig src")
        if (peek().kind == Token::Kind::kWord && (peek().text == "orig" || peek().text == "reply")) {
            qualifiers = next().text;
            dir = qualifiers == "orig" ? Dir::kOrig : Dir::kReply;
        }
        if (peek().kind == Token::Kind::kWord && (peek().text == "src" || peek().text == "dst")) {
            const std::string& q = next().text;
            side = q == "src" ? Side::kSrc : Side::kDst;
            qualifiers += (qualifiers.empty() ? "" : " ") + q;
        }
        const Token& word = peek();
        if (word.kind != Token::Kind::kWord) {
            // Only after a qualifier (parse_unary sends nothing else here).
            return fail(word, fmt::format("expected 'host', 'net' or 'port' after '{}', found {}", qualifiers,
                                          describe(word)));
        }
        next();
        const std::string& w = word.text;
        if (w == "host" || w == "net") {
            return parse_net(word, dir, side);
        }
        if (w == "port" || w == "portrange") {
            return parse_port(word, dir, side);
        }
        if (dir || side) {
            return fail(
                word, fmt::format("expected 'host', 'net' or 'port' after '{}', found '{}'", qualifiers, w));
        }
        if (w == "ip" || w == "ip4" || w == "ipv4" || w == "ip6" || w == "ipv6") {
            auto n = make(Node::Kind::kFamily);
            n->family = w == "ip" || w == "ip4" || w == "ipv4" ? Family::kIpv4 : Family::kIpv6;
            return NodePtr(n);
        }
        if (w == "l3") {
            const Token& arg = next();
            if (arg.kind != Token::Kind::kWord || (arg.text != "ipv4" && arg.text != "ipv6")) {
                return fail(arg,
                            fmt::format("expected 'ipv4' or 'ipv6' after 'l3', found {}", describe(arg)));
            }
            auto n = make(Node::Kind::kFamily);
            n->family = arg.text == "ipv4" ? Family::kIpv4 : Family::kIpv6;
            return NodePtr(n);
        }
        if (w == "proto") {
            const Token& arg = next();
            std::uint8_t p = 0;
            if (arg.kind != Token::Kind::kWord || !protocol(arg.text, p)) {
                return fail(arg, fmt::format("expected a protocol name ({}) or number 0-255 after 'proto', "
                                             "found {}",
                                             protocol_names(), describe(arg)));
            }
            auto n = make(Node::Kind::kProto);
            n->proto = p;
            return NodePtr(n);
        }
        if (std::uint8_t p = 0; protocol_name(w, p)) {
            auto n = make(Node::Kind::kProto);
            n->proto = p;
            return NodePtr(n);
        }
        if (w == "zone") {
            const Token& arg = next();
            std::uint32_t z = 0;
            if (arg.kind != Token::Kind::kWord || !parse_u32(arg.text, z) || z > 65535) {
                return fail(arg,
                            fmt::format("expected a zone id 0-65535 after 'zone', found {}", describe(arg)));
            }
            auto n = make(Node::Kind::kZone);
            n->zone = static_cast<std::uint16_t>(z);
            return NodePtr(n);
        }
        if (w == "mark") {
            const Token& arg = next();
            std::uint32_t value = 0;
            std::uint32_t mask = 0xffffffff;
            bool ok = arg.kind == Token::Kind::kWord;
            if (ok) {
                const auto slash = arg.text.find('/');
                ok = parse_u32(std::string_view(arg.text).substr(0, slash), value) &&
                     (slash == std::string::npos ||
                      parse_u32(std::string_view(arg.text).substr(slash + 1), mask));
            }
            if (!ok) {
                return fail(arg,
                            fmt::format("expected a mark VALUE or VALUE/MASK (decimal or 0x hex, 32 bits) "
                                        "after 'mark', found {}",
                                        describe(arg)));
            }
            auto n = make(Node::Kind::kMark);
            n->value = value & mask;
            n->mask = mask;
            return NodePtr(n);
        }
        if (w == "status") {
            const Token& arg = next();
            for (const auto& s : kStatus) {
                if (arg.kind == Token::Kind::kWord && arg.text == s.text) {
                    auto n = make(Node::Kind::kStatus);
                    n->bits = s.bit;
                    return NodePtr(n);
                }
            }
            std::string names;
            for (const auto& s : kStatus) {
                names += names.empty() ? "" : ", ";
                names += s.text;
            }
            return fail(arg, fmt::format("expected a status flag after 'status' ({}), found {}", names,
                                         describe(arg)));
        }
        if (w == "state") {
            // state [tcp|sctp|dccp] NAME: without the protocol, every protocol with a state of that name.
            std::uint8_t only = 0;
            if (peek().kind == Token::Kind::kWord &&
                (peek().text == "tcp" || peek().text == "sctp" || peek().text == "dccp")) {
                const std::string p = next().text;
                only = p == "tcp" ? l4::kTcp : p == "sctp" ? l4::kSctp : l4::kDccp;
            }
            const Token& arg = next();
            std::vector<NodePtr> kids;
            for (const auto& s : kStates) {
                if (arg.kind == Token::Kind::kWord && arg.text == s.text && (only == 0 || s.proto == only)) {
                    auto n = make(Node::Kind::kState);
                    n->proto = s.proto;
                    n->state = s.value;
                    kids.push_back(n);
                }
            }
            if (kids.empty()) {
                return fail(arg, fmt::format("expected a {} state after 'state' (e.g. established, "
                                             "time_wait, cookie_echoed, open), found {}",
                                             only == l4::kTcp    ? "TCP"
                                             : only == l4::kSctp ? "SCTP"
                                             : only == l4::kDccp ? "DCCP"
                                                                 : "TCP, SCTP or DCCP",
                                             describe(arg)));
            }
            return any_of(std::move(kids));
        }
        if (w == "nat" || w == "snat" || w == "dnat") {
            std::vector<NodePtr> kids;
            for (bool s : {true, false}) {
                if ((w == "snat" && !s) || (w == "dnat" && s)) {
                    continue;
                }
                auto n = make(Node::Kind::kNat);
                n->snat = s;
                kids.push_back(n);
            }
            return any_of(std::move(kids));
        }
        if (w == "helper") {
            const Token& arg = next();
            if (arg.kind != Token::Kind::kWord || arg.text.size() >= ctsync::sdk::kHelperNameSize) {
                return fail(arg, fmt::format("expected a helper name (at most 15 characters) or 'any' after "
                                             "'helper', found {}",
                                             describe(arg)));
            }
            auto n = make(Node::Kind::kHelper);
            n->helper = arg.text == "any" ? "" : arg.raw;
            return NodePtr(n);
        }
        return fail(word, fmt::format("unknown word '{}': expected an atom (ip, ip6, proto, tcp, udp, ..., "
                                      "host, net, port, portrange, zone, mark, status, state, nat, snat, "
                                      "dnat, helper), 'not' or '('",
                                      w));
    }

    static bool protocol_name(const std::string& w, std::uint8_t& p) {
        for (const auto& n : kProtocols) {
            if (w == n.text) {
                p = n.value;
                return true;
            }
        }
        return false;
    }
    static bool protocol(const std::string& w, std::uint8_t& p) {
        if (protocol_name(w, p)) {
            return true;
        }
        std::uint32_t v = 0;
        if (parse_u32(w, v) && v <= 255) {
            p = static_cast<std::uint8_t>(v);
            return true;
        }
        return false;
    }
    static std::string protocol_names() {
        std::string out;
        for (const auto& n : kProtocols) {
            out += out.empty() ? "" : ", ";
            out += n.text;
        }
        return out;
    }

    // Expands the unqualified forms: no direction = either tuple, no side = either end.
    static NodePtr expand(const Node& proto, std::optional<Dir> dir, std::optional<Side> side) {
        std::vector<NodePtr> kids;
        for (Dir d : {Dir::kOrig, Dir::kReply}) {
            if (dir && *dir != d) {
                continue;
            }
            for (Side s : {Side::kSrc, Side::kDst}) {
                if (side && *side != s) {
                    continue;
                }
                auto n = std::make_shared<Node>(proto);
                n->dir = d;
                n->side = s;
                kids.push_back(n);
            }
        }
        return any_of(std::move(kids));
    }

    std::optional<NodePtr> parse_net(const Token& word, std::optional<Dir> dir, std::optional<Side> side) {
        const Token& arg = next();
        const bool is_net = word.text == "net";
        if (arg.kind != Token::Kind::kWord) {
            return fail(arg, fmt::format("expected an {} after '{}', found {}",
                                         is_net ? "address/prefix (CIDR)" : "IPv4 or IPv6 address", word.text,
                                         describe(arg)));
        }
        std::string addr = arg.text;
        std::optional<unsigned> prefix;
        if (const auto slash = addr.find('/'); slash != std::string::npos) {
            if (!is_net) {
                return fail(arg, fmt::format("'host' takes an address without a prefix, found '{}': write "
                                             "'net {}'",
                                             arg.text, arg.text));
            }
            std::uint32_t p = 0;
            if (!parse_u32(std::string_view(addr).substr(slash + 1), p) || p > 128) {
                return fail(arg, fmt::format("'{}' has no valid prefix length after '/'", arg.text));
            }
            prefix = p;
            addr.resize(slash);
        }
        Node n;
        n.kind = Node::Kind::kNet;
        if (inet_pton(AF_INET, addr.c_str(), n.address.bytes.data()) == 1) {
            n.family = Family::kIpv4;
        } else if (inet_pton(AF_INET6, addr.c_str(), n.address.bytes.data()) == 1) {
            n.family = Family::kIpv6;
        } else {
            return fail(arg, fmt::format("'{}' is not an IPv4 or IPv6 address", addr));
        }
        const unsigned bits = n.family == Family::kIpv4 ? 32 : 128;
        if (!prefix) {
            if (is_net) {
                return fail(arg, fmt::format("'net' takes an address with a prefix length, found '{}': write "
                                             "e.g. '{}/{}' or 'host {}'",
                                             arg.text, arg.text, bits, arg.text));
            }
            prefix = bits;
        }
        if (*prefix > bits) {
            return fail(arg, fmt::format("'{}': an {} prefix is at most /{}", arg.text,
                                         n.family == Family::kIpv4 ? "IPv4" : "IPv6", bits));
        }
        for (unsigned b = *prefix; b < bits; ++b) {
            if (n.address.bytes[b / 8] & (0x80u >> (b % 8))) {
                return fail(arg, fmt::format("'{}' has bits set after its /{} prefix (host bits): write the "
                                             "network address",
                                             arg.text, *prefix));
            }
        }
        n.prefix = *prefix;
        return expand(n, dir, side);
    }

    std::optional<NodePtr> parse_port(const Token& word, std::optional<Dir> dir, std::optional<Side> side) {
        const Token& arg = next();
        std::uint32_t lo = 0;
        std::uint32_t hi = 0;
        bool ok = arg.kind == Token::Kind::kWord;
        if (ok) {
            const auto dash = arg.text.find('-');
            ok = parse_u32(std::string_view(arg.text).substr(0, dash), lo) &&
                 (dash == std::string::npos ? (hi = lo, true)
                                            : parse_u32(std::string_view(arg.text).substr(dash + 1), hi));
            ok = ok && lo <= 65535 && hi <= 65535;
            if (ok && word.text == "portrange" && dash == std::string::npos) {
                ok = false;
            }
        }
        if (!ok) {
            return fail(arg, fmt::format("expected a port 0-65535 or a range LOW-HIGH after '{}', found {}",
                                         word.text, describe(arg)));
        }
        if (lo > hi) {
            return fail(arg, fmt::format("the port range '{}' is empty: its low end is above its high end",
                                         arg.text));
        }
        Node n;
        n.kind = Node::Kind::kPort;
        n.lo = static_cast<std::uint16_t>(lo);
        n.hi = static_cast<std::uint16_t>(hi);
        return expand(n, dir, side);
    }

    std::vector<Token> t_;
    std::size_t i_ = 0;
    int depth_ = 0;
    ParseError& error_;
};

// ---- evaluation ----

const Tuple& tuple_of(const FlowState& f, Dir d) {
    return d == Dir::kOrig ? f.original : f.reply;
}

bool in_net(const Node& n, const ctsync::sdk::Address& a) {
    for (unsigned b = 0; b < n.prefix; ++b) {
        const std::uint8_t bit = static_cast<std::uint8_t>(0x80u >> (b % 8));
        if ((a.bytes[b / 8] & bit) != (n.address.bytes[b / 8] & bit)) {
            return false;
        }
    }
    return true;
}

bool atom(const Node& n, const FlowState& f) {
    switch (n.kind) {
        case Node::Kind::kFamily:
            return f.original.family == n.family;
        case Node::Kind::kProto:
            return f.original.protocol == n.proto;
        case Node::Kind::kNet: {
            const Tuple& t = tuple_of(f, n.dir);
            return t.family == n.family && in_net(n, n.side == Side::kSrc ? t.src : t.dst);
        }
        case Node::Kind::kPort: {
            const Tuple& t = tuple_of(f, n.dir);
            if (!has_ports(t.protocol)) {
                return false;
            }
            const std::uint16_t p = n.side == Side::kSrc ? t.src_port : t.dst_port;
            return p >= n.lo && p <= n.hi;
        }
        case Node::Kind::kZone:
            return f.zone.id == n.zone;
        case Node::Kind::kNat:
            return (f.status & (n.snat ? kIpsSrcNat : kIpsDstNat)) != 0;
        case Node::Kind::kState:
            if (f.original.protocol != n.proto) {
                return false;
            }
            switch (n.proto) {
                case l4::kTcp:
                    return f.tcp.state == n.state;
                case l4::kSctp:
                    return f.sctp.state == n.state;
                case l4::kDccp:
                    return f.dccp.state == n.state;
                default:
                    return false;
            }
        case Node::Kind::kStatus:
            return (f.status & n.bits) == n.bits;
        case Node::Kind::kMark:
            return (f.mark & n.mask) == n.value;
        case Node::Kind::kHelper: {
            const auto name = ctsync::sdk::helper_name_view(f.helper);
            return n.helper.empty() ? !name.empty() : name == n.helper;
        }
        default:
            return false;
    }
}

std::string address_text(const Node& n) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(n.family == Family::kIpv4 ? AF_INET : AF_INET6, n.address.bytes.data(), buf, sizeof(buf));
    return buf;
}

std::string atom_text(const Node& n) {
    auto where = [&] {
        return fmt::format("{} {}", n.dir == Dir::kOrig ? "orig" : "reply",
                           n.side == Side::kSrc ? "src" : "dst");
    };
    switch (n.kind) {
        case Node::Kind::kFamily:
            return n.family == Family::kIpv4 ? "ip" : "ip6";
        case Node::Kind::kProto:
            for (const auto& p : kProtocols) {
                if (p.value == n.proto) {
                    return fmt::format("proto {}", p.text);
                }
            }
            return fmt::format("proto {}", n.proto);
        case Node::Kind::kNet: {
            const unsigned bits = n.family == Family::kIpv4 ? 32 : 128;
            return n.prefix == bits ? fmt::format("{} host {}", where(), address_text(n))
                                    : fmt::format("{} net {}/{}", where(), address_text(n), n.prefix);
        }
        case Node::Kind::kPort:
            return n.lo == n.hi ? fmt::format("{} port {}", where(), n.lo)
                                : fmt::format("{} port {}-{}", where(), n.lo, n.hi);
        case Node::Kind::kZone:
            return fmt::format("zone {}", n.zone);
        case Node::Kind::kNat:
            return n.snat ? "snat" : "dnat";
        case Node::Kind::kState:
            for (const auto& s : kStates) {
                if (s.proto == n.proto && s.value == n.state) {
                    return fmt::format("state {} {}",
                                       n.proto == l4::kTcp    ? "tcp"
                                       : n.proto == l4::kSctp ? "sctp"
                                                              : "dccp",
                                       s.text);
                }
            }
            return "state ?";
        case Node::Kind::kStatus:
            for (const auto& s : kStatus) {
                if (s.bit == n.bits) {
                    return fmt::format("status {}", s.text);
                }
            }
            return "status ?";
        case Node::Kind::kMark:
            return n.mask == 0xffffffff ? fmt::format("mark 0x{:x}", n.value)
                                        : fmt::format("mark 0x{:x}/0x{:x}", n.value, n.mask);
        case Node::Kind::kHelper:
            return fmt::format("helper {}", n.helper.empty() ? "any" : n.helper);
        default:
            return "?";
    }
}

void collect(const Node& n, Placement& out) {
    if (n.kind == Node::Kind::kAnd || n.kind == Node::Kind::kOr || n.kind == Node::Kind::kNot) {
        for (const auto& k : n.kids) {
            collect(*k, out);
        }
        return;
    }
    auto& list = decided_in_kernel(n.kind) ? out.in_kernel : out.in_process_only;
    std::string text = atom_text(n);
    if (std::find(list.begin(), list.end(), text) == list.end()) {
        list.push_back(std::move(text));
    }
}

}  // namespace

bool has_ports(std::uint8_t protocol) noexcept {
    switch (protocol) {
        case l4::kTcp:
        case l4::kUdp:
        case l4::kUdplite:
        case l4::kSctp:
        case l4::kDccp:
        case l4::kGre:
            return true;
        default:
            return false;
    }
}

namespace {

// Operators above the deepest atom. Atoms that expand into several (nat, state of several protocols, ...)
// add a level the text did not show, and the canonical text (to_string) writes it as parentheses.
int nesting(const Node& n) {
    int deepest = 0;
    for (const auto& kid : n.kids) {
        deepest = std::max(deepest, nesting(*kid));
    }
    return n.kids.empty() ? 0 : deepest + 1;
}

}  // namespace

std::optional<NodePtr> parse(std::string_view text, ParseError& error) {
    error = {};
    std::vector<Token> tokens;
    if (!lex(text, tokens, error)) {
        return std::nullopt;
    }
    auto tree = Parser(std::move(tokens), error).run();
    // The parser bounds the nesting of the text; this bounds the tree's, so that every accepted expression's
    // canonical text parses too (found by tests/fuzz/filter_expression_fuzz.cpp: 64 nots before `nat`).
    if (tree && nesting(**tree) > 64) {
        error = {1, "the expression nests deeper than 64 levels (atoms such as nat count as one more)"};
        return std::nullopt;
    }
    return tree;
}

std::string format(const ParseError& error) {
    return fmt::format("column {}: {}", error.column, error.message);
}

bool evaluate(const Node& n, const FlowState& f) noexcept {
    switch (n.kind) {
        case Node::Kind::kAnd:
            return std::all_of(n.kids.begin(), n.kids.end(),
                               [&](const NodePtr& k) { return evaluate(*k, f); });
        case Node::Kind::kOr:
            return std::any_of(n.kids.begin(), n.kids.end(),
                               [&](const NodePtr& k) { return evaluate(*k, f); });
        case Node::Kind::kNot:
            return !evaluate(*n.kids[0], f);
        default:
            return atom(n, f);
    }
}

bool decided_in_kernel(Node::Kind kind) noexcept {
    switch (kind) {
        case Node::Kind::kFamily:
        case Node::Kind::kProto:
        case Node::Kind::kNet:
        case Node::Kind::kPort:
        case Node::Kind::kZone:
        case Node::Kind::kNat:
            return true;
        default:
            return false;
    }
}

Tri evaluate_kernel_view(const Node& n, const FlowState& f) noexcept {
    switch (n.kind) {
        case Node::Kind::kAnd: {
            Tri out = Tri::kTrue;
            for (const auto& k : n.kids) {
                const Tri v = evaluate_kernel_view(*k, f);
                if (v == Tri::kFalse) {
                    return Tri::kFalse;
                }
                if (v == Tri::kUnknown) {
                    out = Tri::kUnknown;
                }
            }
            return out;
        }
        case Node::Kind::kOr: {
            Tri out = Tri::kFalse;
            for (const auto& k : n.kids) {
                const Tri v = evaluate_kernel_view(*k, f);
                if (v == Tri::kTrue) {
                    return Tri::kTrue;
                }
                if (v == Tri::kUnknown) {
                    out = Tri::kUnknown;
                }
            }
            return out;
        }
        case Node::Kind::kNot: {
            const Tri v = evaluate_kernel_view(*n.kids[0], f);
            return v == Tri::kUnknown ? v : v == Tri::kTrue ? Tri::kFalse : Tri::kTrue;
        }
        default:
            if (!decided_in_kernel(n.kind)) {
                return Tri::kUnknown;
            }
            return atom(n, f) ? Tri::kTrue : Tri::kFalse;
    }
}

bool kernel_exact(const Node& n) noexcept {
    if (n.kind == Node::Kind::kAnd || n.kind == Node::Kind::kOr || n.kind == Node::Kind::kNot) {
        return std::all_of(n.kids.begin(), n.kids.end(), [](const NodePtr& k) { return kernel_exact(*k); });
    }
    return decided_in_kernel(n.kind);
}

std::string to_string(const Node& n) {
    switch (n.kind) {
        case Node::Kind::kAnd:
        case Node::Kind::kOr: {
            std::string out = "(";
            for (std::size_t i = 0; i < n.kids.size(); ++i) {
                out += i == 0 ? "" : n.kind == Node::Kind::kAnd ? " and " : " or ";
                out += to_string(*n.kids[i]);
            }
            return out + ")";
        }
        case Node::Kind::kNot:
            return "not " + to_string(*n.kids[0]);
        default:
            return atom_text(n);
    }
}

Placement placement(const Node& node) {
    Placement out;
    collect(node, out);
    return out;
}

}  // namespace filter_bpf
