// SPDX-License-Identifier: GPL-2.0-or-later
// The man pages and the bash completion against the code: ctsyncd.json(5) holds every key of every key
// table (it is generated from them), ctsyncd(8) and ctsyncctl(8) every option and subcommand `--help` lists,
// groff renders them without a warning, and the completion offers what ctsyncctl accepts.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/dist/dist_test_util.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
namespace fs = std::filesystem;

const fs::path kMan = fs::path(CTSYNC_BINARY_DIR) / "dist/man";
const fs::path kCompletion = fs::path(CTSYNC_SOURCE_DIR) / "dist/bash-completion/ctsyncctl";

// roff source with the escapes this project's pages use undone, for searching.
std::string plain(const fs::path& page) {
    std::string text = read_file(page);
    text = std::regex_replace(text, std::regex(R"(\\-)"), "-");
    text = std::regex_replace(text, std::regex(R"(\\e)"), "\\");
    text = std::regex_replace(text, std::regex(R"(\\f[BIR])"), "");
    text = std::regex_replace(text, std::regex(R"(\\&)"), "");
    return text;
}

// Every "--long" option and every subcommand name in a --help text.
std::set<std::string> help_words(const std::string& help, bool subcommands) {
    std::set<std::string> out;
    std::smatch m;
    std::string::const_iterator from = help.begin();
    std::regex option(R"((?:^|[ ,])(--[a-z][a-z-]+|-[a-zA-Z])\b)");
    while (std::regex_search(from, help.cend(), m, option)) {
        out.insert(m[1]);
        from = m[0].second;
    }
    if (subcommands) {
        auto at = help.find("Subcommands:");
        std::regex sub(R"(\n  ([a-z][a-z-]+) )");
        from = help.begin() + static_cast<std::ptrdiff_t>(at);
        while (at != std::string::npos && std::regex_search(from, help.cend(), m, sub)) {
            out.insert(m[1]);
            from = m[0].second;
        }
    }
    return out;
}

TEST(ManPages, ConfigPageHoldsEveryKeyOfEveryTable) {
    const std::string page = plain(kMan / "ctsyncd.json.5");
    auto core = nlohmann::json::parse(run({kCtsyncd, "--describe", "core", "--json"}).out);
    std::size_t keys = 0;
    for (const auto& [section, table] : core.items()) {
        EXPECT_NE(page.find(".SS " + section + "\n"), std::string::npos) << section;
        for (const auto& key : table) {
            EXPECT_THAT(page, HasSubstr(".B " + key["name"].get<std::string>() + "\n" +
                                        key["accepts"].get<std::string>()))
                << section << " " << key["name"];
            ++keys;
        }
    }
    for (const auto& id : packaged_plugins()) {
        auto described = nlohmann::json::parse(run({kCtsyncd, "--describe", id, "--json"}).out);
        ASSERT_NE(page.find(".SS " + id + " ("), std::string::npos) << id;
        const auto section = page.substr(page.find(".SS " + id + " ("));
        for (const auto& key : described["keys"]) {
            EXPECT_THAT(section, HasSubstr(".B " + key["name"].get<std::string>() + "\n"))
                << id << " " << key["name"];
            EXPECT_THAT(section, HasSubstr(key["description"].get<std::string>().substr(0, 30))) << id;
            ++keys;
        }
    }
    EXPECT_GT(keys, 80u);
}

TEST(ManPages, CommandPagesDocumentEveryOptionAndSubcommand) {
    const std::string ctsyncd = plain(kMan / "ctsyncd.8");
    for (const auto& word : help_words(run({kCtsyncd, "--help"}).out, false)) {
        EXPECT_NE(ctsyncd.find(word), std::string::npos) << "ctsyncd(8) lacks " << word;
    }
    const std::string ctl_help = run({kCtsyncctl, "--help"}).out;
    const std::string ctsyncctl = plain(kMan / "ctsyncctl.8");
    const auto words = help_words(ctl_help, true);
    EXPECT_GT(words.size(), 25u);
    for (const auto& word : words) {
        // An option anywhere ("-C,--config"), a subcommand as a tagged paragraph's head.
        const bool found = word[0] == '-' ? ctsyncctl.find(word) != std::string::npos
                                          : ctsyncctl.find(".TP\n.B " + word) != std::string::npos ||
                                                ctsyncctl.find(".TP\n.BI " + word) != std::string::npos;
        EXPECT_TRUE(found) << "ctsyncctl(8) lacks " << word;
    }
}

TEST(ManPages, GroffRendersThemWithoutWarnings) {
    for (const char* page : {"ctsyncd.8", "ctsyncctl.8", "ctsyncd.json.5"}) {
        auto r = run({"groff", "-man", "-Tutf8", "-ww", "-z", (kMan / page).string()});
        EXPECT_EQ(r.exit_code, 0) << page << r.err;
        EXPECT_EQ(r.err, "") << page;
    }
}

// What the completion offers for the words typed so far (the last one being completed).
std::vector<std::string> complete(const std::vector<std::string>& words) {
    std::string array;
    for (const auto& w : words) {
        array += "'" + w + "' ";
    }
    const std::string script = "source '" + kCompletion.string() + "'; COMP_WORDS=(" + array +
                               "); COMP_CWORD=" + std::to_string(words.size() - 1) +
                               "; _ctsyncctl; printf '%s\\n' \"${COMPREPLY[@]}\"";
    auto r = run({"bash", "--norc", "--noprofile", "-c", script});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start < r.out.size()) {
        auto end = r.out.find('\n', start);
        if (end > start) {
            out.push_back(r.out.substr(start, end - start));
        }
        start = end + 1;
    }
    return out;
}

TEST(BashCompletion, OffersWhatCtsyncctlAccepts) {
    using ::testing::Contains;
    using ::testing::UnorderedElementsAre;
    EXPECT_THAT(complete({"ctsyncctl", "st"}), UnorderedElementsAre("status", "stats"));
    EXPECT_THAT(complete({"ctsyncctl", "stats", "--p"}), UnorderedElementsAre("--prometheus"));
    EXPECT_THAT(complete({"ctsyncctl", "flush", ""}), UnorderedElementsAre("internal", "external", "kernel"));
    EXPECT_THAT(complete({"ctsyncctl", "role", ""}), UnorderedElementsAre("primary", "backup"));
    EXPECT_THAT(complete({"ctsyncctl", "-C", "/etc/x.json", "ro"}), UnorderedElementsAre("role"));
    EXPECT_THAT(complete({"ctsyncctl", "-s", "ru"}), UnorderedElementsAre("runtime"));
    EXPECT_THAT(complete({"ctsyncctl", "-c", ""}), UnorderedElementsAre("ct", "expect"));
    // Every subcommand and flag --help lists is offered.
    const auto help = run({kCtsyncctl, "--help"}).out;
    auto subs = complete({"ctsyncctl", ""});
    auto flags = complete({"ctsyncctl", "-"});
    for (const auto& word : help_words(help, true)) {
        if (word == "-d" || word == "-x") {
            continue;  // conntrackd's flags ctsyncctl refuses (daemon mode, XML): not offered
        }
        if (word[0] == '-') {
            EXPECT_THAT(flags, Contains(word)) << word;
        } else {
            EXPECT_THAT(subs, Contains(word)) << word;
        }
    }
}

}  // namespace
}  // namespace ctsync::test
