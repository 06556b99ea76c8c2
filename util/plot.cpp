#include "util/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace monet {

namespace {

const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                          "#ff7f0e", "#8c564b", "#17becf"};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<')
      o += "&lt;";
    else if (c == '>')
      o += "&gt;";
    else if (c == '&')
      o += "&amp;";
    else
      o += c;
  }
  return o;
}

// "Nice" tick values covering [lo, hi] (linear), or powers of ten (log).
std::vector<double> ticks(double lo, double hi, bool log) {
  std::vector<double> t;
  if (log) {
    for (double e = std::floor(lo); e <= std::ceil(hi) + 1e-9; e += 1)
      if (e >= lo - 1e-9 && e <= hi + 1e-9) t.push_back(e);
    if (t.size() < 2) t = {lo, hi};
    return t;
  }
  const double span = hi - lo, raw = span / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step)
    t.push_back(v + 0.0);  // -0 → 0
  return t;
}

std::string label(double v, bool log) {
  if (log) return fmt::format("1e{}", static_cast<int>(std::lround(v)));
  return fmt::format("{:.4g}", v);
}

}  // namespace

std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& opt) {
  const double L = 70, R = 170, T = 40, B = 50;  // margins; the legend sits on the right
  const double W = opt.width - L - R, H = opt.height - T - B;
  auto tx = [&](double v) { return opt.logx ? std::log10(v) : v; };
  auto ty = [&](double v) { return opt.logy ? std::log10(v) : v; };
  auto ok = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!opt.logx || x > 0) && (!opt.logy || y > 0);
  };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (ok(s.x[i], s.y[i])) {
        x0 = std::min(x0, tx(s.x[i])), x1 = std::max(x1, tx(s.x[i]));
        y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
      }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
  const double pad = 0.04 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double v) { return L + (v - x0) / (x1 - x0) * W; };
  auto py = [&](double v) { return T + (1 - (v - y0) / (y1 - y0)) * H; };

  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"15\" "
      "text-anchor=\"middle\">{}</text>\n",
      opt.width, opt.height, L + W / 2, esc(opt.title));
  for (double t : ticks(x0, x1, opt.logx))
    o += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px(t), T, T + H, T + H + 16, label(t, opt.logx));
  for (double t : ticks(y0, y1, opt.logy))
    o += fmt::format(
        "<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{0:.1f}\" text-anchor=\"end\" dy=\"4\">{4}</text>\n",
        py(t), L, L + W, L - 6, label(t, opt.logy));
  o += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", L, T,
      W, H);
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", L + W / 2,
                   opt.height - 12, esc(opt.xlabel));
  o += fmt::format(
      "<text x=\"16\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
      "{0})\">{1}</text>\n",
      T + H / 2, esc(opt.ylabel));
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const char* c = kColours[k % std::size(kColours)];
    std::string pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (ok(s.x[i], s.y[i])) pts += fmt::format("{:.1f},{:.1f} ", px(tx(s.x[i])), py(ty(s.y[i])));
    o += fmt::format("<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" points=\"{}\"/>\n",
                     c, pts);
    const double ly = T + 14 + 18 * static_cast<double>(k);
    o += fmt::format(
        "<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\" stroke=\"{3}\" stroke-width=\"3\"/>"
        "<text x=\"{4}\" y=\"{1}\" dy=\"4\">{5}</text>\n",
        L + W + 12, ly, L + W + 32, c, L + W + 38, esc(s.name));
  }
  return o + "</svg>\n";
}

std::string svg_bar_plot(const std::vector<std::string>& categories,
                         const std::vector<Series>& series, const PlotOptions& opt) {
  const double L = 70, R = 170, T = 40, B = 60;  // margins; the legend sits on the right
  const double W = opt.width - L - R, H = opt.height - T - B;
  const size_t nc = std::max<size_t>(1, categories.size()), ns = std::max<size_t>(1, series.size());
  double y0 = 0, y1 = 0;  // the range always includes 0, where the bars start
  for (const Series& s : series)
    for (size_t c = 0; c < s.y.size() && c < categories.size(); ++c)
      if (std::isfinite(s.y[c])) y0 = std::min(y0, s.y[c]), y1 = std::max(y1, s.y[c]);
  if (y1 - y0 < 1e-12) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  if (y1 > 0) y1 += pad;
  if (y0 < 0) y0 -= pad;
  auto py = [&](double v) { return T + (1 - (v - y0) / (y1 - y0)) * H; };
  const double group = W / static_cast<double>(nc), bar = 0.8 * group / static_cast<double>(ns);

  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"15\" "
      "text-anchor=\"middle\">{}</text>\n",
      opt.width, opt.height, L + W / 2, esc(opt.title));
  for (double t : ticks(y0, y1, false))
    o += fmt::format(
        "<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{0:.1f}\" text-anchor=\"end\" dy=\"4\">{4}</text>\n",
        py(t), L, L + W, L - 6, label(t, false));
  size_t longest = 1;  // label every n-th category so that labels of ~7 px a character never touch
  for (const std::string& c : categories) longest = std::max(longest, c.size());
  const size_t every =
      static_cast<size_t>(std::ceil((7.0 * static_cast<double>(longest) + 8) / group));
  for (size_t c = 0; c < categories.size(); ++c) {
    const double x = L + group * static_cast<double>(c) + 0.1 * group;
    for (size_t k = 0; k < series.size(); ++k) {
      if (c >= series[k].y.size() || !std::isfinite(series[k].y[c])) continue;
      const double v = series[k].y[c], top = py(std::max(v, 0.0)), bottom = py(std::min(v, 0.0));
      o += fmt::format(
          "<rect x=\"{:.2f}\" y=\"{:.2f}\" width=\"{:.2f}\" height=\"{:.2f}\" "
          "fill=\"{}\"><title>{} {}: "
          "{:.4g}</title></rect>\n",
          x + bar * static_cast<double>(k), top, std::max(bar, 0.5), bottom - top,
          kColours[k % std::size(kColours)], esc(series[k].name), esc(categories[c]), v);
    }
    if (c % every == 0)
      o += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                       L + group * (static_cast<double>(c) + 0.5), T + H + 16, esc(categories[c]));
  }
  o += fmt::format("<line x1=\"{0}\" y1=\"{1:.1f}\" x2=\"{2}\" y2=\"{1:.1f}\" stroke=\"#333\"/>\n",
                   L, py(0), L + W);
  o += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n", L, T,
      W, H);
  o += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n", L + W / 2,
                   opt.height - 14, esc(opt.xlabel));
  o += fmt::format(
      "<text x=\"16\" y=\"{0}\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
      "{0})\">{1}</text>\n",
      T + H / 2, esc(opt.ylabel));
  for (size_t k = 0; k < series.size(); ++k) {
    const double ly = T + 14 + 18 * static_cast<double>(k);
    o += fmt::format(
        "<rect x=\"{0}\" y=\"{1}\" width=\"14\" height=\"10\" fill=\"{2}\"/>"
        "<text x=\"{3}\" y=\"{1}\" dy=\"9\">{4}</text>\n",
        L + W + 12, ly - 5, kColours[k % std::size(kColours)], L + W + 32, esc(series[k].name));
  }
  return o + "</svg>\n";
}

}  // namespace monet
