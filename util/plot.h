// Small, dependency-free SVG plots: the loss curve at the end of training, the log-log complexity
// plots of `monet table` (lines), and the bar charts of `monet experts` / `monet mask` (bars).
#pragma once
#include <string>
#include <vector>

namespace monet {

struct Series {
  std::string name;
  std::vector<double> x, y;
};

struct PlotOptions {
  std::string title, xlabel, ylabel;
  bool logx = false, logy = false;
  int width = 720, height = 440;
};

// The SVG document as a string (non-finite points, and non-positive ones on a log axis, are
// skipped).
std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& opt);

// A grouped bar chart: one group per category, one bar per series in each group, series[k].y[c]
// the height of series k's bar in category c (x is ignored). Bars start at 0, so negative values
// point down. Non-finite values draw no bar. opt.logx / opt.logy are ignored. With many
// categories only every n-th one is labelled.
std::string svg_bar_plot(const std::vector<std::string>& categories,
                         const std::vector<Series>& series, const PlotOptions& opt);

}  // namespace monet
