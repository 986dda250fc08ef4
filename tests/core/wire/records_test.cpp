// SPDX-License-Identifier: GPL-2.0-or-later
// Wire protocol v1: every record round-trips; every truncation and every byte flip of a valid payload is
// either refused or decodes to something the decoder fully validated (never a crash, never a read past the
// end); authentication refuses forged, garbled and truncated datagrams; replay window; key files.
#include "core/wire/records.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "core/wire/seal.hpp"
#include "tests/support/process.hpp"

namespace ctsync::core::wire {
namespace {

sdk::FlowState tcp_nat() {
    sdk::FlowState f;
    f.original.family = f.reply.family = sdk::Family::kIpv4;
    f.original.protocol = f.reply.protocol = sdk::l4::kTcp;
    f.original.src.bytes = {192, 0, 2, 1};
    f.original.dst.bytes = {203, 0, 113, 9};
    f.original.src_port = 40000;
    f.original.dst_port = 21;
    f.reply.src = f.original.dst;
    f.reply.dst.bytes = {198, 51, 100, 1};
    f.reply.src_port = 21;
    f.reply.dst_port = 40000;
    f.status = 0x1be;
    f.timeout = 431999;
    f.mark = 0x42;
    f.labels[3] = 0x20;
    sdk::set_helper_name(f.helper, "ftp");
    f.snat = {true, f.reply.dst, 0};
    f.seq_original = {true, 1000, 0, 3};
    f.tcp = {3, 7, 7, 0x23, 0x23};
    f.zone = {5, sdk::Zone::kDirOriginal};
    return f;
}

sdk::FlowState sctp6() {
    sdk::FlowState f;
    f.original.family = f.reply.family = sdk::Family::kIpv6;
    f.original.protocol = f.reply.protocol = sdk::l4::kSctp;
    f.original.src.bytes = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    f.original.dst.bytes = {0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2};
    f.reply.src = f.original.dst;
    f.reply.dst = f.original.src;
    f.sctp = {3, 0xdeadbeef, 0x12345678};
    f.dccp = {1, 2, 0x0102030405060708ull};  // not meaningful for SCTP, but carried faithfully
    f.original.icmp_type = 1;                // likewise
    f.dnat = {true, f.original.src, 8080};
    f.seq_reply = {true, 5, -4, 9};
    return f;
}

sdk::Expectation expectation() {
    sdk::Expectation e;
    e.master = tcp_nat().original;
    e.expected = e.master;
    e.expected.dst_port = 50000;
    e.expected.src_port = 0;
    e.mask.family = sdk::Family::kIpv4;
    e.mask.protocol = sdk::l4::kTcp;
    e.mask.dst_port = 0xffff;
    e.mask.src.bytes = {255, 255, 255, 255};
    sdk::set_helper_name(e.helper, "ftp");
    e.flags = 1;
    e.timeout = 300;
    e.nat = {true, e.master.src, 40000};
    e.nat_direction = 1;
    const char fn[] = "nat-follow-master";
    std::copy(fn, fn + sizeof(fn) - 1, e.function.begin());
    return e;
}

std::vector<Record> all_records() {
    FlowUpdate update;
    update.flow_id = 9;
    update.fields = field::kAll;
    copy_fields(update.values, sctp6(), field::kAll);    // an update carries only its fields
    update.values.original.family = sdk::Family::kIpv6;  // (the NAT block says which family)
    FlowUpdate state_only;
    state_only.flow_id = 10;
    state_only.fields = field::kProtoState;
    state_only.values.tcp.state = 4;
    ExpectDelete del;
    del.expectation.zone = expectation().zone;
    del.expectation.master = expectation().master;
    del.expectation.expected = expectation().expected;
    return {FlowFull{1, tcp_nat()},
            FlowFull{2, sctp6()},
            update,
            state_only,
            FlowDelete{3},
            ExpectNew{expectation()},
            del,
            BulkStart{2, 7, 100000, 0},
            BulkStart{2, 8, 5, 1},
            FlowRelay{1, tcp_nat()},
            BulkProgress{2, 7, 5000, 100000},
            BulkEnd{2, 7, 100000},
            Ack{1, 99, 12345},
            Nack{1, 99, {{1, 4}, {9, 9}}},
            Alive{2, kAliveHello, 77, 100, {{1, 99, 76}, {3, 5, 0}}},
            BulkRequest{1, 42, 0},
            BulkRequest{3, 43, 1}};
}

std::vector<std::byte> encode_all(const std::vector<Record>& records) {
    std::vector<std::byte> out;
    Writer w(out);
    for (const auto& r : records) {
        encode_record(w, r);
    }
    return out;
}

TEST(WireRecords, EveryRecordRoundTrips) {
    const auto records = all_records();
    const auto bytes = encode_all(records);
    std::vector<Record> decoded;
    std::string error;
    ASSERT_TRUE(decode_records(bytes, decoded, error)) << error;
    ASSERT_EQ(decoded.size(), records.size());
    for (std::size_t i = 0; i < records.size(); ++i) {
        EXPECT_TRUE(decoded[i] == records[i]) << "record " << i;
    }
}

TEST(WireRecords, EveryTruncationIsRefused) {
    for (const auto& record : all_records()) {
        const auto bytes = encode_all({record});
        for (std::size_t n = 1; n < bytes.size(); ++n) {
            std::vector<Record> decoded;
            std::string error;
            EXPECT_FALSE(decode_records(std::span(bytes).first(n), decoded, error))
                << "record type " << static_cast<int>(bytes[0]) << " cut at " << n;
        }
    }
}

TEST(WireRecords, ByteFlipsNeverCrashAndWhatDecodesReencodesIdentically) {
    const auto bytes = encode_all(all_records());
    std::size_t refused = 0;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        for (std::uint8_t flip : {0x01, 0x80, 0xff}) {
            auto garbled = bytes;
            garbled[i] ^= std::byte{flip};
            std::vector<Record> decoded;
            std::string error;
            if (!decode_records(garbled, decoded, error)) {
                ++refused;
                EXPECT_FALSE(error.empty());
                continue;
            }
            // Accepted: then it is a valid encoding of what was decoded (nothing was skipped or guessed).
            EXPECT_EQ(encode_all(decoded), garbled) << "byte " << i;
        }
    }
    EXPECT_GT(refused, 0u);
}

TEST(WireRecords, UnknownTypeAndTrailingBytesAreRefused) {
    auto bytes = encode_all({FlowDelete{3}});
    bytes.push_back(std::byte{0});
    std::vector<Record> decoded;
    std::string error;
    EXPECT_FALSE(decode_records(bytes, decoded, error));
    std::vector<std::byte> unknown = {std::byte{99}, std::byte{0}, std::byte{0}};
    EXPECT_FALSE(decode_records(unknown, decoded, error));
    EXPECT_NE(error.find("unknown type 99"), std::string::npos) << error;
    // A delete with a zero flow id means nothing.
    auto zero = encode_all({FlowDelete{0}});
    EXPECT_FALSE(decode_records(zero, decoded, error));
}

TEST(WireRecords, ChangedFieldsAndCopyFields) {
    auto a = tcp_nat();
    auto b = a;
    EXPECT_EQ(changed_fields(a, b), 0);
    b.timeout = 5;
    EXPECT_EQ(changed_fields(a, b), field::kTimeout);
    b.tcp.state = 4;
    b.mark = 1;
    EXPECT_EQ(changed_fields(a, b), field::kTimeout | field::kProtoState | field::kMark);
    auto c = a;
    copy_fields(c, b, changed_fields(a, b));
    EXPECT_TRUE(c == b);
    b.reply.dst_port = 1;
    EXPECT_NE(changed_fields(a, b) & kNeedsFull, 0);
}

Keyring keyring(std::uint8_t fill, bool encrypt) {
    std::array<std::uint8_t, kKeyBytes> key{};
    key.fill(fill);
    return Keyring({{3, key}}, 3, encrypt);
}

TEST(WireSeal, AuthenticatesAndOptionallyEncrypts) {
    const auto payload = encode_all(all_records());
    Header h;
    h.node_id = 1;
    h.epoch = 2;
    h.packet = 3;
    for (bool encrypt : {false, true}) {
        auto sealed = keyring(1, encrypt).seal(h, payload);
        ASSERT_EQ(sealed.size(), kHeaderSize + payload.size() + kTagBytes);
        const bool plain_visible =
            std::equal(payload.begin(), payload.end(), sealed.begin() + static_cast<long>(kHeaderSize));
        EXPECT_EQ(plain_visible, !encrypt);
        Header out;
        std::vector<std::byte> opened;
        std::string reason;
        ASSERT_TRUE(keyring(1, false).open(sealed, out, opened, reason)) << reason;
        // A node that encrypts refuses plain datagrams, even authentic ones.
        EXPECT_EQ(keyring(1, true).open(sealed, out, opened, reason), encrypt);
        if (!encrypt) {
            EXPECT_EQ(reason, "not_encrypted");
        }
        EXPECT_EQ(opened, payload);
        EXPECT_EQ(out.packet, 3u);
        EXPECT_FALSE(keyring(2, false).open(sealed, out, opened, reason));
        EXPECT_EQ(reason, "bad_tag");
        for (std::size_t i = 0; i < sealed.size(); i += 7) {
            auto garbled = sealed;
            garbled[i] ^= std::byte{4};
            EXPECT_FALSE(keyring(1, false).open(garbled, out, opened, reason)) << "byte " << i;
        }
        sealed.pop_back();
        EXPECT_FALSE(keyring(1, false).open(sealed, out, opened, reason));
        EXPECT_EQ(reason, "bad_length");
    }
    std::array<std::uint8_t, kKeyBytes> other{};
    Keyring unknown({{4, other}}, 4, false);
    auto sealed = unknown.seal(h, payload);
    Header out;
    std::vector<std::byte> opened;
    std::string reason;
    EXPECT_FALSE(keyring(1, false).open(sealed, out, opened, reason));
    EXPECT_EQ(reason, "unknown_key");
}

TEST(WireSeal, ReplayWindow) {
    ReplayWindow w;
    EXPECT_FALSE(w.accept(0));
    EXPECT_TRUE(w.accept(1));
    EXPECT_FALSE(w.accept(1));
    EXPECT_TRUE(w.accept(10));
    EXPECT_TRUE(w.accept(5));  // late but inside the window
    EXPECT_FALSE(w.accept(5));
    EXPECT_TRUE(w.accept(10 + ReplayWindow::kSize));
    EXPECT_FALSE(w.accept(10));  // now below the window
    EXPECT_TRUE(w.accept(11 + ReplayWindow::kSize));
}

TEST(WireSeal, KeyFilesMustBePrivateAndWellFormed) {
    test::TempDir dir;
    auto write = [&](const std::string& name, const std::string& content, mode_t mode) {
        auto path = dir / name;
        std::ofstream(path) << content;
        ::chmod(path.c_str(), mode);
        return path;
    };
    const std::string hex(64, 'a');
    std::string error;
    EXPECT_TRUE(read_key_file(write("good", hex + "\n", 0600), error)) << error;
    EXPECT_FALSE(read_key_file(write("open", hex, 0644), error));
    EXPECT_NE(error.find("mode 0644"), std::string::npos) << error;
    EXPECT_FALSE(read_key_file(write("short", "abcd", 0600), error));
    EXPECT_NE(error.find("64 hex digits"), std::string::npos) << error;
    EXPECT_FALSE(read_key_file(write("nothex", std::string(64, 'z'), 0600), error));
    EXPECT_FALSE(read_key_file(dir / "missing", error));
    EXPECT_NE(error.find("missing"), std::string::npos) << error;
}

}  // namespace
}  // namespace ctsync::core::wire
