// SPDX-License-Identifier: GPL-2.0-or-later
// Writes the binary seed corpora of the fuzz targets into <dir>/<target>/: datagrams sealed with the fuzzers'
// test key and bare record payloads (wire_decode), receive scripts (wire_receive, format in
// wire_receive_fuzz.cpp), and conntrack/expectation messages as source-ctnetlink builds them and as the
// kernel lays out its events (netlink_codec). The text corpora are written by hand.
//   ctsync-fuzz-seeds tests/fuzz/corpus
#include <libmnl/libmnl.h>
#include <libnetfilter_conntrack/libnetfilter_conntrack.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/cache/flow_json.hpp"
#include "core/wire/records.hpp"
#include "core/wire/seal.hpp"
#include "flow_codec.hpp"
#include "tests/support/flows.hpp"

using namespace ctsync;
using namespace ctsync::core;
namespace fs = std::filesystem;

namespace {

void write_text(const fs::path& dir, const std::string& name, const std::string& text) {
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::trunc);
    out << text;
}

void write(const fs::path& dir, const std::string& name, const std::vector<std::byte>& bytes) {
    fs::create_directories(dir);
    std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

std::vector<std::byte> payload(const std::vector<wire::Record>& records, std::uint64_t seq = 0) {
    std::vector<std::byte> out;
    wire::Writer w(out);
    if (seq != 0) {
        w.u64(seq);
    }
    for (const auto& r : records) {
        wire::encode_record(w, r);
    }
    return out;
}

sdk::FlowState v6_udp_flow() {
    sdk::FlowState f = test::v6_flow(sdk::l4::kUdp);
    f.zone.id = 3;
    f.zone.directions = sdk::Zone::kDirBoth;
    return f;
}

sdk::Expectation ftp_expectation() {
    sdk::Expectation e;
    e.master = test::nated_tcp_flow(1).original;
    e.master.dst_port = 21;
    e.expected = e.master;
    e.expected.src_port = 0;
    e.expected.dst_port = 40001;
    e.mask = e.expected;
    e.mask.src.bytes.fill(0xff);
    e.mask.dst.bytes.fill(0xff);
    e.mask.src_port = 0;
    e.mask.dst_port = 0xffff;
    e.timeout = 300;
    sdk::set_helper_name(e.helper, "ftp");
    return e;
}

std::vector<wire::Record> data_records() {
    wire::FlowUpdate update;
    update.flow_id = 1;
    update.fields = wire::field::kMark | wire::field::kTimeout;
    update.values.mark = 9;
    update.values.timeout = 120;
    return {wire::FlowFull{1, test::nated_tcp_flow(1)}, wire::FlowFull{2, v6_udp_flow()}, update,
            wire::FlowDelete{2}, wire::ExpectNew{ftp_expectation()}};
}

std::vector<wire::Record> control_records() {
    wire::Nack nack;
    nack.peer = 1;
    nack.epoch = 1000;
    nack.ranges = {{2, 3}};
    wire::Alive alive;
    alive.role = 2;
    alive.flags = wire::kAliveHello;
    alive.next_seq = 4;
    alive.flows = 2;
    alive.seen = {{1, 1000, 3}};
    return {wire::Ack{1, 1000, 1}, nack, alive, wire::BulkRequest{1, 1, 0}};
}

// One chunk of a wire_receive script.
void chunk(std::vector<std::byte>& script, std::uint8_t flags, const std::vector<std::byte>& body) {
    script.push_back(static_cast<std::byte>(flags));
    script.push_back(static_cast<std::byte>(body.size() >> 8));
    script.push_back(static_cast<std::byte>(body.size()));
    script.insert(script.end(), body.begin(), body.end());
}

// A request header for `subsystem`'s NEW message; the caller builds the attributes and trims the buffer.
nlmsghdr* put_new_header(std::vector<std::byte>& buffer, std::uint8_t subsystem, std::uint8_t type,
                         sdk::Family family) {
    buffer.assign(MNL_SOCKET_BUFFER_SIZE, std::byte{0});
    auto* nlh = mnl_nlmsg_put_header(buffer.data());
    nlh->nlmsg_type = static_cast<std::uint16_t>((subsystem << 8) | type);
    nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE;
    auto* nfg = static_cast<nfgenmsg*>(mnl_nlmsg_put_extra_header(nlh, sizeof(nfgenmsg)));
    nfg->nfgen_family = static_cast<std::uint8_t>(family);
    return nlh;
}

std::vector<std::byte> netlink_flow(const sdk::FlowState& flow, ctnetlink::Purpose purpose) {
    std::vector<std::byte> buffer;
    auto* nlh = put_new_header(buffer, NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, flow.original.family);
    auto ct = ctnetlink::encode_flow(flow, purpose);
    nfct_nlmsg_build(nlh, ct.get());
    ctnetlink::append_flow_attributes(nlh, flow, purpose);
    buffer.resize(nlh->nlmsg_len);
    return buffer;
}

std::vector<std::byte> netlink_expectation(const sdk::Expectation& expectation) {
    std::vector<std::byte> buffer;
    auto* nlh =
        put_new_header(buffer, NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_NEW, expectation.master.family);
    auto exp = ctnetlink::encode_expectation(expectation);
    nfexp_nlmsg_build(nlh, exp.get());
    ctnetlink::append_expectation_attributes(nlh, expectation);
    buffer.resize(nlh->nlmsg_len);
    return buffer;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    const fs::path root = argv[1];
    std::array<std::uint8_t, wire::kKeyBytes> key{};
    key.fill(7);
    const wire::Keyring plain({{1, key}}, 1, false);
    const wire::Keyring encrypted({{1, key}}, 1, true);

    // wire_decode: sealed datagrams (plain and encrypted) and bare payloads.
    wire::Header data_header;
    data_header.type = wire::DatagramType::kData;
    data_header.node_id = 2;
    data_header.epoch = 900;
    data_header.packet = 1;
    wire::Header control_header = data_header;
    control_header.type = wire::DatagramType::kControl;
    control_header.packet = 2;
    const auto data = payload(data_records(), 1);
    const auto control = payload(control_records());
    write(root / "wire_decode", "data-sealed", plain.seal(data_header, data));
    write(root / "wire_decode", "control-sealed", plain.seal(control_header, control));
    write(root / "wire_decode", "data-encrypted", encrypted.seal(data_header, data));
    write(root / "wire_decode", "data-payload", payload(data_records()));
    write(root / "wire_decode", "control-payload", control);

    // wire_receive scripts: a backup receiving a bulk, live records, a gap, a replay and an old epoch; a
    // primary answered with ACKs, NACKs and a bulk request.
    {
        std::vector<std::byte> s{std::byte{0}};
        chunk(s, 0,
              payload({wire::BulkStart{1, 1, 2, 0}, wire::FlowFull{1, test::nated_tcp_flow(1)},
                       wire::FlowFull{2, v6_udp_flow()}, wire::BulkEnd{1, 1, 2}},
                      1));
        chunk(s, 0, payload(data_records(), 2));
        chunk(s, 0, payload({wire::FlowDelete{1}}, 4));   // 3 missing: a NACK
        chunk(s, 16, payload({wire::FlowDelete{1}}, 4));  // the same packet again: a replay
        chunk(s, 1, control);
        chunk(s, 8, payload({wire::FlowFull{5, test::nated_tcp_flow(5)}}, 1));  // an older epoch
        write(root / "wire_receive", "backup", s);
    }
    {
        std::vector<std::byte> s{std::byte{1}};
        chunk(s, 1, control);
        chunk(s, 3, payload({wire::Ack{1, 1000, 1}}));
        chunk(s, 1, payload({wire::BulkRequest{1, 2, 0}}));
        write(root / "wire_receive", "primary", s);
    }
    {
        std::vector<std::byte> s{std::byte{0}};
        chunk(s, 0,
              payload({wire::BulkStart{1, 1, 1, 4}, wire::FlowRelay{4, test::nated_tcp_flow(9)},
                       wire::BulkEnd{1, 1, 1}},
                      1));
        write(root / "wire_receive", "relay", s);
    }

    // netlink_codec: what source-ctnetlink builds for each write, for several kinds of flow.
    auto icmp = test::nated_tcp_flow(7);
    icmp.original.protocol = icmp.reply.protocol = sdk::l4::kIcmp;
    icmp.tcp = {};
    auto sctp = test::nated_tcp_flow(8);
    sctp.original.protocol = sctp.reply.protocol = sdk::l4::kSctp;
    sctp.tcp = {};
    sctp.sctp.state = 3;
    sctp.sctp.vtag_original = 0x01020304;
    sctp.sctp.vtag_reply = 0x05060708;
    int n = 0;
    for (const auto& flow : {test::nated_tcp_flow(1), v6_udp_flow(), icmp, sctp}) {
        for (auto purpose :
             {ctnetlink::Purpose::kCreate, ctnetlink::Purpose::kUpdate, ctnetlink::Purpose::kDelete}) {
            write(root / "netlink_codec", "flow-" + std::to_string(n++), netlink_flow(flow, purpose));
        }
    }
    auto two = netlink_flow(test::nated_tcp_flow(2), ctnetlink::Purpose::kCreate);
    const auto second = netlink_flow(v6_udp_flow(), ctnetlink::Purpose::kCreate);
    two.insert(two.end(), second.begin(), second.end());
    write(root / "netlink_codec", "two-flows", two);
    write(root / "netlink_codec", "expectation", netlink_expectation(ftp_expectation()));
    // flow_json and control: the JSON the daemon itself writes (dump), so the seeds read back.
    write_text(root / "flow_json", "tcp.json", to_json(test::nated_tcp_flow(1)).dump(1) + "\n");
    write_text(root / "flow_json", "udp6.json", to_json(v6_udp_flow()).dump() + "\n");
    write_text(root / "flow_json", "sctp.json", to_json(sctp).dump() + "\n");
    write_text(root / "flow_json", "expectation.json", to_json(ftp_expectation()).dump() + "\n");
    const nlohmann::json import = {{"command", "import"},
                                   {"args",
                                    {{"flows", {to_json(test::nated_tcp_flow(1)), to_json(v6_udp_flow())}},
                                     {"expectations", {to_json(ftp_expectation())}}}}};
    write_text(root / "control", "session",
               "{\"command\": \"status\"}\n" + import.dump() + "\n" +
                   "{\"command\": \"dump\", \"args\": {\"cache\": \"external\"}}\n"
                   "{\"command\": \"dump\", \"args\": {\"cache\": \"internal\"}}\n"
                   "{\"command\": \"import\", \"args\": {\"replace\": true, \"flows\": []}}\n"
                   "{\"command\": \"commit\", \"args\": {}}\n"
                   "{\"command\": \"flush\", \"args\": {\"target\": \"external\"}}\n"
                   "{\"command\": \"resync\"}\n{\"command\": \"nope\"}\nnot json\n");
    std::printf("seeds written under %s\n", root.c_str());
    return 0;
}
