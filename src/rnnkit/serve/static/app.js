// rnnkit playground: talks to the API of the server that sent this page. No libraries, nothing fetched from
// elsewhere: plain DOM, fetch() (its body read as a stream for server-sent events) and hand-drawn SVG.
"use strict";

// The pages (the URL's #hash), one per endpoint: a page shows the models that answer at its endpoint
// (the last part of each model's URL in /v1/models), whatever their task.
const PANELS = ["generate", "classify", "forecast", "translate", "caption", "answer", "embeddings"];
const TITLES = {generate: "Generate", classify: "Classify", forecast: "Forecast", translate: "Translate",
                caption: "Caption", answer: "Ask", embeddings: "Word vectors"};
const SVG = "http://www.w3.org/2000/svg";
let MODELS = [];
let running = [];          // AbortControllers of the generation streams under way

const $ = (id) => document.getElementById(id);

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const c of children) node.append(c);
  return node;
}

function showError(err) {
  const box = $("error");
  box.hidden = !err;
  box.textContent = err ? String(err.message || err) : "";
}

const endpointOf = (m) => m.endpoint.split("/").pop();

function selected(panel) {
  const name = document.querySelector(`#${panel} select.model`).value;
  return MODELS.find((m) => m.model === name);
}

// The API key, when the server asks for one (401): asked once in a form, kept for this tab only
// (sessionStorage: gone when the tab closes), and sent as "Authorization: Bearer KEY" with every request.
const KEY = "rnnkit-api-key";

function headers(extra = {}) {
  const key = sessionStorage.getItem(KEY);
  return key ? {...extra, authorization: `Bearer ${key}`} : extra;
}

function askForKey(message) {
  const form = $("key-form");
  form.hidden = false;
  $("key-message").textContent = message;
  $("key-input").focus();
  return new Promise((resolve) => {
    form.onsubmit = (event) => {
      event.preventDefault();
      sessionStorage.setItem(KEY, $("key-input").value.trim());
      form.hidden = true;
      resolve();
    };
  });
}

// fetch() with the key; a 401 asks for the key and tries again.
async function api(url, options = {}) {
  for (;;) {
    const r = await fetch(url, {...options, headers: headers(options.headers)});
    if (r.status !== 401) return r;
    const had = sessionStorage.getItem(KEY);
    await askForKey(had ? "That key was refused; enter the server's API key." :
                          "This server needs an API key (rnnkit serve --api-key or RNNKIT_API_KEY).");
  }
}

// POST JSON to an endpoint of the selected model; an error answer throws its one-line message.
async function call(panel, endpoint, body) {
  const m = selected(panel);
  const r = await api(`/v1/models/${encodeURIComponent(m.model)}/${endpoint}`, {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)});
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function answeredBy(data) {
  return data.version === null ? `model ${data.model}` : `model ${data.model}, version ${data.version}`;
}

// --- pages ------------------------------------------------------------------------------------------------

async function init() {
  MODELS = (await (await api("/v1/models")).json()).models;
  for (const panel of PANELS) {
    const models = MODELS.filter((m) => endpointOf(m) === panel);
    if (!models.length) continue;
    $("tabs").append(el("a", {href: `#${panel}`, "data-panel": panel}, TITLES[panel]));
    const select = document.querySelector(`#${panel} select.model`);
    for (const m of models) {
      const label = m.version === null ? m.model : `${m.model} (version ${m.version})`;
      select.append(el("option", {value: m.model}, label));
    }
  }
  $("loading").hidden = true;
  window.addEventListener("hashchange", show);
  show();
}

function show() {
  const available = [...document.querySelectorAll("#tabs a")].map((a) => a.dataset.panel);
  const wanted = location.hash.slice(1);
  const panel = available.includes(wanted) ? wanted : available[0];
  for (const name of PANELS) $(name).hidden = name !== panel;
  for (const a of document.querySelectorAll("#tabs a")) a.classList.toggle("active", a.dataset.panel === panel);
  showError(null);
  const cls = selected("classify");
  if (panel === "classify" && cls) {
    const series = cls.details.input === "series";
    $("cls-label").textContent = series ? "Series as JSON: a list of (steps x channels) arrays" : "Texts, one per line";
  }
}

// --- generate: tokens stream in as server-sent events ----------------------------------------------------------

function temperatureHint(t) {
  if (t === 0) return "0: always the most likely token (greedy)";
  if (t < 0.35) return "low: safe and repetitive, it repeats itself";
  if (t < 0.9) return "middle: varied, mostly real words";
  return "high: surprising, it invents words";
}

function updateTemperature() {
  const t = Number($("gen-temp").value);
  $("gen-temp-value").textContent = t.toFixed(2);
  $("gen-temp-hint").textContent = temperatureHint(t);
}

// One streamed generation into a <pre>; resolves when the server sends "done".
async function streamInto(pre, meta, body) {
  const m = selected("generate");
  const ctrl = new AbortController();
  running.push(ctrl);
  const r = await api(`/v1/models/${encodeURIComponent(m.model)}/generate`, {
    method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify({...body, stream: true}),
    signal: ctrl.signal});
  if (!r.ok) throw new Error((await r.json()).error);
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const {value, done} = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, {stream: true});
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {        // one event: "event: NAME\ndata: {json}"
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const event = /^event: (.*)$/m.exec(block)[1];
      const data = JSON.parse(/^data: (.*)$/m.exec(block)[1]);
      if (event === "token") pre.append(data.text);
      else if (event === "error") showError(data.error);
      else if (event === "done") {
        meta.textContent = `${answeredBy(data)} · ${data.tokens} tokens · ended by ${data.finish_reason} · ` +
                           `seed ${data.seed}`;
      }
    }
  }
}

async function generate(temperatures) {
  showError(null);
  const outputs = $("gen-outputs");
  outputs.replaceChildren();
  const prompt = $("gen-prompt").value;
  const seedText = $("gen-seed").value;
  const seed = seedText === "" ? Math.floor(Math.random() * 1e9) : Number(seedText);
  const jobs = temperatures.map((t) => {
    const pre = el("pre", {class: "text"}, el("span", {class: "prompt"}, prompt));
    const meta = el("div", {class: "meta"});
    outputs.append(el("div", {class: "output"}, el("h3", {}, `temperature ${t.toFixed(2)}`), pre, meta));
    return streamInto(pre, meta, {prompt, temperature: t, max_tokens: Number($("gen-max").value), seed});
  });
  $("gen-stop").disabled = false;
  try {
    await Promise.all(jobs);
  } catch (err) {
    if (err.name !== "AbortError") showError(err);
  } finally {
    running = [];
    $("gen-stop").disabled = true;
  }
}

// --- classify: probability bars --------------------------------------------------------------------------------

function bars(entries, best) {
  return entries.map(([label, p]) => el("div", {class: label === best ? "bar top" : "bar"},
    el("span", {}, label),
    el("span", {class: "track"}, el("span", {class: "fill", style: `width:${(100 * Math.max(0, p)).toFixed(1)}%;display:block`})),
    el("span", {class: "value"}, p.toFixed(3))));
}

async function classify() {
  showError(null);
  const out = $("cls-results");
  out.replaceChildren();
  try {
    const series = selected("classify").details.input === "series";
    const raw = $("cls-input").value;
    const texts = raw.split("\n").filter((t) => t.trim());
    const body = series ? {series: JSON.parse(raw)} : {texts};
    const data = await call("classify", "classify", body);
    data.predictions.forEach((p, i) => {
      const entries = Object.entries(p.probabilities).sort((a, b) => b[1] - a[1]);
      out.append(el("div", {class: "result"},
        el("div", {class: "text"}, series ? `series ${i + 1}` : texts[i]), ...bars(entries, p.label)));
    });
    out.append(el("div", {class: "meta"}, answeredBy(data)));
  } catch (err) { showError(err); }
}

// --- forecast: the recent past and the forecast as an SVG line plot ----------------------------------------------

function plotForecast(data, target) {
  const W = 920, H = 320, L = 60, R = 20, T = 20, B = 40;
  const past = data.history.map((r) => ({time: r.time, y: r[target]}));
  const next = data.forecast.map((r) => ({time: r.time, y: r[target]}));
  const all = [...past, ...next];
  // x by time where the times are dates, else by position
  const dated = all.every((p) => !Number.isNaN(Date.parse(p.time)));
  const xs = all.map((p, i) => dated ? Date.parse(p.time) : (i < past.length ? i : Number(p.time)));
  const ys = all.map((p) => p.y).filter((y) => y !== null);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  let [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  if (y0 === y1) { y0 -= 1; y1 += 1; }
  const sx = (x) => L + (W - L - R) * (x1 === x0 ? 0.5 : (x - x0) / (x1 - x0));
  const sy = (y) => T + (H - T - B) * (1 - (y - y0) / (y1 - y0));
  const svg = el("svg:svg", {width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img"});
  svg.append(el("svg:rect", {x: L, y: T, width: W - L - R, height: H - T - B, fill: "#fbfcfe", stroke: "#d9dee7"}));
  for (const v of [y0, (y0 + y1) / 2, y1]) {
    svg.append(el("svg:line", {x1: L, x2: W - R, y1: sy(v), y2: sy(v), stroke: "#edf1f7"}));
    svg.append(el("svg:text", {x: L - 6, y: sy(v) + 4, "text-anchor": "end"}, v.toFixed(2)));
  }
  const pts = (list, offset) => list.map((p, i) => p.y === null ? null : `${sx(xs[offset + i])},${sy(p.y)}`)
                                    .filter((s) => s).join(" ");
  svg.append(el("svg:polyline", {points: pts(past, 0), fill: "none", stroke: "#2f6fde", "stroke-width": 2}));
  if (past.length && next.length) {
    const last = `${sx(xs[past.length - 1])},${sy(past[past.length - 1].y)}`;
    svg.append(el("svg:polyline", {points: `${last} ${pts(next, past.length)}`, fill: "none", stroke: "#e07b24",
                                   "stroke-width": 2, "stroke-dasharray": "6 4"}));
  }
  next.forEach((p, i) => svg.append(el("svg:circle", {cx: sx(xs[past.length + i]), cy: sy(p.y), r: 4,
                                                      fill: "#e07b24"})));
  svg.append(el("svg:text", {x: L, y: H - 14}, all[0].time));
  svg.append(el("svg:text", {x: W - R, y: H - 14, "text-anchor": "end"}, all[all.length - 1].time));
  svg.append(el("svg:text", {x: L + 8, y: T + 16, fill: "#2f6fde"}, `${target}: the last ${past.length} points`));
  svg.append(el("svg:text", {x: L + 8, y: T + 32, fill: "#e07b24"}, `forecast: ${next.length} point(s)`));
  return svg;
}

async function forecast() {
  showError(null);
  try {
    const data = await call("forecast", "forecast", {history: Number($("fc-history").value)});
    const target = data.targets[0];
    $("fc-plot").replaceChildren(plotForecast(data, target), el("div", {class: "meta"}, answeredBy(data)));
    const head = el("tr", {}, el("th", {}, "time"), ...data.targets.map((t) => el("th", {}, t)));
    const rows = data.forecast.map((r) => el("tr", {}, el("td", {}, r.time),
      ...data.targets.map((t) => el("td", {}, r[t] === null ? "–" : r[t].toFixed(3)))));
    $("fc-table").replaceChildren(head, ...rows);
  } catch (err) { showError(err); }
}

// --- translate: outputs and an attention heatmap ------------------------------------------------------------------

function heatmap(item) {
  const cols = item.source_tokens;
  const rows = item.attention.length > item.tokens.length ? [...item.tokens, "<eos>"] : item.tokens;
  // a cell as wide as the longest source token needs (word-level sources), rows of one height
  const CW = Math.max(28, 8 * Math.max(...cols.map((t) => t.length)) + 8), CH = 28;
  const left = 8 * Math.max(...rows.map((t) => t.length)) + 16, top = 30;
  const svg = el("svg:svg", {class: "heatmap", width: left + CW * cols.length + 10, height: top + CH * rows.length + 10});
  cols.forEach((t, j) => svg.append(el("svg:text", {x: left + CW * j + CW / 2, y: top - 8, "text-anchor": "middle"}, t)));
  rows.forEach((t, i) => {
    svg.append(el("svg:text", {x: left - 8, y: top + CH * i + CH / 2 + 4, "text-anchor": "end"}, t));
    item.attention[i].forEach((w, j) => svg.append(el("svg:rect", {
      x: left + CW * j, y: top + CH * i, width: CW - 2, height: CH - 2, fill: "#2f6fde",
      "fill-opacity": Math.max(0.04, w).toFixed(3)}, el("svg:title", {}, `${t} ← ${cols[j]}: ${w.toFixed(3)}`))));
  });
  return svg;
}

async function translate() {
  showError(null);
  const out = $("tr-results");
  out.replaceChildren();
  try {
    const texts = $("tr-input").value.split("\n").filter((t) => t.trim());
    const beam = $("tr-beam").value;
    const data = await call("translate", "translate", {texts, attention: true, beam: beam === "" ? null : Number(beam)});
    for (const t of data.translations) {
      out.append(el("div", {class: "result"}, el("div", {class: "text"}, `${t.source}  →  ${t.text}`), heatmap(t)));
    }
    out.append(el("div", {class: "meta"}, "attention: each output token (row) over the source tokens (columns)"));
    out.append(el("div", {class: "meta"}, answeredBy(data)));
  } catch (err) { showError(err); }
}

// --- images: upload one, see where a model looked (captioning; reusable by any task that takes an image) ----

// The file chosen in an <input type=file>, as a data: URL (the API takes it as its base64 "image" field).
function readImage(input) {
  const file = input.files && input.files[0];
  if (!file) return Promise.reject(new Error("image: choose an image file first"));
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(new Error(`image: could not read ${file.name}`));
    reader.readAsDataURL(file);
  });
}

// The image with a (rows x cols) grid of weights shaded over it: the brighter a cell, the more it was looked at.
function attentionOver(src, grid, label, width = 160) {
  const [rows, cols] = [grid.length, grid[0].length];
  const height = Math.round(width * Math.max(rows / cols, 0.18));     // the grid has the image's shape
  const top = Math.max(...grid.flat(), 1e-8);
  const svg = el("svg:svg", {width, height: height + 18, class: "attention"});
  svg.append(el("svg:image", {href: src, x: 0, y: 18, width, height, preserveAspectRatio: "none",
                              style: "image-rendering: pixelated"}));
  grid.forEach((row, i) => row.forEach((w, j) => svg.append(el("svg:rect", {
    x: (width * j) / cols, y: 18 + (height * i) / rows, width: width / cols, height: height / rows, fill: "#000",
    "fill-opacity": (0.75 * (1 - w / top)).toFixed(3)}, el("svg:title", {}, `${label}: ${w.toFixed(3)}`)))));
  svg.append(el("svg:text", {x: width / 2, y: 13, "text-anchor": "middle"}, label));
  return svg;
}

async function caption() {
  showError(null);
  const out = $("cap-results");
  out.replaceChildren();
  try {
    const image = await readImage($("cap-file"));
    const beam = $("cap-beam").value;
    const m = selected("caption");
    const attention = Boolean(m && m.details && m.details.attention);
    const data = await call("caption", "caption", {image, attention, beam: beam === "" ? null : Number(beam)});
    out.append(el("div", {class: "result"}, el("div", {class: "text"},
      data.caption + (data.capped ? "   (cut at the word limit: the model never wrote <end>)" : ""))));
    if (data.attention) {
      const words = [...data.words, "<end>"];
      const strip = el("div", {class: "row"});
      data.attention.forEach((grid, k) => strip.append(attentionOver(image, grid, words[k] || "")));
      out.append(strip, el("div", {class: "meta"},
        `attention: each word's weights over the ${data.grid[0]} x ${data.grid[1]} feature grid`));
    }
    out.append(el("div", {class: "meta"}, answeredBy(data)));
  } catch (err) { showError(err); }
}

// The answer to a question about an image, with each answer's probability (the most likely first).
async function answer() {
  showError(null);
  const out = $("vqa-results");
  out.replaceChildren();
  try {
    const image = await readImage($("vqa-file"));
    const question = $("vqa-question").value.trim();
    const data = await call("answer", "answer", {image, question});
    const ranked = Object.entries(data.probabilities).sort((a, b) => b[1] - a[1]);
    out.append(el("div", {class: "result"}, el("img", {src: image, class: "thumb", alt: "the image asked about"}),
      el("div", {class: "text"}, `${question} → ${data.answer}`), ...bars(ranked, data.answer)));
    out.append(el("div", {class: "meta"}, answeredBy(data)));
  } catch (err) { showError(err); }
}

// --- word vectors ----------------------------------------------------------------------------------------------------

async function neighbours() {
  showError(null);
  const out = $("emb-results");
  out.replaceChildren();
  try {
    const data = await call("embeddings", "embeddings", {word: $("emb-word").value.trim(),
                                                         num_results: Number($("emb-top").value)});
    const shown = data.vector.slice(0, 8).map((v) => v.toFixed(3)).join(", ");
    out.append(el("div", {class: "result"},
      el("div", {class: "text"}, `${data.word}: [${shown}${data.vector.length > 8 ? ", …" : ""}] (${data.vector.length} dimensions)`),
      ...bars(data.neighbors.map((n) => [n.word, n.similarity]), null)));
    out.append(el("div", {class: "meta"}, `${answeredBy(data)} · cosine similarity`));
  } catch (err) { showError(err); }
}

// --- wiring -----------------------------------------------------------------------------------------------------------

$("gen-temp").addEventListener("input", updateTemperature);
$("gen-go").addEventListener("click", () => generate([Number($("gen-temp").value)]));
$("gen-compare").addEventListener("click", () => generate([0.2, 0.5, 1.0]));
$("gen-stop").addEventListener("click", () => running.forEach((c) => c.abort()));
$("cls-go").addEventListener("click", classify);
$("fc-go").addEventListener("click", forecast);
$("tr-go").addEventListener("click", translate);
$("cap-go").addEventListener("click", caption);
$("vqa-go").addEventListener("click", answer);
$("emb-go").addEventListener("click", neighbours);
$("emb-word").addEventListener("keydown", (e) => { if (e.key === "Enter") neighbours(); });
updateTemperature();
init().catch(showError);
