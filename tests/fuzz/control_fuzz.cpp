// SPDX-License-Identifier: GPL-2.0-or-later
// The control protocol as ctsyncd serves it: each input line is one request, dispatched to the daemon's own
// table commands (dump, import, commit, flush, resync, status) on tables without a kernel, so that imports
// fill the external cache and later requests dump, commit or flush it. Every reply is one JSON object with a
// boolean "ok" and, when false, an error message; the tables stay consistent.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "core/control/server.hpp"
#include "core/daemon/tables.hpp"
#include "core/metrics/registry.hpp"
#include "tests/fuzz/fuzz_support.hpp"

using namespace ctsync;
using namespace ctsync::core;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    boost::asio::io_context io;
    MetricsRegistry metrics;
    fuzz::NullLogger log;
    Tables tables(metrics, log, nullptr, {});
    control::Server server(io, metrics);
    // Staged as in the daemon (dispatch runs every stage here).
    server.add_staged("dump", [&](nlohmann::json args) { return tables.dump_staged(args); });
    server.add_staged("import", [&](nlohmann::json args) { return tables.import_staged(std::move(args)); });
    server.add_staged("commit", [&](nlohmann::json args) { return tables.commit_staged(args); });
    server.add("flush", [&](const nlohmann::json& args) { return tables.flush(args); });
    server.add("resync", [&](const nlohmann::json& args) { return tables.resync(args); });
    server.add("status", [&](const nlohmann::json&) { return tables.summary(); });

    const auto text = fuzz::as_text(data, size);
    std::size_t start = 0;
    while (start < text.size()) {
        std::size_t end = text.find('\n', start);
        if (end == std::string_view::npos) {
            end = text.size();
        }
        const std::string reply = server.dispatch(std::string(text.substr(start, end - start)));
        CTSYNC_FUZZ_CHECK(!reply.empty() && reply.back() == '\n');
        const auto j = nlohmann::json::parse(reply, nullptr, false);
        CTSYNC_FUZZ_CHECK(j.is_object() && j.contains("ok") && j["ok"].is_boolean());
        if (!j["ok"].get<bool>()) {
            CTSYNC_FUZZ_CHECK(j.contains("error") && j["error"].is_string() &&
                              !j["error"].get<std::string>().empty());
        }
        start = end + 1;
    }
    tables.external().for_each_flow(
        [&](const sdk::FlowState& f) { CTSYNC_FUZZ_CHECK(tables.external().find(f.key()) == &f); });
    return 0;
}
