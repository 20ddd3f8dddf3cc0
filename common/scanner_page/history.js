// A symbol's history in its detail (GET /api/history/{asset}?days=N), drawn with uPlot (vendor/, MIT): every
// leg's settled funding APR as steps, and a pair's price spread from the recorder's board samples.
// Uses scanner.js's helpers (isNum, pct, bps, getJson). Every value from the API is drawn or written as text.
"use strict";

const HISTORY_REFRESH_MS = 60000;  // the recorder samples every few minutes and settles hourly at most
const HOURS_PER_YEAR = 8760;
const BPS_PER_UNIT = 1e4;
const DEFAULT_SAMPLE_MS = 300000;  // history.sample_seconds' default: the pairing tolerance with one sample
const CHART_HEIGHT = 260;
const LEG_COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                    "#7f7f7f", "#bcbd22"];
const USDC_RATE_SYMBOL = "USDC/USDT:USDT";  // its mid is the USDT price of a USDC, as in the live table

const past = {
  days: 7, detail: null,   // the days chosen; the detail shown (its pair is the spread chart's default)
  asked: {asset: null, days: null}, fetched: 0, request: 0,  // the latest request, and when it was made
  asset: null, shownDays: null, data: null, usdc: null, error: null,  // the answer drawn
  pair: null,              // [long key, short key] chosen for the spread chart, for the asset shown
  charts: {funding: null, spread: null},
};

// -- what a leg is called ---------------------------------------------------------------------------
const legKey = (leg) => `${leg.exchange} ${leg.symbol}`;
const quoteOfSymbol = (symbol) => ((symbol.split("/")[1] || "").split(":")[0] || null);
function legLabel(leg, legs) {
  const quote = quoteOfSymbol(leg.symbol);
  const name = quote && quote !== "USDT" ? `${leg.exchange} · ${quote}` : leg.exchange;
  // Two legs of one exchange and quote (a dated future beside the perpetual) are told apart by their symbol.
  return legs.filter((l) => l.exchange === leg.exchange && quoteOfSymbol(l.symbol) === quote).length > 1
    ? `${name} ${leg.symbol}` : name;
}

// -- fetching ----------------------------------------------------------------------------------------
// Called at every poll of the detail (scanner.js): asks for the history when the asset or the days change,
// and once a minute; one request at a time per asset and days, however slow its answer.
function showHistory(detail) {
  past.detail = detail;
  if (!detail || (past.asset !== null && past.asset !== detail.symbol)) clearHistory();
  if (!detail) return;
  const due = past.asked.asset !== detail.symbol || past.asked.days !== past.days ||
    Date.now() - past.fetched > HISTORY_REFRESH_MS;
  if (due) fetchHistory(detail.symbol, past.days);
}

async function fetchHistory(asset, days) {
  const mine = ++past.request;
  Object.assign(past, {asked: {asset, days}, fetched: Date.now()});
  try {
    const data = await getJson(`/api/history/${encodeURIComponent(asset)}?days=${days}`);
    // A USDC leg's prices are compared in USDT at the USDC/USDT perpetual's samples, when there are any.
    const quotes = new Set(data.legs.map((l) => quoteOfSymbol(l.symbol)));
    const usdc = quotes.has("USDC") && quotes.size > 1
      ? await getJson(`/api/history/USDC?days=${days}`).catch(() => null) : null;
    if (mine !== past.request) return;  // another asset or other days were asked for meanwhile
    if (past.asset !== asset) past.pair = null;
    Object.assign(past, {asset, shownDays: days, data, usdc, error: null});
  } catch (e) {
    if (mine !== past.request) return;
    Object.assign(past, {asset, shownDays: days, data: null, usdc: null, error: e.message});
  }
  drawHistory();
}

function clearHistory() {
  for (const name of Object.keys(past.charts)) destroyChart(name);
  Object.assign(past, {asked: {asset: null, days: null}, asset: null, shownDays: null, data: null, usdc: null,
                       error: null, pair: null});
  document.getElementById("history-note").textContent = "";
  document.getElementById("spread-note").textContent = "";
  past.request++;  // an answer still on its way is for a detail no longer shown
}

function destroyChart(name) {
  if (past.charts[name]) past.charts[name].destroy();
  past.charts[name] = null;
  const box = document.getElementById("chart-" + name);
  box.replaceChildren();
  for (const attribute of ["data-points", "data-days", "data-from", "data-to", "data-series"]) box.removeAttribute(attribute);
}

// -- drawing -----------------------------------------------------------------------------------------
function pressDays() {
  for (const button of document.querySelectorAll("#history-days button")) {
    button.setAttribute("aria-pressed", String(Number(button.dataset.days) === past.days));
  }
}

function drawHistory() {
  pressDays();
  const note = document.getElementById("history-note");
  if (past.error) {
    note.textContent = `No history: ${past.error}`;
    destroyChart("funding");
    destroyChart("spread");
    return;
  }
  const data = past.data;
  if (!data) return;
  const span = `${past.shownDays} day${past.shownDays === 1 ? "" : "s"}`;
  note.textContent = data.legs.length
    ? `${data.symbol}: the last ${span}, ${new Date(data.from).toLocaleString()} to ${new Date(data.to).toLocaleString()}.`
    : `${data.symbol}: nothing recorded in the last ${span}.`;
  drawFunding(data);
  drawPairChoice(data);
  drawSpread(data);
}

function drawFunding(data) {
  // Settlements as steps: a rate is drawn over the interval it settled (the step ends at its funding time);
  // one without an interval has no APR and is left out.
  const legs = data.legs.map((leg) => {
    const points = leg.settlements.filter(([, rate, hours]) => isNum(rate) && isNum(hours) && hours > 0);
    return {leg, times: points.map(([t]) => t / 1000), aprs: points.map(([, rate, hours]) => rate * HOURS_PER_YEAR / hours)};
  }).filter((l) => l.times.length);
  const series = legs.map(({leg}, i) => ({
    label: legLabel(leg, data.legs), stroke: LEG_COLORS[i % LEG_COLORS.length], width: 2, spanGaps: true,
    paths: uPlot.paths.stepped({align: -1}), points: {show: false}, value: (u, v) => pct(v)}));
  const aligned = legs.length ? uPlot.join(legs.map((l) => [l.times, l.aprs])) : [[]];
  draw("funding", series, aligned, (u, ticks) => ticks.map((v) => pct(v, 1)), data,
       legs.reduce((n, l) => n + l.times.length, 0));
}

function drawPairChoice(data) {
  const sampled = data.legs.filter((leg) => leg.samples.length);
  const keys = sampled.map(legKey);
  if (!past.pair || !past.pair.every((key) => keys.includes(key))) past.pair = defaultPair(sampled);
  for (const [side, chosen] of [["long", past.pair && past.pair[0]], ["short", past.pair && past.pair[1]]]) {
    const select = document.getElementById("spread-" + side);
    select.replaceChildren(...sampled.map((leg) => {
      const option = document.createElement("option");
      option.value = legKey(leg);
      option.textContent = legLabel(leg, data.legs);
      option.selected = legKey(leg) === chosen;
      return option;
    }));
  }
}

function defaultPair(sampled) {
  // The live pair of the detail when both its legs have samples; else the first two legs sampled.
  const live = past.detail && past.detail.pairs[0];
  const keys = sampled.map(legKey);
  if (live && keys.includes(legKey(live.long)) && keys.includes(legKey(live.short))) return [legKey(live.long), legKey(live.short)];
  return keys.length >= 2 ? [keys[0], keys[1]] : null;
}

function drawSpread(data) {
  const note = document.getElementById("spread-note");
  const byKey = new Map(data.legs.map((leg) => [legKey(leg), leg]));
  const [long, short] = past.pair ? past.pair.map((key) => byKey.get(key)) : [null, null];
  let problem = null, points = {times: [], spreads: []};
  if (!long || !short) problem = "Fewer than two legs have board samples in this window.";
  else if (long === short) problem = "Choose two different legs.";
  else {
    const rate = usdcRateSamples();
    const inUsdt = (leg) => quoteOfSymbol(leg.symbol) === "USDC" && quoteOfSymbol(long.symbol) !== quoteOfSymbol(short.symbol);
    if ((inUsdt(long) || inUsdt(short)) && !rate) {
      problem = "No USDC/USDT samples to compare a USDC leg's prices with a USDT leg's: choose two legs of one quote.";
    } else {
      points = spreadPoints(long, short, inUsdt(long) ? rate : null, inUsdt(short) ? rate : null);
      if (!points.times.length) problem = "The two legs have no samples with prices at the same times.";
    }
  }
  note.textContent = problem || "";
  const label = long && short ? `${legLabel(short, data.legs)} over ${legLabel(long, data.legs)}` : "spread";
  const series = problem ? [] : [{label, stroke: LEG_COLORS[0], width: 2, points: {show: false}, value: (u, v) => isNum(v) ? bps(v) + " bps" : "–"}];
  draw("spread", series, problem ? [[]] : [points.times, points.spreads], (u, ticks) => ticks.map((v) => bps(v)), data,
       problem ? 0 : points.times.length);
}

function usdcRateSamples() {
  const legs = past.usdc ? past.usdc.legs.filter((leg) => leg.symbol === USDC_RATE_SYMBOL && leg.samples.length) : [];
  if (!legs.length) return null;
  return legs.reduce((most, leg) => leg.samples.length > most.samples.length ? leg : most);
}

// A sample's mid: (bid + ask) / 2, else its mark price (Hyperliquid's board has impact prices only).
function sampleMid(sample) {
  const [, bid, ask, mark] = sample;
  if (isNum(bid) && isNum(ask) && bid > 0 && ask > 0) return (bid + ask) / 2;
  return isNum(mark) && mark > 0 ? mark : null;
}

// Each long sample against the short leg's sample nearest in time, within half the sampling period: the
// recorder stamps each exchange's sample with its board's time, a few seconds apart across exchanges.
function spreadPoints(long, short, longRate, shortRate) {
  const tolerance = samplePeriod(long.samples) / 2;
  const times = [], spreads = [];
  for (const sample of long.samples) {
    const ts = sample[0];
    const longMid = converted(sampleMid(sample), longRate, ts, tolerance);
    const shortMid = converted(midNear(short.samples, ts, tolerance), shortRate, ts, tolerance);
    if (!isNum(longMid) || !isNum(shortMid)) continue;
    times.push(ts / 1000);
    spreads.push((shortMid - longMid) / ((shortMid + longMid) / 2) * BPS_PER_UNIT);
  }
  return {times, spreads};
}

function converted(mid, rateLeg, ts, tolerance) {
  if (!isNum(mid) || !rateLeg) return mid;
  const rate = midNear(rateLeg.samples, ts, tolerance);
  return isNum(rate) ? mid * rate : null;
}

function midNear(samples, ts, tolerance) {
  let low = 0, high = samples.length - 1;
  while (low < high) {  // the first sample at or after ts
    const middle = (low + high) >> 1;
    if (samples[middle][0] < ts) low = middle + 1; else high = middle;
  }
  const near = [samples[low], samples[low - 1]].filter((s) => s && Math.abs(s[0] - ts) <= tolerance);
  near.sort((a, b) => Math.abs(a[0] - ts) - Math.abs(b[0] - ts));
  return near.length ? sampleMid(near[0]) : null;
}

function samplePeriod(samples) {
  const gaps = samples.slice(1).map((s, i) => s[0] - samples[i][0]).sort((a, b) => a - b);
  return gaps.length ? Math.max(gaps[gaps.length >> 1], 1000) : DEFAULT_SAMPLE_MS;
}

function draw(name, series, data, yValues, answer, points) {
  destroyChart(name);
  const box = document.getElementById("chart-" + name);
  Object.entries({"data-points": points, "data-days": past.shownDays, "data-from": answer.from, "data-to": answer.to,
                  "data-series": series.length}).forEach(([k, v]) => box.setAttribute(k, String(v)));
  if (!series.length) return;
  const width = Math.max(400, Math.min(1400, document.getElementById("detail").clientWidth - 20));
  const chart = past.charts[name] = new uPlot({
    width, height: CHART_HEIGHT, series: [{label: "Time"}, ...series], scales: {x: {time: true}},
    axes: [{}, {values: yValues, size: 70}], cursor: {drag: {x: true, y: false}},  // drag to zoom in
  }, data, box);
  chart.setScale("x", {min: answer.from / 1000, max: answer.to / 1000});  // the whole window asked for
}

// -- the controls ------------------------------------------------------------------------------------
function startHistory() {
  document.getElementById("history-days").addEventListener("click", (e) => {
    const days = Number(e.target.closest("button")?.dataset.days);
    if (!days || !past.detail) return;
    past.days = days;
    pressDays();
    showHistory(past.detail);
  });
  for (const side of ["long", "short"]) {
    document.getElementById("spread-" + side).addEventListener("change", () => {
      past.pair = [document.getElementById("spread-long").value, document.getElementById("spread-short").value];
      if (past.data) drawSpread(past.data);
    });
  }
}

document.addEventListener("DOMContentLoaded", startHistory);
