// SPDX-License-Identifier: GPL-2.0-or-later
// filter-bpf without a kernel: the grammar (good expressions and their canonical form, bad ones with the
// column and what was expected), the evaluator over tables of flows, the compiled programs under the
// kernel's checker, and the property that holds the two sides to one meaning: over 10k random expressions
// and random flows, the compiled program run by a cBPF interpreter with the kernel's semantics over the
// flow's ctnetlink event message accepts exactly what the kernel view of the expression does not reject,
// which is exactly the in-process verdict when every atom is decided in the kernel, and never less. Also:
// the conntrackd Filter translation, the key table against the README and the SDK's conformance suite. The
// same checks over the kernel's own event bytes and through a real socket: filter_bpf_netns_test.cpp.
#include "filter_bpf.hpp"

#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <ctsync/sdk/testing/conformance.hpp>
#include <filesystem>
#include <random>

#include "bpf.hpp"
#include "conntrackd_filter.hpp"
#include "core/config/key_table.hpp"
#include "ct_message.hpp"
#include "expr.hpp"
#include "property.hpp"
#include "tests/support/process.hpp"

namespace filter_bpf::test {
namespace {

namespace sdk = ctsync::sdk;
namespace l4 = sdk::l4;

const bool kConformanceRegistered = [] {
    ctsync::testkit::register_conformance_tests({
        .plugin_file = FILTER_BPF_PLUGIN_FILE,
        .plugin_name = "filter-bpf",
        .category = sdk::Category::kFilter,
        .sample_config = {{"expression", "tcp and not dst port 22"}},
        .bad_configs = {{{"expression", "tcp and"}},
                        {{"expression", 1}},
                        {{"expression", "tcp"}, {"placement", "kernel"}},
                        {{"unknown", true}}},
    });
    return true;
}();

NodePtr parsed(const std::string& text) {
    ParseError error;
    auto root = parse(text, error);
    EXPECT_TRUE(root.has_value()) << text << ": " << format(error);
    return root ? *root : nullptr;
}

sdk::Address v4(std::uint8_t a, std::uint8_t b, std::uint8_t c, std::uint8_t d) {
    sdk::Address out;
    out.bytes = {a, b, c, d};
    return out;
}

// A TCP flow 192.0.2.10:40000 -> 203.0.113.80:80, SNATed to 198.51.100.1, ESTABLISHED and assured.
sdk::FlowState tcp_flow() {
    sdk::FlowState f;
    f.original.family = f.reply.family = sdk::Family::kIpv4;
    f.original.protocol = f.reply.protocol = l4::kTcp;
    f.original.src = v4(192, 0, 2, 10);
    f.original.dst = v4(203, 0, 113, 80);
    f.original.src_port = 40000;
    f.original.dst_port = 80;
    f.reply.src = f.original.dst;
    f.reply.dst = v4(198, 51, 100, 1);
    f.reply.src_port = 80;
    f.reply.dst_port = 40000;
    f.status = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4);  // seen-reply, assured, confirmed, snat
    f.tcp.state = 3;
    f.mark = 0x12;
    f.timeout = 300;
    return f;
}

TEST(FilterBpfGrammar, ParsesEveryFormToItsCanonicalText) {
    const std::pair<const char*, const char*> cases[] = {
        {"tcp", "proto tcp"},
        {"proto 6", "proto tcp"},
        {"proto 50", "proto 50"},
        {"ip6", "ip6"},
        {"l3 ipv4", "ip"},
        {"src host 192.0.2.1", "(orig src host 192.0.2.1 or reply src host 192.0.2.1)"},
        {"orig dst net 198.51.100.0/24", "orig dst net 198.51.100.0/24"},
        {"reply host fd00::1", "(reply src host fd00::1 or reply dst host fd00::1)"},
        {"orig dst port 1000-2000", "orig dst port 1000-2000"},
        {"orig src portrange 1-2", "orig src port 1-2"},
        {"zone 7", "zone 7"},
        {"mark 0x10/0xf0", "mark 0x10/0xf0"},
        {"mark 18", "mark 0x12"},
        {"status seen-reply", "status seen-reply"},
        {"state time_wait", "state tcp time_wait"},
        {"state sctp established", "state sctp established"},
        {"state established", "(state tcp established or state sctp established)"},
        {"nat", "(snat or dnat)"},
        {"helper ftp", "helper ftp"},
        {"helper any", "helper any"},
        {"HELPER RAS", "helper RAS"},  // helper names keep their case (the kernel's H.323 helpers)
        {"not tcp and udp or icmp", "((not proto tcp and proto udp) or proto icmp)"},
        {"!(tcp || udp) && ip6", "(not (proto tcp or proto udp) and ip6)"},
        {"TCP AND NOT ORIG DST PORT 22", "(proto tcp and not orig dst port 22)"},
    };
    for (const auto& [text, canonical] : cases) {
        auto root = parsed(text);
        ASSERT_TRUE(root) << text;
        EXPECT_EQ(to_string(*root), canonical) << text;
        // The canonical text parses back to itself.
        auto again = parsed(to_string(*root));
        ASSERT_TRUE(again);
        EXPECT_EQ(to_string(*again), canonical);
    }
}

TEST(FilterBpfGrammar, ErrorsNameTheColumnAndWhatWasExpected) {
    struct Case {
        const char* text;
        std::size_t column;
        const char* says;
    };
    const Case cases[] = {
        {"", 1, "the expression is empty"},
        {"tcp and", 8, "expected an atom, 'not' or '(', found the end of the expression"},
        {"tcp udp", 5, "expected 'and', 'or' or the end, found 'udp'"},
        {"(tcp or udp", 12, "expected ')' to close the '(' of column 1"},
        {"tcp )", 5, "expected 'and', 'or' or the end, found ')'"},
        {"dst port 70000", 10, "expected a port 0-65535 or a range LOW-HIGH after 'port'"},
        {"dst port 30-20", 10, "the port range '30-20' is empty"},
        {"portrange 22", 11, "after 'portrange'"},
        {"net 192.0.2.1/24", 5, "has bits set after its /24 prefix"},
        {"net 192.0.2.0", 5, "'net' takes an address with a prefix length"},
        {"host 192.0.2.0/24", 6, "'host' takes an address without a prefix"},
        {"host 192.0.2.300", 6, "'192.0.2.300' is not an IPv4 or IPv6 address"},
        {"net 192.0.2.0/33", 5, "an IPv4 prefix is at most /32"},
        {"src tcp", 5, "expected 'host', 'net' or 'port' after 'src', found 'tcp'"},
        {"src", 4, "expected 'host', 'net' or 'port' after 'src', found the end of the expression"},
        {"orig src", 9, "after 'orig src', found the end"},
        {"tcp or dst", 11, "after 'dst', found the end"},
        {"not reply", 10, "after 'reply', found the end"},
        {"orig zone 1", 6, "expected 'host', 'net' or 'port' after 'orig'"},
        {"proto bogus", 7, "expected a protocol name"},
        {"proto 256", 7, "expected a protocol name"},
        {"zone -1", 6, "expected a zone id 0-65535"},
        {"mark 0x1/zz", 6, "expected a mark VALUE or VALUE/MASK"},
        {"status bogus", 8, "expected a status flag after 'status'"},
        {"state bogus", 7, "expected a TCP, SCTP or DCCP state"},
        {"state sctp time_wait", 12, "expected a SCTP state"},
        {"helper averyveryverylongname", 8, "at most 15 characters"},
        {"tcp & udp", 5, "'&' alone is not an operator"},
        {"frobnicate", 1, "unknown word 'frobnicate'"},
        {"tcp and \x01", 9, "unexpected byte 0x01"},
    };
    for (const auto& c : cases) {
        ParseError error;
        EXPECT_FALSE(parse(c.text, error).has_value()) << c.text;
        EXPECT_EQ(error.column, c.column) << c.text << ": " << error.message;
        EXPECT_NE(error.message.find(c.says), std::string::npos) << c.text << ": " << error.message;
    }
    // Nesting is bounded (no stack exhaustion from a hostile config).
    ParseError error;
    EXPECT_FALSE(parse(std::string(200, '(') + "tcp" + std::string(200, ')'), error).has_value());
    EXPECT_NE(error.message.find("deeper than 64"), std::string::npos);
}

// Token soup and raw bytes: every input either parses (and then prints back to itself and compiles to a
// program the checker accepts) or is refused with a column inside the text and a message; none crashes.
// Found by tests/fuzz/filter_expression_fuzz.cpp: 64 nots before `nat` parsed, but its canonical text
// (`nat` written as "(snat or dnat)") nested one level deeper and was refused.
TEST(FilterBpfGrammar, EveryAcceptedExpressionsCanonicalTextParses) {
    std::string nots;
    for (int i = 0; i < 64; ++i) {
        nots += "not ";
    }
    ParseError error;
    for (const std::string atom : {"tcp", "snat", "nat", "state established"}) {
        for (const std::string& prefix : {nots, nots.substr(4)}) {
            auto tree = parse(prefix + atom, error);
            if (!tree) {
                EXPECT_NE(format(error).find("nests deeper than 64"), std::string::npos) << format(error);
                continue;
            }
            const auto canonical = to_string(**tree);
            EXPECT_TRUE(parse(canonical, error).has_value())
                << prefix + atom << " -> " << canonical << ": " << format(error);
        }
    }
    EXPECT_TRUE(parse(nots + "tcp", error).has_value()) << format(error);
    EXPECT_FALSE(parse(nots + "nat", error).has_value());
}

TEST(FilterBpfGrammar, AnyInputParsesOrIsRefusedWithAColumn) {
    const std::vector<std::string> pieces = {
        "tcp",      "udp", "not",  "and",       "or",    "(",         ")",           "!",
        "&&",       "||",  "&",    "|",         "src",   "dst",       "orig",        "reply",
        "host",     "net", "port", "portrange", "zone",  "mark",      "status",      "state",
        "helper",   "nat", "snat", "proto",     "l3",    "ip6",       "192.0.2.1",   "192.0.2.0/24",
        "fd00::/8", "::",  "22",   "1-2",       "70000", "0x10/0xf0", "established", "assured",
        "any",      "RAS", "tcp",  "sctp",      " ",     "  ",        "\t",          "-",
        "/",        "0",   "65535"};
    Random r(5);
    std::size_t parsed_ok = 0;
    for (int i = 0; i < 20000; ++i) {
        std::string text;
        const std::size_t n = r.below(9);
        for (std::size_t k = 0; k < n; ++k) {
            if (r.chance(5)) {
                text += static_cast<char>(r.below(256));  // any byte
            } else {
                text += r.pick(pieces);
                text += r.chance(80) ? " " : "";
            }
        }
        ParseError error;
        auto root = parse(text, error);
        if (!root) {
            EXPECT_GE(error.column, 1u) << text;
            EXPECT_LE(error.column, text.size() + 1) << text;
            EXPECT_FALSE(error.message.empty()) << text;
            continue;
        }
        ++parsed_ok;
        const std::string canonical = to_string(**root);
        auto again = parse(canonical, error);
        ASSERT_TRUE(again) << text << " -> " << canonical << ": " << format(error);
        EXPECT_EQ(to_string(**again), canonical);
        std::string why;
        if (auto program = compile(**root, why)) {
            std::string check_error;
            EXPECT_TRUE(check(*program, check_error)) << text << ": " << check_error;
        }
    }
    EXPECT_GT(parsed_ok, 300u);  // the soup is not all refusals (about 400 of 20000 parse)
}

TEST(FilterBpfEvaluate, DecidesOverEachAttribute) {
    const sdk::FlowState f = tcp_flow();
    const std::pair<const char*, bool> cases[] = {
        {"tcp", true},
        {"udp", false},
        {"ip", true},
        {"ip6", false},
        {"orig src host 192.0.2.10", true},
        {"reply src host 192.0.2.10", false},
        {"host 198.51.100.1", true},  // the SNAT address, in the reply tuple
        {"orig host 198.51.100.1", false},
        {"net 192.0.2.0/24", true},
        {"net 192.0.2.0/25", true},
        {"net 192.0.2.128/25", false},
        {"net 0.0.0.0/0", true},
        {"net ::/0", false},
        {"dst port 80", true},
        {"orig dst port 81-90", false},
        {"reply dst port 40000", true},
        {"zone 0", true},
        {"zone 1", false},
        {"mark 0x12", true},
        {"mark 0x10/0xf0", true},
        {"mark 0x20/0xf0", false},
        {"status assured", true},
        {"status expected", false},
        {"state established", true},
        {"state time_wait", false},
        {"snat", true},
        {"dnat", false},
        {"nat", true},
        {"helper any", false},
        {"not (tcp and dst port 80)", false},
        {"udp or dst port 80", true},
    };
    for (const auto& [text, expected] : cases) {
        auto root = parsed(text);
        ASSERT_TRUE(root);
        EXPECT_EQ(evaluate(*root, f), expected) << text;
    }
    sdk::FlowState h323 = f;
    sdk::set_helper_name(h323.helper, "RAS");
    EXPECT_TRUE(evaluate(*parsed("helper RAS"), h323));
    EXPECT_FALSE(evaluate(*parsed("helper ras"), h323));
    // Ports exist only for protocols that have them: ICMP's identifier is not a port.
    sdk::FlowState icmp = f;
    icmp.original.protocol = icmp.reply.protocol = l4::kIcmp;
    icmp.original.src_port = 80;  // the identifier
    EXPECT_FALSE(evaluate(*parsed("port 80"), icmp));
    // A state name belongs to the flow's own protocol.
    sdk::FlowState sctp = f;
    sctp.original.protocol = sctp.reply.protocol = l4::kSctp;
    sctp.tcp.state = 0;
    sctp.sctp.state = 4;
    EXPECT_TRUE(evaluate(*parsed("state established"), sctp));
    EXPECT_FALSE(evaluate(*parsed("tcp and state established"), sctp));
}

TEST(FilterBpfCompile, PlacesAtomsAndPassesTheKernelChecker) {
    auto exact = parsed("tcp and not dst port 22 and net 192.0.2.0/24");
    EXPECT_TRUE(kernel_exact(*exact));
    auto mixed = parsed("tcp and state established");
    EXPECT_FALSE(kernel_exact(*mixed));
    const Placement p = placement(*mixed);
    EXPECT_EQ(p.in_kernel, (std::vector<std::string>{"proto tcp"}));
    EXPECT_EQ(p.in_process_only.size(), 2u);
    for (const auto* root : {exact.get(), mixed.get()}) {
        std::string why;
        auto program = compile(*root, why);
        ASSERT_TRUE(program) << why;
        std::string error;
        EXPECT_TRUE(check(*program, error)) << error << "\n" << disassemble(*program);
    }
    // An expression too large for the kernel stays in process, with the reason.
    std::string big = "host 192.0.2.1";
    for (int i = 2; i < 250; ++i) {
        big += " or host 192.0.2." + std::to_string(i);
    }
    std::string why;
    EXPECT_FALSE(compile(*parsed(big), why).has_value());
    EXPECT_NE(why.find("exceed"), std::string::npos);
    // Far jumps go through trampolines and stay correct.
    std::string wide = "not (host 192.0.2.1";
    for (int i = 2; i < 40; ++i) {
        wide += " or host 192.0.2." + std::to_string(i);
    }
    wide += ")";
    auto root = parsed(wide);
    auto program = compile(*root, why);
    ASSERT_TRUE(program) << why;
    std::string error;
    ASSERT_TRUE(check(*program, error)) << error;
    sdk::FlowState f = tcp_flow();
    for (std::uint8_t last : {1, 20, 39, 40, 41}) {
        f.original.dst = f.reply.src = v4(192, 0, 2, last);
        EXPECT_EQ(run(*program, event_message(f)) != kDrop, evaluate(*root, f)) << int{last};
    }
}

TEST(FilterBpfCompile, APortProtocolWithoutPortAttributesIsLeftToTheProcess) {
    // UDP-Lite tracked by the kernel's generic tracker: no ports in the message, port 0 in process.
    sdk::FlowState f = tcp_flow();
    f.original.protocol = f.reply.protocol = l4::kUdplite;
    f.original.src_port = f.original.dst_port = f.reply.src_port = f.reply.dst_port = 0;
    std::string why;
    auto root = parsed("orig dst port 0-1024");
    auto program = compile(*root, why);
    ASSERT_TRUE(program);
    EXPECT_TRUE(evaluate(*root, f));
    EXPECT_NE(run(*program, event_message(f, false, false)), kDrop);  // unknown: passed on
    // ICMP has no ports: the kernel decides false.
    f.original.protocol = f.reply.protocol = l4::kIcmp;
    EXPECT_EQ(run(*program, event_message(f, false, false)), kDrop);
    EXPECT_FALSE(evaluate(*root, f));
}

TEST(FilterBpfCompile, LetsThroughWhatIsNotAFlowEvent) {
    std::string why;
    auto program = compile(*parsed("udp"), why);
    ASSERT_TRUE(program);
    auto msg = event_message(tcp_flow());
    EXPECT_EQ(run(*program, msg), kDrop);
    // An expectation event (subsystem CTNETLINK_EXP) and a short message go to the process.
    auto* nlh = reinterpret_cast<nlmsghdr*>(msg.data());
    nlh->nlmsg_type = static_cast<std::uint16_t>(NFNL_SUBSYS_CTNETLINK_EXP << 8 | IPCTNL_MSG_EXP_NEW);
    EXPECT_EQ(run(*program, msg), kAccept);
    EXPECT_EQ(run(*program, std::vector<std::uint8_t>(12, 0)), kAccept);
}

// ---- the property ----

TEST(FilterBpfProperty, KernelAndProcessVerdictsAgreeOverRandomExpressionsAndFlows) {
    const std::uint64_t seed =
        std::getenv("FILTER_BPF_SEED") ? std::stoull(std::getenv("FILTER_BPF_SEED")) : 20261207;
    Random r(seed);
    std::vector<sdk::FlowState> flows;
    std::vector<std::vector<std::uint8_t>> messages;
    for (int i = 0; i < 400; ++i) {
        flows.push_back(random_flow(r));
        messages.push_back(event_message(flows.back(), r.chance(20)));
    }
    std::size_t expressions = 0;
    std::size_t exact = 0;
    std::size_t without_program = 0;
    Tally tally;
    for (int e = 0; e < 10000; ++e) {
        const std::string text = random_expression(r, 4);
        ParseError error;
        auto root = parse(text, error);
        ASSERT_TRUE(root) << "seed " << seed << ": " << text << ": " << format(error);
        ++expressions;
        std::string why;
        auto program = compile(**root, why);
        if (!program) {
            ++without_program;  // too large: the process decides alone, which is always right
            continue;
        }
        std::string check_error;
        ASSERT_TRUE(check(*program, check_error)) << text << ": " << check_error;
        exact += kernel_exact(**root);
        // 20 flows per expression, a different slice each time.
        for (int k = 0; k < 20; ++k) {
            const std::size_t i = r.below(flows.size());
            ASSERT_TRUE(verdicts_agree(**root, *program, messages[i], flows[i], tally))
                << "seed " << seed << "\nexpression: " << text << "\ncanonical: " << to_string(**root)
                << "\nflow #" << i;
        }
    }
    EXPECT_EQ(expressions, 10000u);
    EXPECT_LT(without_program, 50u);
    // The random expressions are not degenerate: both verdicts occur often on both sides.
    EXPECT_GT(tally.dropped_in_kernel, tally.verdicts / 10);
    EXPECT_GT(tally.accepted, tally.verdicts / 10);
    EXPECT_GT(exact, 1000u);
    std::printf(
        "expressions %zu (exact %zu, too large %zu), verdicts %zu, dropped in kernel %zu, accepted %zu\n",
        expressions, exact, without_program, tally.verdicts, tally.dropped_in_kernel, tally.accepted);
}

// ---- conntrackd's Filter section ----

TEST(FilterBpfConntrackd, TranslatesTheFilterSectionWithTheSameMeaning) {
    const char* conf = R"(
General {
    Filter From Userspace {
        Protocol Accept {
            TCP SCTP
        }
        Address Ignore {
            IPv4_address 127.0.0.1 # loopback
            IPv4_address 192.0.2.0/24
            IPv6_address ::1
        }
        State Accept {
            ESTABLISHED CLOSED TIME_WAIT CLOSE_WAIT for TCP
        }
    }
}
)";
    std::string expression;
    std::string error;
    ASSERT_TRUE(conntrackd_filter_expression(conf, expression, error)) << error;
    auto root = parsed(expression);
    ASSERT_TRUE(root) << expression;
    sdk::FlowState f = tcp_flow();
    f.original.src = v4(203, 0, 113, 9);  // not an ignored address
    EXPECT_TRUE(evaluate(*root, f));
    sdk::FlowState ignored = f;
    ignored.original.src = v4(192, 0, 2, 77);  // in 192.0.2.0/24
    EXPECT_FALSE(evaluate(*root, ignored));
    sdk::FlowState reply_side = f;
    reply_side.reply.src = v4(127, 0, 0, 1);  // conntrackd also tests the reply's source
    EXPECT_FALSE(evaluate(*root, reply_side));
    sdk::FlowState syn = f;
    syn.tcp.state = 1;  // SYN_SENT: not in the State list
    EXPECT_FALSE(evaluate(*root, syn));
    sdk::FlowState udp = f;
    udp.original.protocol = udp.reply.protocol = l4::kUdp;
    EXPECT_FALSE(evaluate(*root, udp));
    sdk::FlowState sctp = f;
    sctp.original.protocol = sctp.reply.protocol = l4::kSctp;
    sctp.tcp.state = 0;
    EXPECT_TRUE(evaluate(*root, sctp));  // states filter TCP only

    const std::pair<const char*, const char*> bad[] = {
        {"General { }", "no Filter section"},
        {"Filter {\n Protocol Maybe { TCP }\n}", "line 2: expected 'Protocol Accept {'"},
        {"Filter {\n Protocol Accept { BOGUSPROTO }\n}", "line 2: unknown protocol 'BOGUSPROTO'"},
        {"Filter {\n Address Accept { IPv4_address 300.1.1.1 }\n}", "not an IPv4 address"},
        {"Filter {\n State Accept { ESTABLISHED for UDP }\n}", "states of TCP only"},
        {"Filter {\n State Accept { WAITING }\n}", "unknown TCP state 'WAITING'"},
        {"Filter {\n Protocol Accept { TCP ", "not closed"},
        {"Filter {\n Color Accept { red }\n}", "expected Protocol, Address or State"},
        {"Filter {\n Address Accept { IPv4_address 192.0.2.1 }\n Address Ignore { IPv4_address 192.0.2.2 "
         "}\n}",
         "line 3: a second Address block"},
        {"Filter From Nowhere {\n Protocol Accept { TCP }\n}", "expected Userspace or Kernelspace"},
        {"Filter {\n Address Accept { IPv4_address 192.0.2.0/24abc }\n}", "no valid prefix length"},
        {"Filter {\n Address Accept { IPv4_address 192.0.2.0/ }\n}", "no valid prefix length"},
    };
    for (const auto& [text, says] : bad) {
        EXPECT_FALSE(conntrackd_filter_expression(text, expression, error)) << text;
        EXPECT_NE(error.find(says), std::string::npos) << text << ": " << error;
    }
    // Found by tests/fuzz/filter_expression_fuzz.cpp: a NUL ended the address for inet_pton, and the bytes
    // after it went into the expression, which then did not parse.
    const std::string nul_in_address("Filter {\n Address Accept { IPv4_address 192.0.2.1\0\xfc }\n}", 55);
    const std::string nul_in_protocol("Filter {\n\n Protocol Accept { TCP\0 }\n}", 37);
    EXPECT_FALSE(conntrackd_filter_expression(nul_in_address, expression, error));
    EXPECT_NE(error.find("line 2: unexpected byte 0x00"), std::string::npos) << error;
    EXPECT_FALSE(conntrackd_filter_expression(nul_in_protocol, expression, error));
    EXPECT_NE(error.find("line 3: unexpected byte 0x00"), std::string::npos) << error;
    EXPECT_TRUE(conntrackd_filter_expression("# comment \xc3\xa9\nFilter {\n Protocol Accept { TCP }\n}",
                                             expression, error))
        << error;
}

TEST(FilterBpfConfig, ReadmeKeyTableMatchesTheCode) {
    const std::string readme =
        ctsync::test::read_file(std::filesystem::path(CTSYNC_SOURCE_DIR) / "plugins/filter-bpf/README.md");
    for (const auto& key : keys()) {
        std::string escaped;
        for (char c : ctsync::core::describe_type(key)) {
            escaped += c == '|' ? std::string("\\|") : std::string(1, c);
        }
        const std::string row = "| `" + std::string(key.name) + "` | " + escaped + " | " +
                                (key.default_json ? "`" + std::string(key.default_json) + "`" : "required") +
                                " | " + key.description + " |";
        EXPECT_NE(readme.find(row + "\n"), std::string::npos) << "README lacks the row\n" << row;
    }
}

TEST(FilterBpfConfig, ABadExpressionIsAConfigErrorAtItsPath) {
    sdk::ConfigErrors errors;
    validate(sdk::PluginConfig(nlohmann::json{{"expression", "tcp and dst port"}, {"placement", "auto"}}),
             errors);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_EQ(errors[0].path, ".expression");
    EXPECT_EQ(errors[0].message,
              "column 17: expected a port 0-65535 or a range LOW-HIGH after 'port', found the end "
              "of the expression");
}

}  // namespace
}  // namespace filter_bpf::test
