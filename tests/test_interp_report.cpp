// The report of the interpretability commands: a context widened to whole UTF-8 characters, the SVG
// bar plot, and the HTML report (experts.json checked, then the page rendered by headless Chromium:
// one row per expert that passes the default filter, and a screenshot). Chromium is a test
// dependency (scripts/deps.sh --test): without it the browser half is skipped, except under CI
// (CI set in the environment, as .ci/run's bare system sets it), where it fails.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>

#include "eval/experts.h"
#include "interp_fixtures.h"
#include "test_train_util.h"
#include "train/tokenizer.h"
#include "util/fileio.h"
#include "util/plot.h"

using namespace monet;
using namespace monet::interp;
using namespace monet::testing::interp_fixtures;
using monet::testing::TempDir;
namespace fs = std::filesystem;

TEST(InterpContext, WidensTheTokenToItsUtf8CharacterAndTrimsTheEnds) {
  ByteTokenizer tok;
  const std::vector<int32_t> t = tok.encode(
      "ab\xE2\x82\xAC"
      "cd");                              // "ab€cd"
  ContextText c = context_text(t, 3, 2);  // the middle byte of '€'
  EXPECT_EQ(c.left, "ab");
  EXPECT_EQ(c.token, "\xE2\x82\xAC");
  EXPECT_EQ(c.right, "cd");
  c = context_text(t, 0, 1);
  EXPECT_EQ(c.left, "");
  EXPECT_EQ(c.token, "a");
  EXPECT_EQ(c.right, "b");
  // A window that ends inside a character drops that character.
  const std::vector<int32_t> u = tok.encode(
      "\xE2\x82\xAC"
      "x"
      "\xE2\x82\xAC");  // "€x€"
  c = context_text(u, 3, 2);
  EXPECT_EQ(c.left, "");
  EXPECT_EQ(c.token, "x");
  EXPECT_EQ(c.right, "");
  c = context_text(u, 3, 3);
  EXPECT_EQ(c.left, "\xE2\x82\xAC");
  EXPECT_EQ(c.right, "\xE2\x82\xAC");
}

// ---- the report ----

TEST(InterpReport, BarPlotDrawsOneRectPerFiniteValue) {
  const std::string svg =
      svg_bar_plot({"a", "b", "c"}, {{"s", {}, {1.0, -0.5, NAN}}, {"t", {}, {0.25, 2, 1}}}, {});
  size_t bars = 0;
  for (size_t at = svg.find("<rect x="); at != std::string::npos; at = svg.find("<rect x=", at + 1))
    ++bars;
  EXPECT_EQ(bars, 5u + 1 + 2);  // five bars, the frame, two legend swatches
  EXPECT_NE(svg.find("s b: -0.5"), std::string::npos);
}

// Headless Chromium opens experts.html, the page's script builds the expert table, and the
// rendered DOM has one row per expert that passes the default filter; a screenshot is taken.
TEST(InterpReport, HtmlRendersInHeadlessChromium) {
  TempDir t("interp_html");
  const std::vector<Domain> domains = tiny_domains();
  auto model = tiny_model(kMonet);
  ExpertModel em(*model, kind_of(kMonet));
  CollectOptions co;
  co.batch = 4;
  co.top_k = 3;
  const ExpertStats st = collect_expert_stats(em, domains, co);
  ReportOptions ro;
  ro.title = "test </script> report";  // must not end the page's script
  write_expert_report(st, domains, t.path(), ro);
  const auto j = nlohmann::json::parse(read_file(t / "experts.json"));
  ASSERT_EQ(j["sites"].size(), 1u);
  const auto& site = j["sites"][0];
  int64_t tokens = 0, expected = 0;
  for (int64_t n : site["tokens"]) tokens += n;
  const int64_t minact = std::max<int64_t>(1, std::llround(static_cast<double>(tokens) / 1000));
  for (const auto& x : site["expert_list"]) {
    int64_t a = 0;
    for (int64_t n : x["active"]) a += n;
    expected += a >= minact;
    EXPECT_LE(x["contexts"].size(), 3u);
  }
  ASSERT_GT(expected, 0);
  EXPECT_EQ(site["expert_list"].size() + site["unused"].get<size_t>(), 16u);
  // The page's numbers carry 4 significant digits (17-digit doubles made a 4 MB page for the tiny
  // model), and the page formats every one of them through one function.
  std::function<void(const nlohmann::json&)> short_numbers = [&](const nlohmann::json& v) {
    if (v.is_number_float()) {
      const double x = v.get<double>();
      EXPECT_EQ(std::stod(fmt::format("{:.4g}", x)), x) << fmt::format("{}", x);
    }
    if (v.is_structured())  // (iterating a number or string yields itself)
      for (const auto& c : v) short_numbers(c);
  };
  for (const auto& x : site["expert_list"]) short_numbers(x);
  short_numbers(site["mean_active_per_domain"]);
  EXPECT_EQ(read_file(t / "experts.html").find("toFixed"), std::string::npos);

  if (std::system("command -v chromium >/dev/null 2>&1") != 0) {
    const char* ci = std::getenv("CI");
    if (ci != nullptr && *ci != '\0')
      FAIL()
          << "chromium is not installed, and CI must run the browser test (scripts/deps.sh --test)";
    GTEST_SKIP() << "chromium is not installed (scripts/deps.sh --test installs it)";
  }
  // No background connections: this machine's closed network refuses them, slowly.
  const std::string chromium =
      "chromium --headless --disable-gpu --no-sandbox --hide-scrollbars --no-first-run "
      "--disable-background-networking --disable-component-update --disable-sync "
      "--user-data-dir=" +
      (t / "profile").string() + " --virtual-time-budget=5000 ";
  const std::string page = "file://" + (t / "experts.html").string();
  ASSERT_EQ(std::system((chromium + "--dump-dom " + page + " >" + (t / "dom.html").string() +
                         " 2>/dev/null")
                            .c_str()),
            0);
  const std::string dom = read_file(t / "dom.html");
  const size_t body = dom.find("<tbody>", dom.find("id=\"experts\""));
  ASSERT_NE(body, std::string::npos) << dom.substr(0, 2000);
  const size_t end = dom.find("</tbody>", body);  // (the script below holds the same text)
  int64_t rows = 0;
  for (size_t at = dom.find("<tr class=\"expert-row", body); at < end;
       at = dom.find("<tr class=\"expert-row", at + 1))
    ++rows;
  EXPECT_EQ(rows, expected);
  EXPECT_NE(dom.find("class=\"heat-cell\""), std::string::npos);  // the heat map was drawn
  EXPECT_NE(dom.find("<mark>"), std::string::npos);               // contexts of the top row
  EXPECT_NE(dom.find("test &lt;/script&gt; report"), std::string::npos);
  const fs::path png = t / "report.png";
  ASSERT_EQ(std::system((chromium + "--window-size=1200,1600 --screenshot=" + png.string() + " " +
                         page + " >/dev/null 2>&1")
                            .c_str()),
            0);
  const std::string img = read_file(png);
  ASSERT_GT(img.size(), 1000u);
  EXPECT_EQ(img.substr(1, 3), "PNG");
}
