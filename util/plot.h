// Small, dependency-free SVG plots: the loss curve at the end of training, the log-log complexity
// plots of `monet table` (lines), and the bar charts of `monet experts` / `monet mask` (bars).
#pragma once
#include <string>
#include <vector>

namespace monet {

struct Series {
  std::string name;
  std::vector<double> x, y;
  // Line plots only (svg_bar_plot ignores these three).
  // Draw a marker at each point (every k-th one when a series has more than 60, so a long curve
  // stays a line). Off suits a dense raw curve; a series with a single drawable point is given a
  // marker anyway, since a one-point line draws nothing.
  bool markers = true;
  // Of the whole series (line and markers): e.g. 0.3 for a raw curve behind its smoothed one.
  double opacity = 1.0;
  // Which entry of the colour / dash / marker cycle to use; -1: the series' position. Two series
  // may share one, e.g. a raw curve and its smoothed version in the same colour.
  int style = -1;
};

struct PlotOptions {
  std::string title, xlabel, ylabel;
  bool logx = false, logy = false;
  int width = 720, height = 440;
  // Line plots: ticks at these x values (labelled as they are, e.g. the N of each measured point:
  // 256, 1024, 4096) instead of round numbers between them. Empty: round numbers.
  std::vector<double> xticks = {};
};

// The SVG document as a string (non-finite points, and non-positive ones on a log axis, are
// skipped). Each style has its own colour, dash pattern and marker shape, so series with equal
// values stay told apart where they overlap; the legend shows all three. A series with no
// drawable point gets no legend entry.
std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& opt);

// A grouped bar chart: one group per category, one bar per series in each group, series[k].y[c]
// the height of series k's bar in category c (x is ignored). Bars start at 0, so negative values
// point down. Non-finite values draw no bar. opt.logx / opt.logy are ignored. With many
// categories only every n-th one is labelled.
std::string svg_bar_plot(const std::vector<std::string>& categories,
                         const std::vector<Series>& series, const PlotOptions& opt);

// An exponential moving average with TensorBoard's debiasing: s_i = w s_{i-1} + (1 - w) y_i from
// s_{-1} = 0, reported as s_i / (1 - w^n), n the finite values so far, so that the first values
// are not pulled towards 0. Non-finite values pass through and leave the average as it was.
// weight is in [0, 1); 0 returns y.
std::vector<double> ema_smooth(const std::vector<double>& y, double weight);

}  // namespace monet
