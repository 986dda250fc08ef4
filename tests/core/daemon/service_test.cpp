// SPDX-License-Identifier: GPL-2.0-or-later
// ctsyncd as a service: the sd_notify protocol (READY, STATUS, WATCHDOG, STOPPING) seen by a socket playing
// systemd's NOTIFY_SOCKET, the keep-alives stopping while the event loop is stuck (a fixture plugin blocks
// it), the Prometheus metrics endpoint scraped over HTTP, and the log targets' config checks.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>

#include <algorithm>
#include <set>

#include "core/metrics/http_endpoint.hpp"
#include "tests/core/daemon/daemon_test_util.hpp"
#include "tests/support/notify_socket.hpp"

namespace ctsync::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::Not;

// A TCP port on 127.0.0.1 nobody listens on right now.
int free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// Sends `request` as is and returns everything the server answers until it closes (bounded: 5 s).
std::string http(int port, const std::string& request) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(fd);
        return "connect failed";
    }
    [[maybe_unused]] auto sent = ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
    std::string out;
    char buffer[65536];
    ssize_t n;
    while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) {
        out.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

std::string body_of(const std::string& response) {
    auto at = response.find("\r\n\r\n");
    return at == std::string::npos ? std::string() : response.substr(at + 4);
}

TEST(Service, ReadyAtOnceWithoutASourceThenStoppingOnShutdown) {
    TempDir dir;
    NotifySocket notify(dir / "notify.sock");
    auto file = write_config(dir.path(), instance_config(dir.path(), 1));
    Process daemon({kCtsyncd, "-C", file.string()}, {{"NOTIFY_SOCKET", notify.path().string()}});
    ASSERT_TRUE(notify.collect(10s, [](const auto& m) { return m.has("READY=1"); })) << daemon.err();
    const auto& ready = notify.messages().back();
    EXPECT_THAT(ready.value("STATUS"),
                HasSubstr("INIT: 0 flows in the internal cache, 0 in the external cache"));
    EXPECT_EQ(metric(ctl_json(file, "stats"), "daemon.ready"), 1);
    ::kill(daemon.pid(), SIGTERM);
    EXPECT_TRUE(notify.collect(10s, [](const auto& m) { return m.has("STOPPING=1"); }));
    EXPECT_EQ(daemon.wait(10s), 0);
    // No watchdog asked for, none sent.
    for (const auto& m : notify.messages()) {
        EXPECT_FALSE(m.has("WATCHDOG=1")) << m.text;
    }
}

TEST(Service, WatchdogKeepAlivesComeFromTheEventLoopAndStopWhileItIsStuck) {
    TempDir dir;
    NotifySocket notify(dir / "notify.sock");
    auto config = instance_config(dir.path(), 1);
    config["daemon"]["plugin_dirs"] = {(kFixtures / "stall").string()};
    // 1.5 s after start the fixture blocks the loop for 2.5 s: longer than WatchdogSec (1 s).
    config["filters"] = {
        {{"plugin", "filter-stall-fixture"}, {"config", {{"after_ms", 1500}, {"stall_ms", 2500}}}}};
    auto file = write_config(dir.path(), config);
    Process daemon({kCtsyncd, "-C", file.string()},
                   {{"NOTIFY_SOCKET", notify.path().string()}, {"WATCHDOG_USEC", "1000000"}});
    const auto started = NotifySocket::Clock::now();
    notify.collect(6s);
    std::vector<NotifySocket::Clock::time_point> keepalives;
    for (const auto& m : notify.messages()) {
        if (m.has("WATCHDOG=1")) {
            keepalives.push_back(m.at);
        }
    }
    ASSERT_GE(keepalives.size(), 6u) << daemon.err();
    // Every 500 ms (half of WatchdogSec) before the stall...
    auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
    std::vector<long> gaps;
    for (std::size_t i = 1; i < keepalives.size(); ++i) {
        gaps.push_back(ms(keepalives[i] - keepalives[i - 1]));
    }
    auto longest = std::max_element(gaps.begin(), gaps.end());
    // ...none for as long as the loop was stuck (2.5 s: systemd would have killed the daemon after 1 s)...
    EXPECT_GE(*longest, 2000) << "keep-alives went on while the event loop was blocked";
    const auto stall_at = ms(keepalives[static_cast<std::size_t>(longest - gaps.begin())] - started);
    EXPECT_GE(stall_at, 1000);
    // ...and every other gap is the regular half interval.
    for (std::size_t i = 0; i < gaps.size(); ++i) {
        if (&gaps[i] != &*longest) {
            EXPECT_LE(gaps[i], 900) << "gap " << i;
        }
    }
    // After the stall, the loop runs and keep-alives resume.
    EXPECT_GT(ms(keepalives.back() - started), stall_at + 2000);
    auto stats = ctl_json(file, "stats");
    EXPECT_EQ(metric(stats, "daemon.watchdog_usec"), 1000000);
    EXPECT_GE(metric(stats, "daemon.watchdog_keepalives"), static_cast<std::int64_t>(keepalives.size()));
    EXPECT_EQ(daemon.terminate(), 0);
}

TEST(Metrics, EndpointServesEveryMetricInThePrometheusFormat) {
    TempDir dir;
    const int port = free_port();
    auto config = instance_config(dir.path(), 7);
    config["daemon"]["metrics"] = {{"listen", fmt::format("127.0.0.1:{}", port)}};
    config["filters"] = {{{"plugin", "filter-fixture"}, {"name", "edge"}, {"config", {{"label", "x"}}}}};
    auto file = write_config(dir.path(), config);
    auto daemon = start_daemon(file);

    const std::string response = http(port, "GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    ASSERT_THAT(response, HasSubstr("HTTP/1.1 200 OK\r\n"));
    EXPECT_THAT(response, HasSubstr("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    const std::string body = body_of(response);
    EXPECT_THAT(body, HasSubstr("ctsync_info{version=\""));
    EXPECT_THAT(body, HasSubstr("node_id=\"7\",node_name=\"fw7\"} 1\n"));
    EXPECT_THAT(body, HasSubstr("# TYPE ctsync_control_requests_total counter\n"));
    EXPECT_THAT(body, HasSubstr("# TYPE ctsync_failover_role gauge\n"));
    // A plugin's metric: its plugin id in the name, the instance as a label.
    EXPECT_THAT(body, HasSubstr("# TYPE ctsync_filter_fixture_evaluated_total counter\n"
                                "ctsync_filter_fixture_evaluated_total{instance=\"edge\"} 0\n"));
    // Every metric `ctsyncctl stats` lists is exposed, once, with HELP and TYPE.
    auto stats = ctl_json(file, "stats");
    ASSERT_TRUE(stats.is_array());
    for (const auto& m : stats) {
        std::string name = m["name"];
        std::string family;
        if (name.rfind("edge.", 0) == 0) {
            family = "ctsync_filter_fixture_" + name.substr(5);
        } else {
            family = "ctsync_" + name;
        }
        std::replace(family.begin(), family.end(), '.', '_');
        std::replace(family.begin(), family.end(), '-', '_');
        if (m["kind"] == "counter") {
            family += "_total";
        }
        EXPECT_THAT(body, HasSubstr("# HELP " + family + " ")) << name;
        EXPECT_THAT(body, HasSubstr("# TYPE " + family + " " + m["kind"].get<std::string>() + "\n")) << name;
    }
    // Each sample line is "name[{labels}] integer".
    std::set<std::string> series;
    std::size_t start = 0;
    while (start < body.size()) {
        auto end = body.find('\n', start);
        std::string line = body.substr(start, end - start);
        start = end + 1;
        if (line.empty() || line[0] == '#') {
            continue;
        }
        auto space = line.rfind(' ');
        ASSERT_NE(space, std::string::npos) << line;
        EXPECT_TRUE(series.insert(line.substr(0, space)).second) << "twice: " << line;
        EXPECT_NO_THROW((void)std::stoll(line.substr(space + 1))) << line;
    }
    EXPECT_GT(series.size(), 20u);
    // The endpoint counts itself.
    http(port, "GET /metrics HTTP/1.0\r\n\r\n");
    EXPECT_GE(metric(ctl_json(file, "stats"), "metrics.http_requests"), 2);
    // ctsyncctl prints the same text.
    auto ctl = run({kCtsyncctl, "-C", file.string(), "stats", "--prometheus"});
    EXPECT_EQ(ctl.exit_code, 0);
    EXPECT_THAT(ctl.out, HasSubstr("# TYPE ctsync_filter_fixture_evaluated_total counter\n"));
    EXPECT_EQ(daemon->terminate(), 0);
}

TEST(Metrics, EndpointRefusesWhatIsNotAScrape) {
    TempDir dir;
    const int port = free_port();
    auto config = instance_config(dir.path(), 1);
    config["daemon"]["metrics"] = {{"listen", fmt::format("127.0.0.1:{}", port)}};
    auto file = write_config(dir.path(), config);
    auto daemon = start_daemon(file);
    EXPECT_THAT(http(port, "GET /other HTTP/1.1\r\n\r\n"), HasSubstr("HTTP/1.1 404 Not Found"));
    EXPECT_THAT(http(port, "POST /metrics HTTP/1.1\r\n\r\n"), HasSubstr("HTTP/1.1 405 Method Not Allowed"));
    EXPECT_THAT(http(port, "nonsense\r\n\r\n"), HasSubstr("HTTP/1.1 400 Bad Request"));
    EXPECT_THAT(http(port, "GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a')),
                HasSubstr("HTTP/1.1 431"));
    auto head = http(port, "HEAD /metrics HTTP/1.1\r\n\r\n");
    EXPECT_THAT(head, HasSubstr("HTTP/1.1 200 OK"));
    EXPECT_EQ(body_of(head), "");
    auto stats = ctl_json(file, "stats");
    EXPECT_EQ(metric(stats, "metrics.http_bad_requests"), 4);
    // The daemon is unharmed.
    EXPECT_THAT(http(port, "GET /metrics HTTP/1.1\r\n\r\n"), HasSubstr("HTTP/1.1 200 OK"));
    EXPECT_EQ(daemon->terminate(), 0);
}

TEST(Metrics, ListenAddressProblemsNameTheKeyOrStopStartUp) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    for (const char* bad : {"127.0.0.1", "localhost:9469", "127.0.0.1:0", "::1:9469", "[::1]:99999"}) {
        config["daemon"]["metrics"] = {{"listen", bad}};
        auto file = write_config(dir.path(), config);
        auto r = run({kCtsyncd, "--check-config", file.string()});
        EXPECT_EQ(r.exit_code, 2) << bad;
        EXPECT_THAT(r.err, HasSubstr(".daemon.metrics.listen: ")) << bad;
    }
    config["daemon"]["metrics"] = {{"listen", "[::1]:9469"}, {"address", "x"}};
    auto r = run({kCtsyncd, "--check-config", write_config(dir.path(), config).string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(".daemon.metrics.address"));
    // A port someone else holds: start-up fails, saying which.
    int holder = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    ::listen(holder, 1);
    socklen_t len = sizeof(addr);
    ::getsockname(holder, reinterpret_cast<sockaddr*>(&addr), &len);
    config["daemon"]["metrics"] = {{"listen", fmt::format("127.0.0.1:{}", ntohs(addr.sin_port))}};
    auto taken = run({kCtsyncd, "-C", write_config(dir.path(), config).string()}, 20s);
    ::close(holder);
    EXPECT_EQ(taken.exit_code, 1);
    EXPECT_THAT(taken.err,
                HasSubstr(fmt::format("cannot listen for metrics on 127.0.0.1:{}: Address already in use",
                                      ntohs(addr.sin_port))));
}

TEST(Logging, TargetsAreCheckedAgainstTheFileKey) {
    TempDir dir;
    auto config = instance_config(dir.path(), 1);
    config["daemon"]["log"] = {{"target", "file"}};
    auto r = run({kCtsyncd, "--check-config", write_config(dir.path(), config).string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(".daemon.log.target: \"file\" needs .daemon.log.file"));
    config["daemon"]["log"] = {{"target", "journal"}, {"file", (dir / "x.log").string()}};
    r = run({kCtsyncd, "--check-config", write_config(dir.path(), config).string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(".daemon.log.file: is set, but .daemon.log.target is \"journal\""));
    config["daemon"]["log"] = {{"target", "console"}};
    r = run({kCtsyncd, "--check-config", write_config(dir.path(), config).string()});
    EXPECT_EQ(r.exit_code, 2);
    EXPECT_THAT(r.err, HasSubstr(".daemon.log.target"));
    // syslog: the daemon runs and logs nothing to standard error.
    config["daemon"]["log"] = {{"target", "syslog"}};
    auto file = write_config(dir.path(), config);
    auto daemon = start_daemon(file);
    EXPECT_EQ(daemon->terminate(), 0);
    EXPECT_THAT(daemon->err(), Not(HasSubstr("event=started")));
}

}  // namespace
}  // namespace ctsync::test
