// util/progress.h written to a file, as under a pipe or a log: step lines every log_every steps
// with the MoE numbers, a bar that writes a handful of lines (not one per item) with an ETA per
// bar, and the duration format of the ETAs.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "test_train_util.h"
#include "util/fileio.h"
#include "util/progress.h"
#include "util/text.h"

using namespace monet;
using monet::testing::count_of;
using monet::testing::TempDir;

namespace {

// What `write` printed through a Progress on a file (not a terminal).
template <class F>
std::string printed(const TempDir& t, F write) {
  const auto path = t / "progress.txt";
  std::FILE* f = std::fopen(path.c_str(), "w");
  EXPECT_NE(f, nullptr);
  {
    Progress p(10, 0, f);
    EXPECT_FALSE(p.is_tty());
    write(p);
  }
  std::fclose(f);
  return read_file(path);
}

}  // namespace

TEST(Progress, StepLinesEveryLogIntervalCarryTheMoeNumbers) {
  TempDir t("progress_steps");
  const std::string out = printed(t, [](Progress& p) {
    for (int64_t s = 0; s < 10; ++s) p.step(s, 2.5, 1e-3, 100, 4, " | aux 0.0123 | dropped 0.5");
  });
  EXPECT_EQ(count_of(out, "\n"), 3u) << out;  // steps 4, 8 and the last
  EXPECT_EQ(count_of(out, "| aux 0.0123 | dropped 0.5\n"), 3u) << out;
  EXPECT_NE(out.find("step      4/10"), std::string::npos) << out;
  EXPECT_NE(out.find("step     10/10"), std::string::npos) << out;
  EXPECT_EQ(out.find('\r'), std::string::npos) << "no redraws in a file";
}

// An evaluation calls the bar once per batch: in a log that was ~90 lines for one evaluation. Now
// a line at most every few seconds, and one at the end of each bar.
TEST(Progress, ABarInAFileWritesAHandfulOfLines) {
  TempDir t("progress_bar");
  const std::string out = printed(t, [](Progress& p) {
    for (int64_t i = 1; i <= 1000; ++i) p.bar(i, 1000, "code batches");
    for (int64_t i = 1; i <= 500; ++i) p.bar(i, 500, "english batches");  // the next domain
  });
  EXPECT_EQ(count_of(out, "\n"), 3u) << out;  // the first line, and the last of each bar
  EXPECT_NE(out.find("1/1000"), std::string::npos) << out;
  EXPECT_NE(out.find("] 1000/1000 "), std::string::npos) << out;
  EXPECT_NE(out.find("] 500/500 "), std::string::npos) << out;
  EXPECT_NE(out.find(", ETA "), std::string::npos) << "a bar under way shows its ETA: " << out;
  const std::string every = printed(t, [](Progress& p) {
    p.set_plain_interval(0);
    for (int64_t i = 1; i <= 20; ++i) p.bar(i, 20, "x");
  });
  EXPECT_EQ(count_of(every, "\n"), 20u);
}

TEST(Progress, DurationsAndSizesAreFormattedForPeople) {
  EXPECT_EQ(format_duration(0), "0:00");
  EXPECT_EQ(format_duration(65.4), "1:05");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(-3), "0:00");
  // The load line of a tiny model said "1.0M parameters, 0.00 GiB".
  EXPECT_EQ(format_bytes(4.0 * 1048576), "4.00 MiB");
  EXPECT_EQ(format_bytes(812), "812 B");
  EXPECT_EQ(format_bytes(15.51 * (1 << 30)), "15.5 GiB");
  EXPECT_EQ(format_count(1'048'576), "1.05M");
  EXPECT_EQ(format_count(850), "850");
  EXPECT_EQ(format_count(4.1e9), "4.10B");
}
