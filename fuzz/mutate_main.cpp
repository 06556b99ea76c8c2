// The mutation engine of the fuzz targets (MONET_FUZZ_ENGINE=mutate): a seeded, deterministic loop
// that needs no clang and runs in the sanitizer build (scripts/fuzz.sh).
//
//   fuzz_<target> [--seconds S] [--runs N] [--seed K] [--max-len L] [--timeout S]
//                 [--artifacts DIR] PATH...
//
// PATH: a folder (each file in it, by name) or a file. Every input is run as is first, so
// `fuzz_<target> --seconds 0 crash-file` replays a saved finding; then, until S seconds (60 by
// default) or N mutated runs, whichever comes first (0 turns a bound off; both 0: replay only),
// an input of the pool is mutated by one to four of: bit flips, random and special bytes,
// inserted and deleted ranges, copies within the input, splices with another input of the pool,
// tokens of the target's dictionary, digit runs replaced by boundary numbers or wrapped in brackets
// thousands deep, boundary integers written in little endian, long runs of one byte (long strings
// and numbers) and, for safetensors, the header length set to end at the header's last brace.
//
// Feedback: a mutant joins the pool when it runs an edge of the loader's code that no run did
// before (coverage of the loader's own source file, below), or when its outcome (success, or the
// shape of its error message with the input's text and numbers blanked) is new, so the loop climbs
// past one check at a time. The sequence depends only on the seed and the corpus; with
// --seconds, how far it gets depends on the machine.
//
// A finding (an exception other than monet::Error, a failed round trip, a sanitizer report, a
// signal, a run over --timeout) saves the input as DIR/crash-<target>-<hash> before the process
// dies, and the exit status is non-zero.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "fuzz/fuzz.h"
#include "fuzz/mutator.h"
#include "util/fileio.h"

#if defined(__SANITIZE_ADDRESS__)
#define MONET_FUZZ_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define MONET_FUZZ_ASAN 1
#endif
#endif
#ifdef MONET_FUZZ_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace monet::fuzz {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---- saving the input that killed the process (async-signal-safe: no allocation, no stdio) ----

// The input being run, for the handlers: a copy, since the target may be stopped anywhere.
std::string g_current;
std::atomic<bool> g_running{false};
char g_artifact_prefix[4096] = "./crash-";  // "<dir>/crash-<target>-"
std::atomic<bool> g_saved{false};

void write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) return;
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void save_current_input() {
  if (!g_running.load() || g_saved.exchange(true)) return;
  uint64_t h = 1469598103934665603ull;  // FNV-1a, for a name that differs per input
  for (unsigned char c : g_current) h = (h ^ c) * 1099511628211ull;
  char path[sizeof(g_artifact_prefix) + 17];
  size_t n = std::strlen(g_artifact_prefix);
  std::memcpy(path, g_artifact_prefix, n);
  for (int i = 15; i >= 0; --i) path[n++] = "0123456789abcdef"[(h >> (4 * i)) & 15];
  path[n] = '\0';
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  write_all(fd, g_current.data(), g_current.size());
  ::close(fd);
  const char msg[] = "\nfuzz: the input is saved as ";
  write_all(2, msg, sizeof(msg) - 1);
  write_all(2, path, n);
  write_all(2, "\n", 1);
}

void on_signal(int sig) {
  save_current_input();
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

// AddressSanitizer handles the fatal signals itself (reporting, then the death callback above),
// on an alternate stack so that a stack overflow can be reported: replacing its handlers would
// lose both. It leaves SIGABRT alone, and UBSan's abort_on_error raises it. Without ASan, ours go
// on an alternate stack of their own.
void install_signal_handlers() {
#ifdef MONET_FUZZ_ASAN
  const int signals[] = {SIGABRT};
#else
  const int signals[] = {SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL};
  static std::vector<char> alt(1 << 16);
  stack_t ss{};
  ss.ss_sp = alt.data();
  ss.ss_size = alt.size();
  ::sigaltstack(&ss, nullptr);
#endif
  for (int sig : signals) {
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK;
    ::sigaction(sig, &sa, nullptr);
  }
}

// ---- coverage ----

// fuzz/CMakeLists.txt compiles the loader's own source file into its target with
// -fsanitize-coverage=trace-pc (GCC and clang): the compiler then calls this at the start of each
// basic block of that code. Pairs of consecutive blocks hash into a map of edges, as AFL does.
constexpr size_t kCoverageMap = size_t{1} << 16;
uint8_t g_edges[kCoverageMap];
uintptr_t g_previous_block = 0;

}  // namespace
}  // namespace monet::fuzz

extern "C" void __sanitizer_cov_trace_pc() {
  using namespace monet::fuzz;
  // The block's offset from this function, not its address: the same in every run of the binary
  // (the address moves with ASLR), so that a seed gives the same sequence each time.
  uintptr_t pc = reinterpret_cast<uintptr_t>(__builtin_return_address(0)) -
                 reinterpret_cast<uintptr_t>(&__sanitizer_cov_trace_pc);
  pc = (pc ^ (pc >> 17)) * 0x9e3779b97f4a7c15ull >> 48;  // 16 well-mixed bits of it
  g_edges[(pc ^ g_previous_block) % kCoverageMap] = 1;
  g_previous_block = pc >> 1;
}

namespace monet::fuzz {
namespace {

// The edges seen by all runs so far; take_new() folds in the last run's and says whether it saw
// one that no run had before (which earns its input a place in the pool).
class Coverage {
 public:
  bool take_new() {
    bool found = false;
    for (size_t i = 0; i < kCoverageMap; ++i) {
      if (g_edges[i] && !seen_[i]) {
        seen_[i] = 1;
        ++count_;
        found = true;
      }
    }
    std::memset(g_edges, 0, sizeof(g_edges));
    g_previous_block = 0;
    return found;
  }
  size_t edges() const { return count_; }

 private:
  std::vector<uint8_t> seen_ = std::vector<uint8_t>(kCoverageMap, 0);
  size_t count_ = 0;
};

// The outcome of a run, as feedback: "ok", or the error message with what came from the input
// blanked, so that a new tensor name or offset is not a new outcome and a new check is: the text
// in quotes ('...' of our messages, "..." of JSON values), numbers, bytes outside printable ASCII
// and repeats. A single quote closes only before a space, a punctuation mark or the end: a quote
// inside a quoted name must not let the rest of the name through.
std::string outcome(bool ok, const std::string& error) {
  if (ok) return "ok";
  std::string f;
  auto put = [&f](char c) {
    if (f.empty() || f.back() != c) f += c;
  };
  char quote = 0;
  for (size_t i = 0; i < error.size() && f.size() < 120; ++i) {
    const char c = error[i];
    const char next = i + 1 < error.size() ? error[i + 1] : ' ';
    if (quote == '"' && c == '\\') {
      ++i;  // an escaped character of a JSON string
    } else if (quote == '"' && c == '"') {
      quote = 0;
      f += c;
    } else if (quote == '\'' && c == '\'' && std::strchr(" ,.;:)]", next)) {
      quote = 0;
      f += c;
    } else if (quote) {
    } else if (c == '\'' || c == '"') {
      quote = c;
      f += c;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      put('#');
    } else if (c < 0x20 || c > 0x7e) {
      put('?');
    } else {
      put(c);
    }
  }
  return f;
}

struct Options {
  double seconds = 60;
  uint64_t runs = 0;
  uint64_t seed = 1;
  size_t max_len = 64 * 1024;
  double timeout = 20;
  std::string artifacts = ".";
  std::vector<std::string> paths;
};

[[noreturn]] void usage(const char* argv0, const std::string& why) {
  std::fprintf(stderr,
               "%s: %s\nusage: %s [--seconds S] [--runs N] [--seed K] [--max-len L] "
               "[--timeout S] [--artifacts DIR] PATH...\n",
               argv0, why.c_str(), argv0);
  std::exit(2);
}

Options parse_args(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(argv[0], a + " needs a value");
      return argv[++i];
    };
    try {
      if (a == "--seconds") {
        o.seconds = std::stod(value());
      } else if (a == "--runs") {
        o.runs = std::stoull(value());
      } else if (a == "--seed") {
        o.seed = std::stoull(value());
      } else if (a == "--max-len") {
        o.max_len = std::stoull(value());
      } else if (a == "--timeout") {
        o.timeout = std::stod(value());
      } else if (a == "--artifacts") {
        o.artifacts = value();
      } else if (a.rfind("--", 0) == 0) {
        usage(argv[0], "unknown option " + a);
      } else {
        o.paths.push_back(a);
      }
    } catch (const std::logic_error&) {
      usage(argv[0], "bad value for " + a);
    }
  }
  if (o.paths.empty()) usage(argv[0], "no corpus given");
  if (o.max_len == 0) usage(argv[0], "--max-len must be positive");
  return o;
}

std::vector<std::string> load_inputs(const std::vector<std::string>& paths) {
  std::vector<std::string> inputs;
  for (const std::string& p : paths) {
    std::vector<fs::path> files;
    if (fs::is_directory(p)) {
      for (const auto& e : fs::directory_iterator(p))
        if (e.is_regular_file()) files.push_back(e.path());
      std::sort(files.begin(), files.end());
    } else {
      files.push_back(p);
    }
    for (const fs::path& f : files) inputs.push_back(read_file(f));
  }
  return inputs;
}

int run(int argc, char** argv) {
  const Options o = parse_args(argc, argv);
  const std::string target = fs::path(argv[0]).filename().string();
  const std::string prefix = (fs::path(o.artifacts) / ("crash-" + target + "-")).string();
  MONET_CHECK(prefix.size() < sizeof(g_artifact_prefix), "--artifacts path is too long");
  std::memcpy(g_artifact_prefix, prefix.c_str(), prefix.size() + 1);
#ifdef MONET_FUZZ_ASAN
  __sanitizer_set_death_callback(save_current_input);
#endif
  install_signal_handlers();

  // A run that takes longer than --timeout is a finding too (a hang, or work out of proportion to
  // the input): a watchdog saves the input and aborts.
  std::atomic<uint64_t> started{0};
  const std::jthread watchdog([&](std::stop_token stop) {
    uint64_t seen = ~0ull;
    auto since = Clock::now();
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      const uint64_t now = started.load();
      if (now != seen) {
        seen = now;
        since = Clock::now();
      } else if (g_running.load() &&
                 std::chrono::duration<double>(Clock::now() - since).count() > o.timeout) {
        std::fprintf(stderr, "fuzz: FAILURE: one run took over %g s\n", o.timeout);
        save_current_input();
        std::_Exit(1);
      }
    }
  });

  const std::vector<std::string> dict = dictionary();
  std::vector<std::string> pool = load_inputs(o.paths);
  MONET_CHECK(!pool.empty(), "no input in {}", fmt::join(o.paths, ", "));
  std::set<std::string> outcomes;
  const size_t kOutcomeBudget = 512;
  Coverage coverage;
  uint64_t executions = 0;
  auto execute = [&](const std::string& input) {
    g_current.assign(input);
    started.fetch_add(1);
    g_running.store(true);
    std::string error;
    const bool ok = run_guarded(input, &error);
    g_running.store(false);
    ++executions;
    const bool new_edges = coverage.take_new();
    // A message can still carry some of the input (a quote inside a quoted name): new outcomes
    // earn a place in the pool only kOutcomeBudget times, new edges always.
    const bool new_outcome = outcomes.insert(outcome(ok, error)).second;
    return new_edges || (new_outcome && outcomes.size() <= kOutcomeBudget);
  };

  const size_t seeds = pool.size();
  for (size_t i = 0; i < seeds; ++i) execute(pool[i]);

  Mutator mutator(o.seed, o.max_len, dict, length_prefixed());
  const auto start = Clock::now();
  const size_t kPoolCap = 4096;
  uint64_t runs = 0, added = 0;
  const bool bounded = o.runs > 0 || o.seconds > 0;
  while (bounded) {
    if (o.runs > 0 && runs >= o.runs) break;
    if (o.seconds > 0 && (runs & 63) == 0 &&
        std::chrono::duration<double>(Clock::now() - start).count() >= o.seconds)
      break;
    std::string x = mutator.mutate(pool[mutator.below(pool.size())], pool);
    ++runs;
    if (execute(x)) {
      ++added;
      if (pool.size() < kPoolCap) {
        pool.push_back(std::move(x));
      } else {  // replace one that was added, never a seed
        pool[seeds + mutator.below(pool.size() - seeds)] = std::move(x);
      }
    }
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "%s: %llu executions (%zu seeds, %llu mutants in %.1f s, %.0f/s), seed %llu; %zu edges "
      "covered, %zu distinct outcomes, %llu inputs added to the pool; no finding\n",
      target.c_str(), static_cast<unsigned long long>(executions), seeds,
      static_cast<unsigned long long>(runs), secs, secs > 0 ? runs / secs : 0.0,
      static_cast<unsigned long long>(o.seed), coverage.edges(), outcomes.size(),
      static_cast<unsigned long long>(added));
  return 0;
}

}  // namespace
}  // namespace monet::fuzz

int main(int argc, char** argv) {
  try {
    return monet::fuzz::run(argc, argv);
  } catch (const monet::Error& e) {  // the driver's own errors (a missing corpus): not a finding
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 2;
  }
}
