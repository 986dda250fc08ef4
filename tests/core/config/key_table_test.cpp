// SPDX-License-Identifier: GPL-2.0-or-later
#include "core/config/key_table.hpp"

#include <gtest/gtest.h>

namespace ctsync::core {
namespace {

using nlohmann::json;
using sdk::ConfigKey;
using sdk::KeyType;

const ConfigKey kKeys[] = {
    {.name = "flag", .type = KeyType::kBool, .default_json = "false", .description = "d"},
    {.name = "port",
     .type = KeyType::kInteger,
     .required = true,
     .description = "UDP port",
     .min = 1,
     .max = 65535},
    {.name = "ratio",
     .type = KeyType::kNumber,
     .default_json = "0.5",
     .description = "d",
     .min = 0,
     .max = 1},
    {.name = "iface", .type = KeyType::kString, .default_json = "\"eth0\"", .description = "d"},
    {.name = "note", .type = KeyType::kString, .default_json = "\"\"", .description = "d", .min = 0},
    {.name = "mode",
     .type = KeyType::kEnum,
     .default_json = "\"reliable\"",
     .description = "d",
     .choices = "reliable|alarm|best-effort"},
    {.name = "key_file", .type = KeyType::kPath, .description = "d"},
    {.name = "group", .type = KeyType::kAddress, .description = "d"},
    {.name = "peers", .type = KeyType::kStringList, .default_json = "[]", .description = "d"},
    {.name = "extra", .type = KeyType::kObject, .default_json = "{}", .description = "d"},
    {.name = "links", .type = KeyType::kList, .default_json = "[]", .description = "d"},
};

ConfigIssues check(const json& input, json* out = nullptr) {
    ConfigIssues issues;
    json values = validate_against(input, kKeys, ".transports[0].config", issues);
    if (out != nullptr) {
        *out = values;
    }
    return issues;
}

TEST(KeyTable, FillsDefaultsAndKeepsGivenValues) {
    json out;
    auto issues = check({{"port", 3780}, {"mode", "alarm"}}, &out);
    EXPECT_TRUE(issues.empty());
    EXPECT_EQ(out["port"], 3780);
    EXPECT_EQ(out["mode"], "alarm");
    EXPECT_EQ(out["flag"], false);
    EXPECT_EQ(out["iface"], "eth0");
    EXPECT_TRUE(out["key_file"].is_null());
    EXPECT_EQ(out["peers"], json::array());
}

TEST(KeyTable, ReportsEveryProblemWithItsPath) {
    json input = {{"prot", 1},          {"flag", "yes"},     {"ratio", 2},
                  {"iface", ""},        {"mode", "fast"},    {"key_file", "keys/psk"},
                  {"group", "1.2.3"},   {"peers", {"a", 3}}, {"extra", json::array()},
                  {"links", {{"a", 1}}}};
    auto issues = check(input);
    ConfigIssues expected = {
        {".transports[0].config.prot", "unknown key (did you mean 'port'?)"},
        {".transports[0].config.flag", "expected bool, found string \"yes\""},
        {".transports[0].config.port", "missing required key (integer in [1, 65535]: UDP port)"},
        {".transports[0].config.ratio", "2 is out of range: number in [0, 1]"},
        {".transports[0].config.iface", "must not be empty"},
        {".transports[0].config.mode", "'fast' is not one of reliable|alarm|best-effort"},
        {".transports[0].config.key_file", "'keys/psk' is not an absolute path"},
        {".transports[0].config.group", "'1.2.3' is not an IPv4 or IPv6 address"},
        {".transports[0].config.peers[1]", "expected string, found number 3"},
        {".transports[0].config.extra", "expected object, found array []"},
        {".transports[0].config.links", "expected array, found object {\"a\":1}"},
    };
    EXPECT_EQ(issues, expected);
}

TEST(KeyTable, IntegerRefusesFractionsBooleansAndOutOfRange) {
    EXPECT_EQ(check({{"port", 1.5}}).at(0).message, "expected integer, found number 1.5");
    EXPECT_EQ(check({{"port", true}}).at(0).message, "expected integer, found boolean true");
    EXPECT_EQ(check({{"port", 0}}).at(0).message, "0 is out of range: integer in [1, 65535]");
    EXPECT_EQ(check({{"port", 65536}}).at(0).message, "65536 is out of range: integer in [1, 65535]");
    EXPECT_EQ(check({{"port", -1}}).at(0).message, "-1 is out of range: integer in [1, 65535]");
    EXPECT_TRUE(check({{"port", 65535}}).empty());
}

TEST(KeyTable, AcceptsIpv6AndEmptyStringWhenMinIsZero) {
    EXPECT_TRUE(check({{"port", 1}, {"group", "ff02::1:3"}, {"note", ""}}).empty());
}

TEST(KeyTable, NullMeansUnsetForOptionalKeysButNotForRequiredOnes) {
    EXPECT_TRUE(check({{"port", 1}, {"key_file", nullptr}}).empty());
    auto issues = check({{"port", nullptr}});
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(issues[0].path, ".transports[0].config.port");
}

TEST(KeyTable, NonObjectInputIsOneIssue) {
    auto issues = check(json::array({1, 2}));
    ASSERT_EQ(issues.size(), 1u);
    EXPECT_EQ(format_issue(issues[0]), ".transports[0].config: expected object, found array [1,2]");
}

TEST(KeyTable, SuggestsOnlyCloseNames) {
    EXPECT_EQ(suggest("grop", kKeys), "group");
    EXPECT_EQ(suggest("completely_unrelated", kKeys), "");
}

TEST(KeyTable, DescribesTypes) {
    EXPECT_EQ(describe_type(kKeys[1]), "integer in [1, 65535]");
    EXPECT_EQ(describe_type(kKeys[5]), "one of reliable|alarm|best-effort");
    EXPECT_EQ(describe_type(kKeys[8]), "string list");
}

TEST(KeyTable, ChecksTablesThemselves) {
    const ConfigKey bad[] = {
        {.name = "a", .type = KeyType::kBool, .default_json = "1", .description = "d"},
        {.name = "a", .type = KeyType::kBool, .description = "d"},
        {.name = "b", .type = KeyType::kInteger, .default_json = "{oops", .description = "d"},
        {.name = "c", .type = KeyType::kString, .description = ""},
    };
    ConfigIssues expected = {
        {"a", "default does not satisfy the key: expected bool, found number 1"},
        {"a", "key declared twice"},
        {"b", "default '{oops' is not valid JSON"},
        {"c", "key without a description"},
    };
    EXPECT_EQ(check_key_table(bad), expected);
    EXPECT_TRUE(check_key_table(kKeys).empty());
}

}  // namespace
}  // namespace ctsync::core
