// util/plot.h's line plot: series that coincide stay told apart (dash pattern, marker shape) with
// their data untouched, the legend names only what is drawn, a single point shows, long series get
// thinned markers, log axes label their ticks with their values, and the debiased EMA of the loss
// plot against a hand computation.
#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "test_train_util.h"
#include "util/plot.h"

using namespace monet;
using monet::testing::count_of;

namespace {

// svg_line_plot writes one line per series drawing and one per legend entry, each opening with
// the series' style group; legend lines are the ones with the name's <text>.
std::vector<std::string> lines_of(const std::string& svg, bool legend) {
  std::vector<std::string> out;
  std::istringstream in(svg);
  for (std::string line; std::getline(in, line);)
    if (line.rfind("<g fill=\"none\"", 0) == 0 &&
        (line.find("<text") != std::string::npos) == legend)
      out.push_back(line);
  return out;
}

// The value of attribute `name` on the first `tag` element of `s`; "" if absent.
std::string attr(const std::string& s, const std::string& tag, const std::string& name) {
  const size_t at = s.find("<" + tag);
  if (at == std::string::npos) return "";
  const size_t end = s.find('>', at);
  const size_t a = s.find(" " + name + "=\"", at);
  if (a == std::string::npos || a > end) return "";
  const size_t from = a + name.size() + 3;
  return s.substr(from, s.find('"', from) - from);
}

// The element names of the markers in a drawing line (they sit in their own group).
std::vector<std::string> markers_of(const std::string& line) {
  std::vector<std::string> out;
  const size_t group = line.find("<g stroke-width=\"1.3\">");
  if (group == std::string::npos) return out;
  for (size_t at = line.find('<', group + 1); line.compare(at, 4, "</g>") != 0;
       at = line.find('<', at + 1))
    out.push_back(line.substr(at + 1, line.find_first_of(" />", at + 1) - at - 1));
  return out;
}

}  // namespace

// MONET-HD and MONET-VD have equal parameter counts: in the table's plots one line lay exactly on
// the other and only the top one could be seen.
TEST(Plot, IdenticalSeriesGetTwoDashPatternsAndTwoMarkerShapes) {
  const Series a{"monet-hd", {16, 64, 256}, {1e3, 4e3, 1.6e4}};
  Series b = a;
  b.name = "monet-vd";
  const std::string svg = svg_line_plot({a, b}, {"params", "N", "p", true, true});
  const std::vector<std::string> drawn = lines_of(svg, false), legend = lines_of(svg, true);
  ASSERT_EQ(drawn.size(), 2u) << svg;
  ASSERT_EQ(legend.size(), 2u) << svg;
  // The same pixels: the data is drawn exactly, nothing is nudged apart.
  EXPECT_EQ(attr(drawn[0], "polyline", "points"), attr(drawn[1], "polyline", "points"));
  EXPECT_NE(attr(drawn[0], "g", "stroke"), attr(drawn[1], "g", "stroke"));
  EXPECT_NE(attr(drawn[0], "polyline", "stroke-dasharray"),
            attr(drawn[1], "polyline", "stroke-dasharray"));
  const std::vector<std::string> ma = markers_of(drawn[0]), mb = markers_of(drawn[1]);
  ASSERT_EQ(ma.size(), 3u) << drawn[0];
  ASSERT_EQ(mb.size(), 3u) << drawn[1];
  EXPECT_EQ(std::set<std::string>(ma.begin(), ma.end()).size(), 1u);
  EXPECT_NE(ma[0], mb[0]);
  // Markers are hollow, so the second series' markers do not cover the first's.
  EXPECT_EQ(attr(drawn[1], "g", "fill"), "none");
  // The legend shows each series' dash and marker, as drawn.
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(attr(legend[k], "line", "stroke-dasharray"),
              attr(drawn[k], "polyline", "stroke-dasharray"));
    ASSERT_EQ(markers_of(legend[k]).size(), 1u) << legend[k];
    EXPECT_EQ(markers_of(legend[k])[0], markers_of(drawn[k])[0]);
  }
}

TEST(Plot, SeriesWithNothingDrawableHaveNoLegendEntry) {
  const std::string svg = svg_line_plot({{"shown", {1, 10}, {1, 10}},
                                         {"empty", {}, {}},
                                         {"nan", {1, 10}, {NAN, INFINITY}},
                                         {"not positive", {1, 10}, {0, -3}}},
                                        {"t", "x", "y", true, true});
  EXPECT_EQ(lines_of(svg, true).size(), 1u) << svg;
  EXPECT_EQ(lines_of(svg, false).size(), 1u) << svg;
  EXPECT_NE(svg.find(">shown</text>"), std::string::npos);
  for (const char* name : {">empty<", ">nan<", ">not positive<"})
    EXPECT_EQ(svg.find(name), std::string::npos) << name;
  // On a linear axis 0 and -3 are drawable, so that series is named.
  EXPECT_NE(svg_line_plot({{"not positive", {1, 10}, {0, -3}}}, {}).find(">not positive<"),
            std::string::npos);
}

// One evaluation makes a one-point series; a one-point polyline draws nothing.
TEST(Plot, OnePointSeriesDrawsAMarkerEvenWithMarkersOff) {
  Series one{"val", {100}, {2.5}};
  for (bool markers : {true, false}) {
    one.markers = markers;
    const std::string svg = svg_line_plot({{"train", {1, 50, 100}, {5, 3, 2}}, one}, {});
    const std::vector<std::string> drawn = lines_of(svg, false);
    ASSERT_EQ(drawn.size(), 2u) << svg;
    EXPECT_EQ(drawn[1].find("<polyline"), std::string::npos) << drawn[1];
    EXPECT_EQ(markers_of(drawn[1]).size(), 1u) << drawn[1];
    EXPECT_EQ(markers_of(lines_of(svg, true)[1]).size(), 1u);
  }
}

TEST(Plot, LongSeriesGetThinnedMarkersAndLineOnlySeriesNone) {
  Series many{"many", {}, {}};
  for (int i = 0; i < 1000; ++i) many.x.push_back(i), many.y.push_back(std::sin(i / 50.0));
  Series raw = many;
  raw.name = "raw";
  raw.markers = false;
  raw.opacity = 0.3;
  raw.style = 0;
  many.style = 0;
  const std::vector<std::string> drawn = lines_of(svg_line_plot({raw, many}, {}), false);
  ASSERT_EQ(drawn.size(), 2u);
  EXPECT_TRUE(markers_of(drawn[0]).empty());
  EXPECT_EQ(attr(drawn[0], "g", "opacity"), "0.3");
  EXPECT_EQ(attr(drawn[0], "g", "stroke"), attr(drawn[1], "g", "stroke"));  // one style
  EXPECT_EQ(count_of(attr(drawn[1], "polyline", "points"), ","), 1000u);  // every point on the line
  const size_t n = markers_of(drawn[1]).size();
  EXPECT_GE(n, 20u);
  EXPECT_LE(n, 60u);
}

// By hand, weight 0.5: the averages 0.5, 1.25, 2.125 over 1 - 0.5^n = 0.5, 0.75, 0.875.
TEST(Plot, EmaSmoothIsDebiasedLikeTensorBoard) {
  const std::vector<double> s = ema_smooth({1, 2, 3}, 0.5);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_DOUBLE_EQ(s[0], 1.0);  // not 0.5: the start at 0 is divided out
  EXPECT_DOUBLE_EQ(s[1], 1.25 / 0.75);
  EXPECT_DOUBLE_EQ(s[2], 2.125 / 0.875);
  // A non-finite value passes through and is not counted: 3 follows 1 as the second value.
  const std::vector<double> g = ema_smooth({1, NAN, 3}, 0.5);
  EXPECT_DOUBLE_EQ(g[0], 1.0);
  EXPECT_TRUE(std::isnan(g[1]));
  EXPECT_DOUBLE_EQ(g[2], (0.25 + 1.5) / 0.75);
  // A constant stays constant from its first value; weight 0 is no smoothing.
  for (double v : ema_smooth({4, 4, 4, 4}, 0.9)) EXPECT_NEAR(v, 4.0, 1e-12);
  EXPECT_EQ(ema_smooth({3, 1, 2}, 0.0), (std::vector<double>{3, 1, 2}));
  EXPECT_TRUE(ema_smooth({}, 0.9).empty());
}

// A log axis spanning less than a decade used to place its range's ends labelled as the nearest
// powers of ten: a 21–62 MiB memory plot read "1e1" and "1e2".
TEST(Plot, LogTicksAreLabelledWithTheirValues) {
  auto labels = [](double lo, double hi) {
    const std::string svg = svg_line_plot({{"s", {1, 2}, {lo, hi}}}, {"", "", "", false, true});
    std::vector<std::string> out;  // the y axis's labels are the right-aligned texts
    const std::string open = "text-anchor=\"end\" dy=\"4\">";
    for (size_t at = svg.find(open); at != std::string::npos; at = svg.find(open, at + 1))
      out.push_back(svg.substr(at + open.size(), svg.find('<', at) - at - open.size()));
    return out;
  };
  EXPECT_EQ(labels(21, 62), (std::vector<std::string>{"30", "40", "50", "60"}));
  EXPECT_EQ(labels(2e4, 3e5), (std::vector<std::string>{"2e4", "5e4", "1e5", "2e5"}));
  EXPECT_EQ(labels(1e3, 1e9),  // only powers of ten: all written alike
            (std::vector<std::string>{"1e3", "1e4", "1e5", "1e6", "1e7", "1e8", "1e9"}));
  // Between 1 and 2 times a power of ten: linear ticks.
  EXPECT_EQ(labels(1020, 1080), (std::vector<std::string>{"1020", "1040", "1060", "1080"}));
}
