// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/control/protocol.hpp"

#include <gtest/gtest.h>

namespace ctsync::core::control {
namespace {

TEST(ControlProtocol, ParsesRequestWithAndWithoutArgs) {
    std::string error;
    auto a = parse_request(R"({"command":"status"})", error);
    ASSERT_TRUE(a) << error;
    EXPECT_EQ(a->command, "status");
    EXPECT_TRUE(a->args.empty());
    auto b = parse_request(R"({"command":"dump","args":{"cache":"external"}})", error);
    ASSERT_TRUE(b) << error;
    EXPECT_EQ(b->args["cache"], "external");
}

TEST(ControlProtocol, RoundTripsThroughEncoding) {
    std::string error;
    Request request{"stats", {{"json", true}}};
    std::string line = encode_request(request);
    ASSERT_EQ(line.back(), '\n');
    line.pop_back();
    auto parsed = parse_request(line, error);
    ASSERT_TRUE(parsed) << error;
    EXPECT_EQ(parsed->command, "stats");
    EXPECT_EQ(parsed->args, request.args);
}

struct BadRequest {
    std::string line;
    std::string error;
};

class ControlProtocolBad : public ::testing::TestWithParam<BadRequest> {};

TEST_P(ControlProtocolBad, IsRefusedWithReason) {
    std::string error;
    EXPECT_FALSE(parse_request(GetParam().line, error));
    EXPECT_EQ(error, GetParam().error);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, ControlProtocolBad,
    ::testing::Values(BadRequest{"status", "request is not valid JSON"},
                      BadRequest{"", "request is not valid JSON"},
                      BadRequest{"[1]", "request must be a JSON object"},
                      BadRequest{R"({"cmd":"status"})", "unknown request key 'cmd'"},
                      BadRequest{R"({"command":7})", "request needs a non-empty string \"command\""},
                      BadRequest{R"({"command":""})", "request needs a non-empty string \"command\""},
                      BadRequest{R"({"command":"x","args":[]})", "\"args\" must be an object"},
                      BadRequest{std::string(kMaxLineBytes + 1, ' '), "request longer than 65536 bytes"}),
    [](const ::testing::TestParamInfo<BadRequest>& param) { return "case" + std::to_string(param.index); });

TEST(ControlProtocol, NullArgsAreSentAsAnEmptyObject) {
    std::string error;
    std::string line = encode_request(Request{"status", {}});
    line.pop_back();
    auto parsed = parse_request(line, error);
    ASSERT_TRUE(parsed) << error;
    EXPECT_TRUE(parsed->args.is_object());
}

TEST(ControlProtocol, ErrorRepliesSurviveInvalidUtf8) {
    std::string reply = encode_error(std::string("bad \xff byte"));
    auto parsed = nlohmann::json::parse(reply);
    EXPECT_FALSE(parsed["ok"].get<bool>());
}

}  // namespace
}  // namespace ctsync::core::control
