#include "kata/log/log.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "kata/core/error.hpp"
#include "kata/core/unique_fd.hpp"

namespace kata::log {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// A logfmt line parsed back: keys in order and unescaped values. Written independently of the
// renderer so that escaping is checked by a round trip.
std::vector<std::pair<std::string, std::string>> parse_logfmt(std::string_view line) {
  std::vector<std::pair<std::string, std::string>> out;
  std::size_t i = 0;
  while (i < line.size()) {
    const std::size_t eq = line.find('=', i);
    if (eq == std::string_view::npos) throw std::runtime_error("no '=' after key");
    std::string key(line.substr(i, eq - i));
    i = eq + 1;
    std::string value;
    if (i < line.size() && line[i] == '"') {
      ++i;
      while (true) {
        if (i >= line.size()) throw std::runtime_error("unterminated quote");
        const char c = line[i++];
        if (c == '"') break;
        if (c != '\\') {
          value += c;
          continue;
        }
        const char e = line[i++];
        switch (e) {
          case 'n': value += '\n'; break;
          case 'r': value += '\r'; break;
          case 't': value += '\t'; break;
          case 'u': value += static_cast<char>(std::stoi(std::string(line.substr(i, 4)), nullptr, 16)); i += 4; break;
          default: value += e;
        }
      }
    } else {
      const std::size_t end = line.find(' ', i);
      value = std::string(line.substr(i, end == std::string_view::npos ? std::string_view::npos : end - i));
      i = end == std::string_view::npos ? line.size() : end;
    }
    out.emplace_back(std::move(key), std::move(value));
    if (i < line.size()) {
      if (line[i] != ' ') throw std::runtime_error("expected a space between pairs");
      ++i;
    }
  }
  return out;
}

const auto fixed_time = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000)) +
                        std::chrono::nanoseconds(5);

TEST(LogRender, LogfmtQuotesOnlyWhatNeedsIt) {
  Record record{fixed_time, Level::info, "hello", {{"sandbox", "abc"}, {"empty", ""}, {"path", "/run/kata/x"}}};
  EXPECT_EQ(render(Format::logfmt, record),
            "time=2023-11-14T22:13:20.000000005Z level=info msg=hello sandbox=abc empty=\"\" path=/run/kata/x");
}

TEST(LogRender, LogfmtEscapesAndParsesBack) {
  const std::string nasty = "say \"hi\"\\ a=b\n\ttab\r\x01 end \xc3\xa9";
  Record record{fixed_time, Level::warning, nasty, {{"bad key=\"x\"", "v w"}}};
  const std::string line = render(Format::logfmt, record);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_THAT(line, HasSubstr(R"(msg="say \"hi\"\\ a=b\n\ttab\r\u0001 end )"));
  const auto pairs = parse_logfmt(line);
  ASSERT_EQ(pairs.size(), 4U);
  EXPECT_EQ(pairs[1], (std::pair<std::string, std::string>{"level", "warning"}));
  EXPECT_EQ(pairs[2].second, nasty);
  EXPECT_EQ(pairs[3].first, "bad_key__x_");
  EXPECT_EQ(pairs[3].second, "v w");
}

TEST(LogRender, JsonIsOneValidObjectInRecordOrder) {
  Record record{fixed_time, Level::error, "broken \"quote\"\n\xff", {{"subsystem", "qemu"}, {"pid", "12"}}};
  const std::string line = render(Format::json, record);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  const auto parsed = nlohmann::ordered_json::parse(line);
  ASSERT_TRUE(parsed.is_object());
  std::vector<std::string> keys;
  for (const auto& [key, value] : parsed.items()) keys.push_back(key);
  EXPECT_EQ(keys, (std::vector<std::string>{"time", "level", "msg", "subsystem", "pid"}));
  EXPECT_EQ(parsed["level"], "error");
  EXPECT_EQ(parsed["msg"], "broken \"quote\"\n\xef\xbf\xbd");  // invalid byte replaced by U+FFFD
  EXPECT_EQ(parsed["time"], "2023-11-14T22:13:20.000000005Z");
}

TEST(LogLevel, ParsesConfiguredNames) {
  EXPECT_EQ(parse_level("trace"), Level::trace);
  EXPECT_EQ(parse_level("DEBUG"), Level::debug);
  EXPECT_EQ(parse_level("info"), Level::info);
  EXPECT_EQ(parse_level("warn"), Level::warning);
  EXPECT_EQ(parse_level("warning"), Level::warning);
  EXPECT_EQ(parse_level("error"), Level::error);
  try {
    (void)parse_level("verbose");
    FAIL() << "expected a throw";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), Errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr("\"verbose\""));
    EXPECT_THAT(e.what(), HasSubstr("trace, debug, info, warn, error"));
  }
  EXPECT_EQ(effective_level(true, ""), Level::debug);
  EXPECT_EQ(effective_level(false, ""), Level::info);
  EXPECT_EQ(effective_level(true, "error"), Level::error);
  EXPECT_EQ(parse_format("json"), Format::json);
  EXPECT_EQ(parse_format("logfmt"), Format::logfmt);
  EXPECT_THROW((void)parse_format("xml"), Error);
}

class LogSinkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "kata-test-log-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override {
    shutdown();
    init(Config{});
    fs::remove_all(dir_);
  }

  // Creates the FIFO and, when asked, a non-blocking reader for it.
  UniqueFd make_fifo(bool with_reader) {
    fifo_ = dir_ / "log";
    EXPECT_EQ(::mkfifo(fifo_.c_str(), 0600), 0);
    if (!with_reader) return UniqueFd();
    return UniqueFd(::open(fifo_.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC));
  }

  Config fifo_config() const {
    Config config;
    config.fifo = fifo_;
    config.to_stderr = false;
    config.sandbox = "sb-1";
    return config;
  }

  // Everything written to the FIFO so far (writes are synchronous, so it is all there).
  static std::vector<std::string> read_lines(int fd) {
    std::string data;
    char buffer[4096];
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) data.append(buffer, static_cast<std::size_t>(n));
    std::vector<std::string> lines;
    std::size_t start = 0;
    for (std::size_t nl; (nl = data.find('\n', start)) != std::string::npos; start = nl + 1) {
      lines.push_back(data.substr(start, nl - start));
    }
    EXPECT_EQ(start, data.size()) << "a record must end with a newline";
    return lines;
  }

  fs::path dir_;
  fs::path fifo_;
};

TEST_F(LogSinkTest, FifoRecordCarriesEveryField) {
  UniqueFd reader = make_fifo(true);
  ASSERT_TRUE(reader);
  init(fifo_config());
  Logger("qemu").with("container", "c-1").info("vm started with {} vcpus", 2);
  const auto lines = read_lines(reader.get());
  ASSERT_EQ(lines.size(), 1U);
  const auto pairs = parse_logfmt(lines[0]);
  std::vector<std::string> keys;
  std::map<std::string, std::string> values;
  for (const auto& [k, v] : pairs) {
    keys.push_back(k);
    values[k] = v;
  }
  EXPECT_EQ(keys, (std::vector<std::string>{"time", "level", "msg", "sandbox", "container", "subsystem", "source",
                                            "name", "pid"}));
  EXPECT_EQ(values["level"], "info");
  EXPECT_EQ(values["msg"], "vm started with 2 vcpus");
  EXPECT_EQ(values["sandbox"], "sb-1");
  EXPECT_EQ(values["container"], "c-1");
  EXPECT_EQ(values["subsystem"], "qemu");
  EXPECT_EQ(values["source"], "runtime");
  EXPECT_EQ(values["name"], "containerd-shim-kata-v2");
  EXPECT_EQ(values["pid"], std::to_string(::getpid()));
}

TEST_F(LogSinkTest, JsonFormatThroughTheFifo) {
  UniqueFd reader = make_fifo(true);
  Config config = fifo_config();
  config.format = Format::json;
  init(config);
  Logger("agent").with_source("agent").warn("guest said \"{}\"", "oops");
  const auto lines = read_lines(reader.get());
  ASSERT_EQ(lines.size(), 1U);
  const auto parsed = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(parsed["level"], "warning");
  EXPECT_EQ(parsed["msg"], "guest said \"oops\"");
  EXPECT_EQ(parsed["source"], "agent");
  EXPECT_EQ(parsed["subsystem"], "agent");
  EXPECT_EQ(parsed["sandbox"], "sb-1");
}

TEST_F(LogSinkTest, LevelFiltering) {
  UniqueFd reader = make_fifo(true);
  Config config = fifo_config();
  config.level = Level::warning;
  init(config);
  Logger log("runtime");
  log.debug("hidden debug");
  log.info("hidden info");
  log.warn("shown warning");
  log.error("shown error");
  EXPECT_FALSE(Logger::enabled(Level::info));
  set_level(Level::trace);
  log.trace("shown trace");
  const auto lines = read_lines(reader.get());
  ASSERT_EQ(lines.size(), 3U);
  EXPECT_THAT(lines[0], HasSubstr("msg=\"shown warning\""));
  EXPECT_THAT(lines[1], HasSubstr("msg=\"shown error\""));
  EXPECT_THAT(lines[2], HasSubstr("level=trace"));
}

TEST_F(LogSinkTest, FifoWithoutReaderNeitherBlocksNorThrows) {
  make_fifo(false);
  init(fifo_config());  // would block forever in a blocking open
  Logger log("shim");
  for (int i = 0; i < 100; ++i) log.info("nobody listens {}", i);
  SUCCEED();
}

TEST_F(LogSinkTest, ReaderGoingAwayIsAbsorbed) {
  struct sigaction ignore{}, previous{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous), 0);  // what the shim does at startup
  UniqueFd reader = make_fifo(true);
  init(fifo_config());
  Logger log("shim");
  log.info("first");
  EXPECT_EQ(read_lines(reader.get()).size(), 1U);
  reader.reset();
  log.info("written into a pipe without reader");  // EPIPE
  log.info("dropped while backing off");
  ::sigaction(SIGPIPE, &previous, nullptr);
}

TEST_F(LogSinkTest, SyslogDatagramHasPriorityAndIdentifier) {
  const fs::path socket_path = dir_ / "dev-log";
  UniqueFd server(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  ASSERT_TRUE(server);
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, socket_path.c_str(), sizeof(address.sun_path) - 1);
  ASSERT_EQ(::bind(server.get(), reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);

  Config config;
  config.syslog = true;
  config.syslog_socket = socket_path;
  config.to_stderr = false;
  init(config);
  Logger log("hypervisor");
  log.debug("below the threshold");
  log.info("vm up");
  log.error("vm down");

  auto receive = [&] {
    char buffer[2048];
    const ssize_t n = ::recv(server.get(), buffer, sizeof buffer, MSG_DONTWAIT);
    return n < 0 ? std::string() : std::string(buffer, static_cast<std::size_t>(n));
  };
  const std::string ident = fmt::format("kata[{}]: ", ::getpid());
  const std::string first = receive();
  EXPECT_THAT(first, StartsWith("<14>" + ident + "time="));  // user.info
  EXPECT_THAT(first, HasSubstr("msg=\"vm up\""));
  EXPECT_THAT(first, HasSubstr("subsystem=hypervisor"));
  const std::string second = receive();
  EXPECT_THAT(second, StartsWith("<11>" + ident));  // user.err
  EXPECT_EQ(receive(), "");
}

TEST_F(LogSinkTest, MissingSyslogSocketIsSilent) {
  Config config;
  config.syslog = true;
  config.syslog_socket = dir_ / "no-such-socket";
  config.to_stderr = false;
  init(config);
  Logger("shim").error("goes nowhere");
  SUCCEED();
}

TEST_F(LogSinkTest, ShutdownDropsRecordsUntilNextInit) {
  UniqueFd reader = make_fifo(true);
  init(fifo_config());
  shutdown();
  shutdown();
  Logger("shim").info("after shutdown");
  EXPECT_TRUE(read_lines(reader.get()).empty());
  init(fifo_config());
  Logger("shim").info("after init");
  EXPECT_EQ(read_lines(reader.get()).size(), 1U);
}

}  // namespace
}  // namespace kata::log
