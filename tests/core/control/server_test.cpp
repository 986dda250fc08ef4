// SPDX-License-Identifier: GPL-2.0-or-later
// The control server on a real unix socket, driven by the real client, on an event loop thread.
#include "core/control/server.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <future>
#include <thread>

#include "core/control/client.hpp"
#include "tests/support/process.hpp"

namespace ctsync::core::control {
namespace {

using namespace std::chrono_literals;

class ControlServerTest : public ::testing::Test {
  protected:
    void SetUp() override {
        server_ = std::make_unique<Server>(io_, metrics_);
        server_->add("echo", [](const nlohmann::json& args) { return args; });
        server_->add("fail", [](const nlohmann::json&) -> nlohmann::json {
            throw std::runtime_error("external cache is empty");
        });
        // Staged: the work waits until the test releases it, and says which thread each stage ran on.
        server_->add_staged("slow", [this](nlohmann::json args) -> Work {
            handler_thread_ = std::this_thread::get_id();
            return [this, args] {
                work_thread_ = std::this_thread::get_id();
                release_.wait();
                if (args.contains("throw")) {
                    throw std::invalid_argument("the work refused it");
                }
                return Outcome{{}, [this, args]() -> nlohmann::json {
                                   finish_thread_ = std::this_thread::get_id();
                                   return {{"size", args.dump().size()}};
                               }};
            };
        });
        server_->add_staged(
            "refuse", [](nlohmann::json) -> Work { throw std::invalid_argument("refused on the loop"); });
        server_->set_idle_timeout(300ms);
        server_->set_max_request_bytes(4 * kParseOnLoopBytes);  // room for lines parsed off the loop
        ASSERT_EQ(server_->listen(socket_), "");
        thread_ = std::thread([this] { io_.run(); });
    }
    void TearDown() override {
        if (!released_) {
            promise_.set_value();
        }
        boost::asio::post(io_, [this] { server_->close(); });
        io_.stop();
        thread_.join();
    }
    std::int64_t metric(const std::string& name) {
        for (const auto& m : metrics_.snapshot()) {
            if (m.name == name) {
                return m.value;
            }
        }
        return -1;
    }
    // Sends raw bytes and returns what comes back until the server closes or 2 s pass.
    std::string raw_exchange(const std::string& bytes) {
        int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, socket_.c_str(), sizeof(address.sun_path) - 1);
        EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
        timeval tv{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        std::size_t sent = 0;
        while (sent < bytes.size()) {
            ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
            if (n <= 0) {
                break;
            }
            sent += static_cast<std::size_t>(n);
        }
        std::string in;
        char buffer[4096];
        ssize_t n;
        while ((n = ::recv(fd, buffer, sizeof(buffer), 0)) > 0) {
            in.append(buffer, static_cast<std::size_t>(n));
        }
        ::close(fd);
        return in;
    }

    test::TempDir dir_;
    std::filesystem::path socket_ = dir_ / "ctl.sock";
    boost::asio::io_context io_;
    MetricsRegistry metrics_;
    std::unique_ptr<Server> server_;
    std::thread thread_;
    std::promise<void> promise_;
    std::shared_future<void> release_ = promise_.get_future().share();
    bool released_ = false;
    std::atomic<std::thread::id> handler_thread_, work_thread_, finish_thread_;
};

TEST_F(ControlServerTest, AnswersRequestsAndCountsThem) {
    auto reply = call(socket_, {"echo", {{"a", 1}}}, 2s);
    ASSERT_TRUE(reply.ok) << reply.error;
    EXPECT_EQ(reply.result["a"], 1);
    EXPECT_EQ(metric("control.requests"), 1);
}

TEST_F(ControlServerTest, SocketIsNotWorldAccessible) {
    struct stat st {};
    ASSERT_EQ(::stat(socket_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0660u);
}

TEST_F(ControlServerTest, CommandFailureIsAnErrorReply) {
    auto reply = call(socket_, {"fail", {}}, 2s);
    EXPECT_FALSE(reply.ok);
    EXPECT_FALSE(reply.transport_error);
    EXPECT_EQ(reply.error, "external cache is empty");
    EXPECT_EQ(metric("control.failed_requests"), 1);
}

TEST_F(ControlServerTest, UnknownCommandListsKnownOnes) {
    auto reply = call(socket_, {"reboot", {}}, 2s);
    EXPECT_EQ(reply.error, "unknown command 'reboot' (known: echo, fail, refuse, slow)");
}

// A whole-table command must not stall the loop: while its work runs (here: blocked until released), other
// connections are answered; its last step runs on the loop again.
TEST_F(ControlServerTest, StagedWorkRunsOffTheLoopWhileOtherRequestsAreAnswered) {
    const std::string big(2 * kParseOnLoopBytes, 'x');  // parsed off the loop too
    std::future<Reply> slow = std::async(std::launch::async, [&] {
        return call(socket_, {"slow", {{"blob", big}}}, 10s);
    });
    // The loop answers others while the work is blocked.
    for (int i = 0; i < 20 && metric("control.requests_off_loop") < 1; ++i) {
        std::this_thread::sleep_for(50ms);
    }
    ASSERT_EQ(metric("control.requests_off_loop"), 1);
    auto echo = call(socket_, {"echo", {{"a", 1}}}, 2s);
    ASSERT_TRUE(echo.ok) << echo.error;
    EXPECT_EQ(slow.wait_for(0ms), std::future_status::timeout);
    released_ = true;
    promise_.set_value();
    auto reply = slow.get();
    ASSERT_TRUE(reply.ok) << reply.error;
    EXPECT_EQ(reply.result["size"], nlohmann::json({{"blob", big}}).dump().size());
    EXPECT_EQ(handler_thread_.load(), thread_.get_id());
    EXPECT_NE(work_thread_.load(), thread_.get_id());
    EXPECT_EQ(finish_thread_.load(), thread_.get_id());
    EXPECT_EQ(metric("control.requests"), 2);
}

TEST_F(ControlServerTest, StagedFailuresAreErrorRepliesAtEveryStage) {
    released_ = true;
    promise_.set_value();
    auto refused = call(socket_, {"refuse", {}}, 2s);
    EXPECT_FALSE(refused.ok);
    EXPECT_EQ(refused.error, "refused on the loop");
    auto thrown = call(socket_, {"slow", {{"throw", true}}}, 2s);
    EXPECT_FALSE(thrown.ok);
    EXPECT_EQ(thrown.error, "the work refused it");
    EXPECT_EQ(metric("control.failed_requests"), 2);
    // A malformed long line (parsed off the loop) is refused like a short one, and the session goes on.
    std::string answer = raw_exchange(std::string(100000, '{') + "\n{\"command\":\"echo\",\"args\":{}}\n");
    EXPECT_EQ(answer,
              "{\"error\":\"request is not valid JSON\",\"ok\":false}\n{\"ok\":true,\"result\":{}}\n");
    EXPECT_EQ(metric("control.bad_requests"), 1);
}

TEST_F(ControlServerTest, GarbageGetsAnErrorAndTheConnectionGoesOn) {
    std::string answer = raw_exchange("this is not json\n{\"command\":\"echo\",\"args\":{\"b\":2}}\n");
    EXPECT_EQ(answer,
              "{\"error\":\"request is not valid JSON\",\"ok\":false}\n{\"ok\":true,\"result\":{\"b\":2}}\n");
    EXPECT_EQ(metric("control.bad_requests"), 1);
}

TEST_F(ControlServerTest, OversizedLineIsRefusedAndServerKeepsServing) {
    std::string answer = raw_exchange(std::string(4 * kParseOnLoopBytes + 10, 'x'));
    EXPECT_EQ(answer, "{\"error\":\"request longer than 262144 bytes\",\"ok\":false}\n");
    auto reply = call(socket_, {"echo", {}}, 2s);
    EXPECT_TRUE(reply.ok) << reply.error;
}

TEST_F(ControlServerTest, IdleConnectionIsClosed) {
    const auto start = std::chrono::steady_clock::now();
    std::string answer = raw_exchange("{\"command\":");  // never completed
    EXPECT_EQ(answer, "");
    EXPECT_LT(std::chrono::steady_clock::now() - start,
              1900ms);  // closed by the 300 ms idle timer, not recv's 2 s
}

TEST_F(ControlServerTest, RefusesASocketPathThatIsServedOrNotASocket) {
    boost::asio::io_context other_io;
    MetricsRegistry other_metrics;
    Server second(other_io, other_metrics);
    EXPECT_EQ(second.listen(socket_), "control socket '" + socket_.string() +
                                          "' is served by another process; give each instance its own "
                                          ".daemon.control_socket");
    EXPECT_TRUE(call(socket_, {"echo", {}}, 2s).ok);  // the first server still owns it

    test::write_file(dir_ / "precious.txt", "keep me");
    Server third(other_io, other_metrics);
    EXPECT_EQ(third.listen(dir_ / "precious.txt"),
              "control socket path '" + (dir_ / "precious.txt").string() +
                  "' exists and is not a socket; refusing to replace it");
    EXPECT_EQ(test::read_file(dir_ / "precious.txt"), "keep me");
}

TEST(ControlServer, ReplacesADeadSocket) {
    test::TempDir dir;
    const auto path = dir / "ctl.sock";
    {
        // A socket file left by a process that no longer listens.
        int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
        ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
        ::close(fd);
    }
    boost::asio::io_context io;
    MetricsRegistry metrics;
    Server server(io, metrics);
    EXPECT_EQ(server.listen(path), "");
}

TEST(ControlClient, ReportsUnreachableDaemon) {
    test::TempDir dir;
    auto reply = call(dir / "absent.sock", {"status", {}}, 1s);
    EXPECT_FALSE(reply.ok);
    EXPECT_TRUE(reply.transport_error);
    EXPECT_EQ(reply.error, "cannot reach ctsyncd at '" + (dir / "absent.sock").string() +
                               "': No such file or directory (is it running with this config?)");
}

}  // namespace
}  // namespace ctsync::core::control
