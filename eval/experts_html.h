// The self-contained HTML page of `monet experts` (no network, no external files): the report's
// JSON and the active-experts histograms (SVG) are embedded, and the page's script builds the
// expert table (sortable, filterable; a click shows the expert's top contexts) and the per-domain
// heat map.
#pragma once
#include <string>
#include <vector>

namespace monet::interp {

// `json`: experts.json's text; `histograms`: one SVG per site, in the order of json["sites"].
std::string experts_html_page(const std::string& json, const std::vector<std::string>& histograms);

}  // namespace monet::interp
