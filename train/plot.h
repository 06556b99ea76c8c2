// A small, dependency-free SVG line plot: the loss curve at the end of training, and the
// log-log complexity plots of `monet table`.
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

// The SVG document as a string (non-finite points, and non-positive ones on a log axis, are skipped).
std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& opt);

}  // namespace monet
