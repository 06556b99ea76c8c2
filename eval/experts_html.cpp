// The HTML page of `monet experts` (see experts_html.h). The page is one template; the data goes
// in as a JavaScript literal in which every '<' is written \u003c, so no text from the corpus
// (which holds "</script>" and "<!--" in its code) can end the script element.
#include "eval/experts_html.h"

#include <nlohmann/json.hpp>

namespace monet::interp {

namespace {

std::string script_safe(const std::string& json) {
  std::string o;
  o.reserve(json.size());
  for (char c : json) {
    if (c == '<')
      o += "\\u003c";
    else
      o += c;
  }
  return o;
}

const char* kPage = R"HTML(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Expert report</title>
<style>
body { font-family: sans-serif; font-size: 14px; margin: 16px 24px; color: #222; }
h1 { font-size: 20px; margin: 0 0 4px; } h2 { font-size: 16px; margin: 20px 0 6px; }
.muted { color: #666; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; text-align: right; border-bottom: 1px solid #eee; }
th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; user-select: none; }
th.sorted::after { content: " \25BE"; } th.sorted.asc::after { content: " \25B4"; }
td.l, th.l { text-align: left; }
tr.expert-row:hover { background: #eef4ff; cursor: pointer; } tr.selected { background: #dde8ff; }
#layout { display: flex; gap: 24px; align-items: flex-start; }
#tablebox { max-height: 640px; overflow-y: auto; border: 1px solid #ddd; }
#contexts { flex: 1; min-width: 380px; position: sticky; top: 8px; }
.ctx { font-family: monospace; white-space: pre-wrap; word-break: break-all; border-bottom: 1px solid #eee; padding: 3px 0; }
.ctx mark { background: #ffd54f; font-weight: bold; }
.ctx .meta { color: #888; font-family: sans-serif; font-size: 12px; }
.ws { color: #bbb; }
.bar { display: inline-block; height: 9px; background: #1f77b4; vertical-align: middle; }
</style>
</head>
<body>
<h1 id="title">Expert report</h1>
<div id="source" class="muted"></div>
<p><label>Routing site: <select id="site"></select></label> <span id="siteinfo" class="muted"></span></p>
<h2>Per domain</h2>
<table id="domains"><thead><tr><th class="l">domain</th><th>tokens</th><th>mean active experts / token</th><th>experts specialised (ratio &ge; 2)</th></tr></thead><tbody></tbody></table>
<h2>How many experts are active per token</h2>
<div id="hist"></div>
<h2>Per-domain heat map</h2>
<div class="muted">Every used expert is a column (binned when there are many), sorted by its top domain, then by selectivity; a cell is the share of the expert's routing probability that falls on the row's domain (white 0, dark blue 1).</div>
<div id="heat"></div>
<h2>Experts</h2>
<p>
<label>top domain <select id="domfilter"><option value="">any</option></select></label>
<label>&nbsp; min. active tokens <input id="minact" type="number" value="1" min="0" style="width:6em"></label>
<label>&nbsp; find <input id="find" type="text" placeholder="e.g. (3, 17)" style="width:8em"></label>
<span id="count" class="muted"></span>
</p>
<div class="muted">Selectivity = routing probability on the top domain / on the second domain (&infin;: no other domain routes to it). Click a column to sort, a row for its top contexts.</div>
<div id="layout">
<div id="tablebox"><table id="experts"><thead></thead><tbody></tbody></table></div>
<div id="contexts"><div class="muted">Click an expert.</div></div>
</div>
<script>
const DATA = /*DATA*/;
const HIST = /*HIST*/;
</script>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
const esc = (s) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
// Every number on the page goes through fmt: d significant digits, exponents outside [1e-3, 1e4).
const fmt = (x, d = 3) => (x === null || x === undefined) ? "\u221e" : (x === 0 ? "0" : (Math.abs(x) >= 1e4 || Math.abs(x) < 1e-3) ? Number(x).toExponential(d - 1) : Number(x).toPrecision(d));
const shown = (s) => esc(s).replace(/\n/g, '<span class="ws">\u21b5</span>\n').replace(/\t/g, '<span class="ws">\u2192</span>   ');
let site = 0, sortKey = "sel", sortAsc = false, selected = -1;

function sel(x) { return x.selectivity === null ? Infinity : x.selectivity; }
function totalActive(x) { return x.active.reduce((a, b) => a + b, 0); }
function totalProb(x) { return x.prob.reduce((a, b) => a + b, 0); }

function init() {
  $("title").textContent = DATA.title || ("Experts of a " + DATA.kind + " model");
  $("source").textContent = (DATA.source || "") + " | split: " + DATA.split + " | active: score > " + DATA.active_threshold;
  DATA.sites.forEach((s, i) => { const o = document.createElement("option"); o.value = i; o.textContent = s.name; $("site").appendChild(o); });
  DATA.domains.forEach((d) => { const o = document.createElement("option"); o.value = d; o.textContent = d; $("domfilter").appendChild(o); });
  $("site").onchange = () => { site = +$("site").value; selected = -1; render(); };
  for (const id of ["domfilter", "minact", "find"]) $(id).oninput = renderTable;
  // Hide the experts too rare for their selectivity to mean much: active on < 0.1% of the tokens.
  const tokens = DATA.sites[0].tokens.reduce((a, b) => a + b, 0);
  $("minact").value = Math.max(1, Math.round(tokens / 1000));
  render();
}

function render() {
  const s = DATA.sites[site];
  $("siteinfo").textContent = s.experts + " experts, " + s.expert_list.length + " used, " + s.unused + " never routed to; mean " + fmt(s.mean_active) + " active per token";
  $("domains").tBodies[0].innerHTML = DATA.domains.map((d, i) =>
    "<tr><td class=l>" + esc(d) + "</td><td>" + s.tokens[i] + "</td><td>" + fmt(s.mean_active_per_domain[i]) + "</td><td>" + s.specialised_ratio2[i] + "</td></tr>").join("");
  $("hist").innerHTML = HIST[site];
  renderHeat(s);
  renderHead();
  renderTable();
  const first = $("experts").tBodies[0].rows[0];  // show the top row's contexts to start with
  if (first) showContexts(+first.dataset.id);
  else $("contexts").innerHTML = '<div class="muted">No expert matches.</div>';
}

function renderHeat(s) {
  const D = DATA.domains.length;
  const idx = DATA.domains.reduce((m, d, i) => (m[d] = i, m), {});
  const xs = s.expert_list.slice().sort((a, b) => (idx[a.top_domain] - idx[b.top_domain]) || (sel(b) - sel(a)));
  const cols = Math.min(xs.length, 480), per = xs.length / Math.max(cols, 1);
  const cw = Math.max(1, Math.floor(960 / Math.max(cols, 1))), ch = 26, left = 90, top = 8;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", left + cols * cw + 10); svg.setAttribute("height", top + D * ch + 24);
  svg.setAttribute("font-size", "12"); svg.setAttribute("font-family", "sans-serif");
  for (let d = 0; d < D; ++d) {
    const t = document.createElementNS(ns, "text");
    t.setAttribute("x", left - 6); t.setAttribute("y", top + d * ch + ch / 2 + 4); t.setAttribute("text-anchor", "end");
    t.textContent = DATA.domains[d]; svg.appendChild(t);
  }
  for (let c = 0; c < cols; ++c) {
    const from = Math.floor(c * per), to = Math.max(from + 1, Math.floor((c + 1) * per));
    for (let d = 0; d < D; ++d) {
      let share = 0;
      for (let k = from; k < to; ++k) { const tot = totalProb(xs[k]); share += tot > 0 ? xs[k].prob[d] / tot : 0; }
      share /= (to - from);
      const r = document.createElementNS(ns, "rect");
      r.setAttribute("x", left + c * cw); r.setAttribute("y", top + d * ch); r.setAttribute("width", cw); r.setAttribute("height", ch - 1);
      const v = Math.round(255 * (1 - share));
      r.setAttribute("fill", "rgb(" + v + "," + Math.round(80 + 0.69 * v) + ",255)");
      r.setAttribute("class", "heat-cell");
      svg.appendChild(r);
    }
  }
  const t = document.createElementNS(ns, "text");
  t.setAttribute("x", left); t.setAttribute("y", top + D * ch + 16);
  t.textContent = xs.length + " experts" + (cols < xs.length ? " in " + cols + " columns of ~" + fmt(per, 2) : "") + ", grouped by top domain";
  svg.appendChild(t);
  $("heat").innerHTML = ""; $("heat").appendChild(svg);
}

function columns() {
  const cols = [
    { k: "label", name: "expert", l: true, v: (x) => x.id, show: (x) => esc(x.label) },
    { k: "top", name: "top domain", l: true, v: (x) => x.top_domain, show: (x) => esc(x.top_domain) },
    { k: "sel", name: "selectivity", v: sel, show: (x) => fmt(x.selectivity, 3) },
  ];
  DATA.domains.forEach((d, i) => cols.push({ k: "p" + i, name: "p(" + d + ")", v: (x) => x.prob[i], show: (x) => fmt(x.prob[i], 3) }));
  cols.push({ k: "act", name: "active tokens", v: totalActive, show: (x) => String(totalActive(x)) });
  return cols;
}

function renderHead() {
  const tr = document.createElement("tr");
  for (const c of columns()) {
    const th = document.createElement("th");
    th.textContent = c.name; if (c.l) th.className = "l";
    if (c.k === sortKey) th.classList.add("sorted"), sortAsc && th.classList.add("asc");
    th.onclick = () => { if (sortKey === c.k) sortAsc = !sortAsc; else sortKey = c.k, sortAsc = c.l === true; renderHead(); renderTable(); };
    tr.appendChild(th);
  }
  const thead = $("experts").tHead; thead.innerHTML = ""; thead.appendChild(tr);
}

function renderTable() {
  const s = DATA.sites[site], cols = columns(), col = cols.find((c) => c.k === sortKey);
  const dom = $("domfilter").value, minact = +$("minact").value || 0, find = $("find").value.trim();
  let xs = s.expert_list.filter((x) => (!dom || x.top_domain === dom) && totalActive(x) >= minact && (!find || x.label.includes(find)));
  xs.sort((a, b) => { const u = col.v(a), v = col.v(b); const r = u < v ? -1 : u > v ? 1 : a.id - b.id; return sortAsc ? r : -r; });
  const limit = 2000;
  $("count").textContent = xs.length + " experts" + (xs.length > limit ? ", the first " + limit + " shown" : "");
  const rows = xs.slice(0, limit).map((x) =>
    '<tr class="expert-row' + (x.id === selected ? " selected" : "") + '" data-id="' + x.id + '">' +
    cols.map((c) => "<td" + (c.l ? " class=l" : "") + ">" + c.show(x) + "</td>").join("") + "</tr>");
  const body = $("experts").tBodies[0];
  body.innerHTML = rows.join("");
  for (const tr of body.rows) tr.onclick = () => showContexts(+tr.dataset.id);
}

function showContexts(id) {
  selected = id;
  for (const tr of $("experts").tBodies[0].rows) tr.classList.toggle("selected", +tr.dataset.id === id);
  const s = DATA.sites[site], x = s.expert_list.find((e) => e.id === id);
  const pmax = Math.max(...x.prob, 1e-30);
  let h = "<h2>Expert " + esc(x.label) + " of " + esc(s.name) + "</h2><table>";
  DATA.domains.forEach((d, i) => h += "<tr><td class=l>" + esc(d) + "</td><td>" + fmt(x.prob[i], 3) +
    '</td><td class=l><span class="bar" style="width:' + Math.round(160 * x.prob[i] / pmax) + 'px"></span></td><td>' + x.active[i] + " active</td></tr>");
  h += "</table><h2>Top " + x.contexts.length + " contexts</h2>";
  for (const c of x.contexts)
    h += '<div class="ctx"><span class="meta">' + fmt(c.score, 3) + " &middot; " + esc(c.domain) + " @" + c.offset + "</span>\n" +
      shown(c.left) + "<mark>" + shown(c.token) + "</mark>" + shown(c.right) + "</div>";
  $("contexts").innerHTML = h;
}

init();
</script>
</body>
</html>
)HTML";

void replace_once(std::string& s, const std::string& what, const std::string& with) {
  const size_t at = s.find(what);
  if (at != std::string::npos) s.replace(at, what.size(), with);
}

}  // namespace

std::string experts_html_page(const std::string& json, const std::vector<std::string>& histograms) {
  std::string page = kPage;
  // HIST first: the DATA text could contain the HIST marker.
  replace_once(page, "/*HIST*/", script_safe(nlohmann::json(histograms).dump()));
  replace_once(page, "/*DATA*/", script_safe(json));
  return page;
}

}  // namespace monet::interp
