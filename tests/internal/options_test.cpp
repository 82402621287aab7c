// The option table (mm/src/options.hpp): its parser's verdicts, the value a
// fresh process reads from its environment, and docs/options.md listing
// every row with its default and documentation line.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "options.hpp"

using namespace strata::detail;

namespace {
bool parses(Option o, const char* text, std::uint64_t* v) { return option_parse(o, text, v); }

// Runs fn in a forked child (a process whose options were never read) and
// returns its exit status.
template <class F>
int in_child(F fn) {
  pid_t pid = fork();
  if (pid == 0) _exit(fn());
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}
}  // namespace

TEST_CASE("numbers: decimal digits within the bounds, nothing else", "[options]") {
  std::uint64_t v = 7;
  CHECK(parses(Option::kTrimDelayMs, "0", &v));
  CHECK(v == 0);
  CHECK(parses(Option::kTrimDelayMs, "250", &v));
  CHECK(v == 250);
  CHECK(parses(Option::kTrimDelayMs, "1099511627776", &v));  // 2^40, the maximum
  for (const char* bad : {"", "-1", "+5", "12ms", " 5", "5 ", "0x10", "1099511627777", "99999999999999999999999"}) {
    INFO(bad);
    v = 7;
    CHECK_FALSE(parses(Option::kTrimDelayMs, bad, &v));
    CHECK(v == 7);
  }
  CHECK_FALSE(parses(Option::kTrimDelayMs, nullptr, &v));
}

TEST_CASE("switches: unset, empty or 0 is off, anything else on", "[options]") {
  std::uint64_t v = 7;
  CHECK(parses(Option::kShowStats, "0", &v));
  CHECK(v == 0);
  CHECK(parses(Option::kShowStats, "", &v));
  CHECK(v == 0);
  CHECK(parses(Option::kShowStats, "1", &v));
  CHECK(v == 1);
  CHECK(parses(Option::kShowStats, "yes", &v));
  CHECK(v == 1);
  CHECK(parses(Option::kShowStats, "00", &v));
  CHECK(v == 1);
}

TEST_CASE("a fresh process reads the environment once; invalid values give the default", "[options]") {
  CHECK(in_child([] {
          setenv("STRATA_TRIM_DELAY_MS", "250", 1);
          if (option_value(Option::kTrimDelayMs) != 250) return 1;
          setenv("STRATA_TRIM_DELAY_MS", "7", 1);  // read once: still 250
          return option_value(Option::kTrimDelayMs) == 250 ? 0 : 2;
        }) == 0);
  CHECK(in_child([] {
          setenv("STRATA_TRIM_DELAY_MS", "12abc", 1);
          return option_value(Option::kTrimDelayMs) == option_info(Option::kTrimDelayMs).def ? 0 : 1;
        }) == 0);
  CHECK(in_child([] {
          unsetenv("STRATA_TRIM_DELAY_MS");
          return option_value(Option::kTrimDelayMs) == 100 ? 0 : 1;  // kMediumTrimDelayMs
        }) == 0);
  CHECK(in_child([] {
          setenv("STRATA_SHOW_STATS", "1", 1);
          return option_enabled(Option::kShowStats) ? 0 : 1;
        }) == 0);
}

TEST_CASE("docs/options.md lists every option with its default and its documentation", "[options]") {
  std::ifstream in(STRATA_SOURCE_DIR "/docs/options.md");
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string doc = ss.str();
  for (unsigned i = 0; i < static_cast<unsigned>(Option::kCount); ++i) {
    const OptionInfo& o = option_info(static_cast<Option>(i));
    INFO(o.env);
    const std::string row_start = std::string("| `") + o.env + "` | " + (o.kind == OptionKind::kBool ? "switch" : o.kind == OptionKind::kPath ? "file" : "number") +
                                  " | " + std::to_string(o.def) + " |";
    CHECK(doc.find(row_start) != std::string::npos);
    CHECK(doc.find(o.doc) != std::string::npos);
  }
}
