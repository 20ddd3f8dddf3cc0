// The scanner page: polls the JSON API every POLL_MS and redraws. Plain DOM, no framework, no build step.
// Every value from the API is written with textContent, never as HTML.
"use strict";

const POLL_MS = 2000;
const state = {
  rows: [], status: null, detail: null, sort: {key: "spread", desc: true},
  detailAsset: null,       // the asset whose detail is shown (the API maps BTCUSDT, BTCUSDC... to BTC)
  clockOffset: 0,          // server time minus this browser's, so that countdowns follow the scanner's clock
  notionals: [], exchanges: [], apiError: null,
  poll: 0,                 // the latest poll's number: an older poll that answers late is not drawn
};

// -- formatting ------------------------------------------------------------------------------------
const isNum = (v) => typeof v === "number" && Number.isFinite(v);
const pct = (v, digits = 2) => isNum(v) ? (v * 100).toFixed(digits) + "%" : "–";
const bps = (v) => isNum(v) ? v.toFixed(1) : "–";
const price = (v) => isNum(v) ? String(Number(v.toPrecision(8))) : "–";
const rate = (v) => isNum(v) ? (v * 100).toFixed(4) + "%" : "–";
const hours = (v) => isNum(v) ? (v < 100 ? v.toFixed(1) : Math.round(v).toLocaleString("en-US")) + " h" : "–";
function money(v) {
  if (!isNum(v)) return "–";
  const units = [[1e9, "B"], [1e6, "M"], [1e3, "k"]];
  for (const [size, unit] of units) if (Math.abs(v) >= size) return "$" + Number((v / size).toFixed(1)) + unit;
  return "$" + v.toFixed(0);
}
function countdown(nextMs) {
  if (!isNum(nextMs)) return "–";
  let s = Math.round((nextMs - (Date.now() + state.clockOffset)) / 1000);
  if (s <= 0) return "due";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  s %= 60;
  return (h ? h + "h " : "") + String(m).padStart(2, "0") + "m " + String(s).padStart(2, "0") + "s";
}
// Rows are base assets; a leg not in USDT says its quote beside its exchange ("hyperliquid · USDC").
const venue = (leg) => leg.quote && leg.quote !== "USDT" ? `${leg.exchange} · ${leg.quote}` : leg.exchange;
// A USDC leg's volume in USD at the row's USDC/USDT rate (a cross-quote row carries it), else as it is.
const toUsd = (leg, usdcRate) => leg.quote === "USDC" && isNum(usdcRate) ? usdcRate : 1;
const legUsd = (leg, usdcRate) => isNum(leg.volume_24h) && isNum(leg.bid) && isNum(leg.ask)
  ? leg.volume_24h * (leg.bid + leg.ask) / 2 * toUsd(leg, usdcRate) : null;
const rowUsd = (r) => minOf(legUsd(r.long, r.usdc_usdt_rate), legUsd(r.short, r.usdc_usdt_rate));
const priceCell = (r) => r.price_note && !isNum(r.price_spread_bps) ? "no rate" : bps(r.price_spread_bps);

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

// -- the table's columns: label, sort value, cell ----------------------------------------------------
function columns() {
  const cols = [
    {key: "symbol", label: "Symbol", value: (r) => r.symbol, cell: (r) => r.symbol},
    {key: "long", label: "Long", value: (r) => venue(r.long), cell: (r) => venue(r.long), title: (r) => r.long.symbol},
    {key: "long_apr", label: "Long APR", value: (r) => r.long.funding_apr, cell: (r) => pct(r.long.funding_apr),
     title: (r) => `rate ${rate(r.long.funding_rate)} per ${r.long.funding_interval_hours} h`},
    {key: "long_next", label: "Funding in", value: (r) => r.long.next_funding_time, countdown: (r) => r.long.next_funding_time},
    {key: "short", label: "Short", value: (r) => venue(r.short), cell: (r) => venue(r.short), title: (r) => r.short.symbol},
    {key: "short_apr", label: "Short APR", value: (r) => r.short.funding_apr, cell: (r) => pct(r.short.funding_apr),
     title: (r) => `rate ${rate(r.short.funding_rate)} per ${r.short.funding_interval_hours} h`},
    {key: "short_next", label: "Funding in", value: (r) => r.short.next_funding_time, countdown: (r) => r.short.next_funding_time},
    {key: "spread", label: "APR spread", value: (r) => r.funding_apr_spread, cell: (r) => pct(r.funding_apr_spread)},
    ...REALIZED_WINDOWS.map((w) => ({
      key: "realized_" + w, label: `Realized ${w}`, signed: true, value: (r) => realized(r, w), cell: (r) => pct(realized(r, w)),
      title: (r) => `settled over ${w}, per year: short ${pct(legRealized(r.short, w))} − long ${pct(legRealized(r.long, w))}`})),
    {key: "price_spread", label: "Price bps", value: (r) => r.price_spread_bps, cell: priceCell,
     title: (r) => r.price_note || (!isNum(r.price_spread_bps) ? "a leg has no bid/ask (Hyperliquid's board has only " +
       "impact prices; a watched symbol's book gives its top)" : isNum(r.usdc_usdt_rate) ? `USDC legs at ${price(r.usdc_usdt_rate)} USDT` : "")},
    {key: "long_basis", label: "Basis L bps", value: (r) => r.long.basis_bps, cell: (r) => bps(r.long.basis_bps)},
    {key: "short_basis", label: "Basis S bps", value: (r) => r.short.basis_bps, cell: (r) => bps(r.short.basis_bps)},
    {key: "volume", label: "Volume 24 h", value: rowUsd, cell: (r) => money(rowUsd(r))},
  ];
  for (const n of state.notionals) {
    const k = String(n), at = (r) => r.at_size && r.at_size[k];
    cols.push({key: "cost_" + k, label: `Cost bps @${money(n)}`, value: (r) => at(r) ? at(r).entry_cost_bps : null,
               cell: (r) => at(r) ? bps(at(r).entry_cost_bps) + (at(r).long_fill < 1 || at(r).short_fill < 1 ? " (thin)" : "") : "–"});
    cols.push({key: "even_" + k, label: `Break-even @${money(n)}`, value: (r) => at(r) ? at(r).break_even_hours : null,
               cell: (r) => at(r) ? hours(at(r).break_even_hours) : "–"});
  }
  cols.push({key: "age", label: "Age s", value: (r) => Math.max(r.long.age_seconds, r.short.age_seconds),
             cell: (r) => Math.max(r.long.age_seconds, r.short.age_seconds).toFixed(1)});
  return cols;
}
const minOf = (a, b) => isNum(a) && isNum(b) ? Math.min(a, b) : null;
// The realized APR (SPEC 14): a row's spread, or a leg's own, over one window; null when not covered.
const REALIZED_WINDOWS = ["1d", "3d", "7d", "30d"];
const realized = (r, w) => (r.realized_apr_spread || {})[w] ?? null;
const legRealized = (leg, w) => (leg.realized_apr || {})[w] ?? null;

function sortedRows(cols) {
  const col = cols.find((c) => c.key === state.sort.key) || cols[0];
  const dir = state.sort.desc ? -1 : 1;
  return [...state.rows].sort((a, b) => {
    const x = col.value(a), y = col.value(b);
    if (x === null || x === undefined) return (y === null || y === undefined) ? 0 : 1;  // nulls last either way
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : x > y ? 1 : 0) * dir || a.symbol.localeCompare(b.symbol);
  });
}

function drawTable() {
  const cols = columns();
  const head = document.getElementById("head");
  head.replaceChildren(...cols.map((c) => {
    const th = el("th", c.label, {"data-col": c.key, "tabindex": "0", "aria-sort": "none"});
    if (c.key === state.sort.key) {
      th.classList.add(state.sort.desc ? "desc" : "asc");
      th.setAttribute("aria-sort", state.sort.desc ? "descending" : "ascending");
    }
    return th;
  }));
  const body = document.querySelector("#opportunities tbody");
  body.replaceChildren(...sortedRows(cols).map((r) => {
    const tr = el("tr", null, {"data-symbol": r.symbol});
    if (state.detailAsset === r.symbol) tr.classList.add("selected");
    for (const c of cols) {
      const td = c.countdown ? el("td", countdown(c.countdown(r)), {"data-next": c.countdown(r) ?? ""})
                             : el("td", c.cell(r));
      td.setAttribute("data-col", c.key);
      if (c.title) td.title = c.title(r);
      if ((c.signed || c.key === "spread" || c.key === "price_spread") && isNum(c.value(r))) td.classList.add(c.value(r) >= 0 ? "pos" : "neg");
      tr.appendChild(td);
    }
    return tr;
  }));
  document.getElementById("empty").hidden = state.rows.length > 0 || state.apiError !== null;
}

// -- banner and per-exchange feeds ---------------------------------------------------------------------
function drawStatus() {
  const banner = document.getElementById("banner"), st = state.status;
  let message = null;
  if (state.apiError) message = `The scanner does not answer (${state.apiError}): the values below are from before.`;
  else if (st && !st.broker_connected) message = "RabbitMQ is unreachable: no new data arrives and the values below are ageing. The scanner reconnects by itself.";
  else if (st && st.data_stale) message = st.last_message_time === null
      ? "No data yet: waiting for boards and snapshots from the workers."
      : `Data is stale: no exchange has published for more than ${st.stale_after_seconds} s.`;
  banner.hidden = message === null;
  banner.textContent = message || "";
  if (!st) return;
  document.getElementById("stale-after").textContent = st.stale_after_seconds;
  const feeds = Object.entries(st.exchanges).map(([name, e]) => {
    const span = el("span", `${name} ${e.stale ? "stale " : ""}${e.age_seconds.toFixed(1)} s`, {"data-exchange": name});
    span.className = e.stale ? "feed stale" : "feed";
    return span;
  });
  document.getElementById("feeds").replaceChildren(...feeds);
  drawExchangeBoxes(Object.keys(st.exchanges));
}

function drawExchangeBoxes(names) {
  const box = document.getElementById("f-exchanges");
  for (const name of names) {
    if (state.exchanges.includes(name)) continue;
    state.exchanges.push(name);
    const input = el("input", null, {type: "checkbox", value: name});
    input.checked = !chosenFromUrl() || chosenFromUrl().includes(name);
    const label = el("label");
    label.append(input, " " + name);
    box.appendChild(label);
  }
}
const chosenFromUrl = () => (new URLSearchParams(location.search).get("exchanges") || "").split(",").filter(Boolean).length
  ? new URLSearchParams(location.search).get("exchanges").split(",") : null;

// -- the asset's detail: every leg (exchange and quote) -------------------------------------------------
function pairText(p) {
  const leg = (l) => `${venue(l)} ${l.symbol} (${pct(l.funding_apr)})`;
  const gap = p.price_note ? `price spread – (${p.price_note})` : `price spread ${bps(p.price_spread_bps)} bps`;
  return `${p.symbol}: long ${leg(p.long)}, short ${leg(p.short)}: APR spread ${pct(p.funding_apr_spread)}, ${gap}`;
}

function drawDetail(d) {
  const section = document.getElementById("detail");
  section.hidden = !d;
  state.detailAsset = d ? d.symbol : null;
  showHistory(d);  // history.js: fetched when the asset or the days change, and once a minute
  if (!d) return;
  document.getElementById("detail-symbol").textContent = d.symbol;
  const usdc = d.legs.some((l) => l.quote === "USDC");
  document.getElementById("detail-rate").textContent = !usdc ? "" : isNum(d.usdc_usdt_rate)
    ? `USDC legs' prices are compared in USDT at ${price(d.usdc_usdt_rate)} USDT per USDC (the mid of USDC/USDT:USDT).`
    : "No fresh USDC/USDT rate: a USDC leg's prices are not compared with a USDT leg's.";
  const pairs = d.pairs.map((p) => {
    const div = el("div", null, {"class": "pair"});
    div.appendChild(el("p", pairText(p), {"class": "pair-text"}));
    const inUsdt = p.long.quote !== p.short.quote ? " (USDT)" : "";
    if (p.at_size) div.appendChild(table(["Notional" + inUsdt, "Long VWAP", "Long fill", "Short VWAP", "Short fill", "Entry cost bps", "Break-even"],
      Object.entries(p.at_size).map(([n, a]) => [money(Number(n)), price(a.long_vwap), pct(a.long_fill, 1), price(a.short_vwap),
        pct(a.short_fill, 1), bps(a.entry_cost_bps), hours(a.break_even_hours)]), "pair-at-size"));
    else div.appendChild(el("p", p.price_note ? `No cost at size: ${p.price_note}.`
      : "No cost at size: a deep book is missing or stale on one of the legs."));
    return div;
  });
  if (!pairs.length) pairs.push(el("p", "Not paired: fewer than two perpetuals have fresh funding for it."));
  document.getElementById("detail-pairs").replaceChildren(...pairs);

  const legs = d.legs, fields = [
    ["Symbol", (l) => l.symbol], ["Quote", (l) => l.quote || "–"], ["State", (l) => l.stale ? "STALE" : "fresh"],
    ["Age s", (l) => l.age_seconds.toFixed(1)],
    ["Funding rate", (l) => rate(l.funding_rate)], ["Interval", (l) => hours(l.funding_interval_hours)],
    ["Funding APR", (l) => pct(l.funding_apr)], ["Next funding in", (l) => countdown(l.next_funding_time), (l) => l.next_funding_time],
    ...REALIZED_WINDOWS.map((w) => [`Realized APR ${w}`, (l) => pct(legRealized(l, w))]),
    ["Bid", (l) => price(l.bid)], ["Ask", (l) => price(l.ask)],
    ["Impact bid / ask", (l) => isNum(l.impact_bid) || isNum(l.impact_ask) ? `${price(l.impact_bid)} / ${price(l.impact_ask)}` : "–"],
    ["Last", (l) => price(l.last)],
    ["Mark", (l) => price(l.mark_price)], ["Index", (l) => price(l.index_price)], ["Basis bps", (l) => bps(l.basis_bps)],
    ["24 h volume (base)", (l) => price(l.volume_24h)], ["24 h volume (USD)", (l) => money(l.volume_usd)],
    ["Open interest (base)", (l) => price(l.open_interest)], ["Contract size", (l) => price(l.contract_size)],
    ["Taker fee bps", (l) => bps(l.taker_fee_bps)],
    ["Book levels", (l) => l.book ? `${l.book.bid_levels} / ${l.book.ask_levels} (${l.book.age_seconds.toFixed(1)} s)` : "–"],
  ];
  const legTable = document.getElementById("detail-legs");
  legTable.replaceChildren(headRow(["", ...legs.map(venue)], legs), ...fields.map(([label, cell, next]) => {
    const tr = el("tr");
    tr.appendChild(el("th", label));
    legs.forEach((l) => {
      const td = el("td", cell(l), {"data-exchange": l.exchange, "data-symbol": l.symbol});
      if (next) td.setAttribute("data-next", next(l) ?? "");
      if (l.stale) td.classList.add("stale");
      tr.appendChild(td);
    });
    return tr;
  }));
  const depthRows = [];
  for (const n of state.notionals.map(String)) {
    depthRows.push([`Buy ${money(Number(n))}: VWAP (fill)`, ...legs.map((l) => l.at_size ? `${price(l.at_size[n].buy_vwap)} (${pct(l.at_size[n].buy_fill, 1)})` : "–")]);
    depthRows.push([`Sell ${money(Number(n))}: VWAP (fill)`, ...legs.map((l) => l.at_size ? `${price(l.at_size[n].sell_vwap)} (${pct(l.at_size[n].sell_fill, 1)})` : "–")]);
  }
  const depth = document.getElementById("detail-depth");
  depth.replaceChildren(headRow(["", ...legs.map(venue)], legs), ...depthRows.map((cells) => {
    const tr = el("tr");
    cells.forEach((c, i) => tr.appendChild(el(i ? "td" : "th", c)));
    return tr;
  }));
}

function headRow(labels, legs) {
  const tr = el("tr");
  labels.forEach((label, i) => {
    const th = el("th", label);
    if (i && legs[i - 1].stale) th.classList.add("stale");
    tr.appendChild(th);
  });
  return tr;
}

function table(labels, rows, id) {
  const t = el("table", null, {id});
  t.appendChild(headRow(labels, labels.map(() => ({}))));
  for (const cells of rows) {
    const tr = el("tr");
    cells.forEach((c) => tr.appendChild(el("td", c)));
    t.appendChild(tr);
  }
  return t;
}

// -- filters, polling, events ----------------------------------------------------------------------
function filterQuery() {
  const q = new URLSearchParams();
  const symbol = document.getElementById("f-symbol").value.trim();
  const volume = document.getElementById("f-volume").value.trim();
  const boxes = [...document.querySelectorAll("#f-exchanges input")];
  const chosen = boxes.filter((b) => b.checked).map((b) => b.value);
  if (symbol) q.set("symbol", symbol);
  if (boxes.length && chosen.length < boxes.length) q.set("exchanges", chosen.join(",") || "none");
  else if (!boxes.length && chosenFromUrl()) q.set("exchanges", chosenFromUrl().join(","));
  if (volume) q.set("min_volume_usd", volume);
  return q;
}

async function getJson(url) {
  const response = await fetch(url, {cache: "no-store"});
  const body = await response.json();
  if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), {status: response.status});
  return body;
}

async function poll() {
  const mine = ++state.poll;
  const query = filterQuery();
  history.replaceState(null, "", (query.toString() ? "?" + query : location.pathname) + location.hash);
  try {
    state.status = await getJson("/api/status");
    state.notionals = state.status.notionals;
    state.clockOffset = state.status.timestamp - Date.now();
    const data = await getJson("/api/opportunities?" + query);
    if (mine !== state.poll) return;
    state.rows = data.rows;
    state.apiError = null;
    document.getElementById("filter-error").textContent = "";
    document.getElementById("updated").textContent = "updated " + new Date(data.timestamp).toLocaleTimeString();
  } catch (e) {
    if (e.status === 400) document.getElementById("filter-error").textContent = e.message;
    else state.apiError = e.message;
  }
  await pollDetail();
  drawStatus();
  drawTable();
}

async function pollDetail() {
  state.detail = location.hash.length > 1 ? decodedHash(location.hash.slice(1)) : null;
  if (!state.detail) return drawDetail(null);
  try {
    drawDetail(await getJson("/api/symbol/" + encodeURIComponent(state.detail)));
  } catch (e) {
    drawDetail(null);
  }
}

// A hash that is not valid percent-encoding ("#%", "#%E0") is taken as it is: decodeURIComponent throws
// on it, and a throw here stopped every later poll from drawing.
function decodedHash(hash) {
  try {
    return decodeURIComponent(hash);
  } catch (e) {
    return hash;
  }
}

function tick() {  // the countdowns, once a second, between polls
  for (const td of document.querySelectorAll("[data-next]")) {
    const next = Number(td.getAttribute("data-next"));
    td.textContent = td.getAttribute("data-next") === "" ? "–" : countdown(next);
  }
}

function start() {
  const params = new URLSearchParams(location.search);
  document.getElementById("f-symbol").value = params.get("symbol") || "";
  document.getElementById("f-volume").value = params.get("min_volume_usd") || "";
  document.getElementById("filters").addEventListener("input", () => poll());
  document.getElementById("filters").addEventListener("submit", (e) => { e.preventDefault(); poll(); });
  document.getElementById("head").addEventListener("click", (e) => {
    const key = e.target.closest("th")?.getAttribute("data-col");
    if (!key) return;
    state.sort = {key, desc: state.sort.key === key ? !state.sort.desc : true};
    drawTable();
  });
  document.querySelector("#opportunities tbody").addEventListener("click", (e) => {
    const tr = e.target.closest("tr");
    if (tr) { location.hash = tr.getAttribute("data-symbol"); }
  });
  document.getElementById("detail-close").addEventListener("click", () => {
    history.replaceState(null, "", location.pathname + location.search);
    pollDetail().then(drawTable);
  });
  window.addEventListener("hashchange", () => pollDetail().then(drawTable));
  poll();
  setInterval(poll, POLL_MS);
  setInterval(tick, 1000);
}

document.addEventListener("DOMContentLoaded", start);
