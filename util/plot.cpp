#include "util/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace monet {

namespace {

const char* kColours[] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd",
                          "#ff7f0e", "#8c564b", "#17becf"};

// Dash patterns (solid, dashed, dotted, dash-dot, long dash) and marker shapes cycle with the
// colour; their cycle lengths differ from the colours', so two series share all three only 35
// styles apart.
const char* kDashes[] = {"", "7,4", "2,3", "9,3,2,3", "14,4"};
constexpr size_t kShapes = 7;  // circle, square, triangle, diamond, cross, triangle down, plus

// Marker `shape` centred on (x, y). The caller's group sets the stroke; markers are hollow, so a
// later series' marker on the same point does not hide an earlier one's.
std::string marker(size_t shape, double x, double y) {
  const double r = 3.6;
  switch (shape % kShapes) {
    case 0:
      return fmt::format("<circle cx=\"{:.1f}\" cy=\"{:.1f}\" r=\"{}\"/>", x, y, r);
    case 1:
      return fmt::format("<rect x=\"{:.1f}\" y=\"{:.1f}\" width=\"{:.1f}\" height=\"{:.1f}\"/>",
                         x - 0.85 * r, y - 0.85 * r, 1.7 * r, 1.7 * r);
    case 2:
      return fmt::format("<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\"/>", x,
                         y - 1.15 * r, x + r, y + 0.6 * r, x - r, y + 0.6 * r);
    case 3:
      return fmt::format(
          "<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\"/>", x,
          y - 1.2 * r, x + r, y, x, y + 1.2 * r, x - r, y);
    case 4:
      return fmt::format("<path d=\"M{:.1f},{:.1f}L{:.1f},{:.1f}M{:.1f},{:.1f}L{:.1f},{:.1f}\"/>",
                         x - r, y - r, x + r, y + r, x - r, y + r, x + r, y - r);
    case 5:
      return fmt::format("<polygon points=\"{:.1f},{:.1f} {:.1f},{:.1f} {:.1f},{:.1f}\"/>", x,
                         y + 1.15 * r, x + r, y - 0.6 * r, x - r, y - 0.6 * r);
    default:
      return fmt::format("<path d=\"M{:.1f},{:.1f}L{:.1f},{:.1f}M{:.1f},{:.1f}L{:.1f},{:.1f}\"/>",
                         x - 1.2 * r, y, x + 1.2 * r, y, x, y - 1.2 * r, x, y + 1.2 * r);
  }
}

// Characters of UTF-8 text (bytes that do not continue a character), for the legend's width.
size_t chars(const std::string& s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

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

// The plot area's frame and the two axis labels, shared by the line and the bar plots.
std::string frame_svg(double L, double T, double W, double H, const PlotOptions& opt) {
  return fmt::format(
      "<rect x=\"{0}\" y=\"{1}\" width=\"{2}\" height=\"{3}\" fill=\"none\" stroke=\"#333\"/>\n"
      "<text x=\"{4}\" y=\"{5}\" text-anchor=\"middle\">{6}</text>\n"
      "<text x=\"16\" y=\"{7}\" text-anchor=\"middle\" transform=\"rotate(-90 16 "
      "{7})\">{8}</text>\n",
      L, T, W, H, L + W / 2, opt.height - 12, esc(opt.xlabel), T + H / 2, esc(opt.ylabel));
}

// "Nice" tick values covering [lo, hi]; on a log axis lo, hi and the ticks are log10 of values.
std::vector<double> ticks(double lo, double hi, bool log) {
  std::vector<double> t;
  if (log) {
    // Powers of ten, or 1-2-5 or 1…9 times them when fewer than three fall in the range; a range
    // narrower still gets linear ticks. (Placing lo and hi themselves, labelled as the nearest
    // power of ten, named 20 MiB "1e1".)
    const std::vector<std::vector<double>> steps = {{1}, {1, 2, 5}, {1, 2, 3, 4, 5, 6, 7, 8, 9}};
    for (const std::vector<double>& mantissas : steps) {
      t.clear();
      for (double e = std::floor(lo); e <= std::ceil(hi); e += 1)
        for (double m : mantissas)
          if (const double v = e + std::log10(m); v >= lo - 1e-9 && v <= hi + 1e-9) t.push_back(v);
      if (t.size() >= 3) break;
    }
    if (t.size() > 10) {  // many decades: every k-th, so that labels do not touch
      const size_t every = (t.size() + 7) / 8;
      std::vector<double> kept;
      for (size_t i = 0; i < t.size(); i += every) kept.push_back(t[i]);
      t = kept;
    }
    if (t.size() >= 2) return t;
    for (double v : ticks(std::pow(10, lo), std::pow(10, hi), false))
      if (v > 0) t.push_back(std::log10(v));
    return t;
  }
  const double span = hi - lo, raw = span / 5;
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  const double step = raw / mag < 2 ? 2 * mag : raw / mag < 5 ? 5 * mag : 10 * mag;
  for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step)
    t.push_back(v + 0.0);  // -0 → 0
  return t;
}

// The ticks of an axis and their labels: up to 4 significant digits with short exponents ("2e5",
// not "2e+05"), or "1eN" throughout when a log axis has only powers of ten.
std::vector<std::pair<double, std::string>> axis(double lo, double hi, bool log) {
  const std::vector<double> t = ticks(lo, hi, log);
  const bool decades = log && std::all_of(t.begin(), t.end(), [](double v) {
                         return std::abs(v - std::round(v)) < 1e-9;
                       });
  std::vector<std::pair<double, std::string>> out;
  for (double v : t) {
    std::string s = decades ? fmt::format("1e{}", std::lround(v))
                            : fmt::format("{:.4g}", log ? std::pow(10, v) : v);
    if (const size_t e = s.find('e'); e != std::string::npos && !decades)  // stoi drops + and 0s
      s = s.substr(0, e + 1) + std::to_string(std::stoi(s.substr(e + 1)));
    out.emplace_back(v, s);
  }
  return out;
}

}  // namespace

std::string svg_line_plot(const std::vector<Series>& series, const PlotOptions& opt) {
  auto tx = [&](double v) { return opt.logx ? std::log10(v) : v; };
  auto ty = [&](double v) { return opt.logy ? std::log10(v) : v; };
  auto ok = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && (!opt.logx || x > 0) && (!opt.logy || y > 0);
  };
  double x0 = std::numeric_limits<double>::infinity(), x1 = -x0, y0 = x0, y1 = -x0;
  size_t longest = 0;  // the longest legend name, in characters
  for (const Series& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (ok(s.x[i], s.y[i])) {
        x0 = std::min(x0, tx(s.x[i])), x1 = std::max(x1, tx(s.x[i]));
        y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
        longest = std::max(longest, chars(s.name));
      }
  if (!(x0 <= x1)) x0 = 0, x1 = 1, y0 = 0, y1 = 1;
  if (x1 - x0 < 1e-12) x0 -= 0.5, x1 += 0.5;
  if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
  // Padding keeps the markers of the extreme points off the frame.
  const double xpad = 0.02 * (x1 - x0), ypad = 0.04 * (y1 - y0);
  x0 -= xpad, x1 += xpad, y0 -= ypad, y1 += ypad;
  // Margins; the legend sits on the right, as wide as its longest name needs (sample 50 px, text
  // ~7.5 px a character at 12 px sans-serif, 12 px to spare).
  const double L = 70, T = 40, B = 50;
  const double R =
      longest == 0 ? 30
                   : std::clamp(62 + 7.5 * static_cast<double>(longest), 120.0, 0.45 * opt.width);
  const double W = opt.width - L - R, H = opt.height - T - B;
  auto px = [&](double v) { return L + (v - x0) / (x1 - x0) * W; };
  auto py = [&](double v) { return T + (1 - (v - y0) / (y1 - y0)) * H; };

  std::string o = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n<text x=\"{}\" y=\"22\" font-size=\"15\" "
      "text-anchor=\"middle\">{}</text>\n",
      opt.width, opt.height, L + W / 2, esc(opt.title));
  std::vector<std::pair<double, std::string>> xaxis;
  for (double v : opt.xticks)  // the data's own x values, where the caller names them
    if (ok(v, opt.logy ? 1.0 : 0.0) && tx(v) >= x0 && tx(v) <= x1)
      xaxis.emplace_back(tx(v), fmt::format("{:.6g}", v));
  if (xaxis.empty()) xaxis = axis(x0, x1, opt.logx);
  for (const auto& [t, text] : xaxis)
    o += fmt::format(
        "<line x1=\"{0:.1f}\" y1=\"{1}\" x2=\"{0:.1f}\" y2=\"{2}\" stroke=\"#ddd\"/>"
        "<text x=\"{0:.1f}\" y=\"{3}\" text-anchor=\"middle\">{4}</text>\n",
        px(t), T, T + H, T + H + 16, text);
  for (const auto& [t, text] : axis(y0, y1, opt.logy))
    o += fmt::format(
        "<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{0:.1f}\" text-anchor=\"end\" dy=\"4\">{4}</text>\n",
        py(t), L, L + W, L - 6, text);
  o += frame_svg(L, T, W, H, opt);
  size_t entries = 0;
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const size_t style = s.style >= 0 ? static_cast<size_t>(s.style) : k;
    std::vector<std::pair<double, double>> pts;  // in pixels
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (ok(s.x[i], s.y[i])) pts.emplace_back(px(tx(s.x[i])), py(ty(s.y[i])));
    if (pts.empty()) continue;  // nothing drawn, so nothing to name in the legend
    const std::string group =
        fmt::format("<g fill=\"none\" stroke=\"{}\" stroke-width=\"1.6\" opacity=\"{}\">",
                    kColours[style % std::size(kColours)], std::clamp(s.opacity, 0.0, 1.0));
    const char* dash = kDashes[style % std::size(kDashes)];
    const std::string dash_attr =
        *dash ? fmt::format(" stroke-dasharray=\"{}\"", dash) : std::string();
    o += group;
    if (pts.size() > 1) {
      o += fmt::format("<polyline{} stroke-linejoin=\"round\" points=\"", dash_attr);
      for (const auto& [x, y] : pts) o += fmt::format("{:.1f},{:.1f} ", x, y);
      o += "\"/>";
    }
    const bool markers = s.markers || pts.size() == 1;
    if (markers) {
      // A long series gets ~40 markers; their phase differs by style, so that thinned markers of
      // coinciding series fall on different points.
      const size_t every = pts.size() > 60 ? (pts.size() + 39) / 40 : 1;
      const size_t phase = (style % kShapes) * every / kShapes;
      o += "<g stroke-width=\"1.3\">";
      for (size_t i = phase; i < pts.size(); i += every)
        o += marker(style, pts[i].first, pts[i].second);
      o += "</g>";
    }
    o += "</g>\n";
    // The legend's sample: a stretch of the line with its dash pattern, and the marker on it.
    const double ly = T + 14 + 18 * static_cast<double>(entries++), lx = L + W + 12;
    o += group;
    if (pts.size() > 1)  // a lone point draws no line, so its sample has none either
      o += fmt::format("<line x1=\"{0}\" y1=\"{1}\" x2=\"{2}\" y2=\"{1}\"{3}/>", lx, ly, lx + 30,
                       dash_attr);
    if (markers) o += fmt::format("<g stroke-width=\"1.3\">{}</g>", marker(style, lx + 15, ly));
    o += fmt::format("</g><text x=\"{}\" y=\"{}\" dy=\"4\">{}</text>\n", lx + 38, ly, esc(s.name));
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
  for (const auto& [t, text] : axis(y0, y1, false))
    o += fmt::format(
        "<line x1=\"{1}\" y1=\"{0:.1f}\" x2=\"{2}\" y2=\"{0:.1f}\" stroke=\"#ddd\"/>"
        "<text x=\"{3}\" y=\"{0:.1f}\" text-anchor=\"end\" dy=\"4\">{4}</text>\n",
        py(t), L, L + W, L - 6, text);
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
  o += frame_svg(L, T, W, H, opt);
  for (size_t k = 0; k < series.size(); ++k) {
    const double ly = T + 14 + 18 * static_cast<double>(k);
    o += fmt::format(
        "<rect x=\"{0}\" y=\"{1}\" width=\"14\" height=\"10\" fill=\"{2}\"/>"
        "<text x=\"{3}\" y=\"{1}\" dy=\"9\">{4}</text>\n",
        L + W + 12, ly - 5, kColours[k % std::size(kColours)], L + W + 32, esc(series[k].name));
  }
  return o + "</svg>\n";
}

std::vector<double> ema_smooth(const std::vector<double>& y, double weight) {
  std::vector<double> out(y.size());
  double last = 0, kept = 1;  // kept = w^n: the share of the zero start still in `last`
  for (size_t i = 0; i < y.size(); ++i) {
    if (!std::isfinite(y[i])) {
      out[i] = y[i];
      continue;
    }
    last = weight * last + (1 - weight) * y[i];
    kept *= weight;
    out[i] = last / (1 - kept);
  }
  return out;
}

}  // namespace monet
