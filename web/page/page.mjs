// The static page: loads model.text.onnx and onnxruntime-web's WebAssembly build from its own folder, then classifies
// what the visitor types, on this device. Every text the visitor gives is shown with textContent, never as HTML.

import * as ort from "./ort.wasm.min.mjs";
import { TextModel } from "./score.mjs";

const MODEL_FILE = "model.text.onnx";
const $ = (id) => document.getElementById(id);
const percent = (score) => `${(100 * score).toFixed(1)}%`;
let model = null;
let lastRecords = null;

// The words of a review as the text rule reads them (imdb-v1: lower case, <br /> and curly apostrophes replaced,
// runs of letters and digits joined by inner apostrophes): labels for the chart only. The file's own count (tokens)
// decides; when the two disagree, the chart numbers the steps instead of naming them.
function displayWords(text) {
  const normal = text.replace(/<br\s*\/?>/gi, " ").replace(/[\u2018\u2019]/g, "'").toLowerCase();
  return normal.match(/[\p{L}\p{N}]+(?:'[\p{L}\p{N}]+)*/gu) ?? [];
}

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

// What a visitor should know before trusting a score: no word read, no word known, or words cut.
function caveat(record) {
  if (record.tokens === 0) {
    return "No word at all (only punctuation, symbols or emoji): the score is the model's guess for an empty review, "
      + "not a reading of this one.";
  }
  if (record.unknown_tokens === record.tokens) {
    return "The model knows none of these words: the score is its guess for a review it cannot read.";
  }
  return "";
}

function describe(record) {
  const box = $("result");
  box.replaceChildren();
  if (record.error) {
    box.append(element("p", "Type a review first: this one is empty.", "error"));
    return;
  }
  const positive = record.label === model.labels[1];
  const line = element("p");
  line.append(element("span", percent(record.score), `score ${positive ? "positive" : "negative"}`));
  line.append(" positive, so ", element("strong", record.label, positive ? "positive" : "negative"));
  line.append(element("span", ` (label at a score of at least ${model.threshold}: ${model.labels[1]})`, "muted"));
  box.append(line);
  const read = `${record.tokens} word${record.tokens === 1 ? "" : "s"} read, ${record.unknown_tokens} outside the `
    + `model's ${Number(model.metadata.num_words ?? 0).toLocaleString("en")}-word vocabulary`;
  box.append(element("p", read, "muted"));
  const unread = caveat(record);
  if (unread) box.append(element("p", unread, "warning"));
  if (record.truncated) {
    const kept = model.truncating === "pre" ? "last" : "first";
    box.append(element("p", `Longer than the model reads: only its ${kept} ${model.wordsRead(record.tokens)} words `
      + "count.", "warning"));
  }
}

// The positive probability after each word: an SVG line over the threshold, one point a word, its word on hover.
function drawChart(steps, text, tokens) {
  const chart = $("chart");
  chart.replaceChildren();
  if (!steps || steps.length < 2) return;
  const words = displayWords(text);
  const read = model.wordsRead(tokens);
  const start = steps.length > read ? ["(start)"] : [];
  let named = null;
  if (words.length === tokens) {
    named = model.truncating === "pre" ? words.slice(words.length - read) : words.slice(0, read);
  }
  const labels = [...start, ...(named ?? Array.from({ length: read }, (_, index) => `word ${index + 1}`))];
  const [width, height, pad] = [800, 220, 30];
  const x = (index) => pad + (index * (width - 2 * pad)) / (steps.length - 1);
  const y = (value) => pad + (1 - value) * (height - 2 * pad);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", "positive probability after each word read");
  svg.dataset.steps = JSON.stringify(steps); // the values themselves, for a reader or a test
  svg.dataset.words = JSON.stringify(labels);
  svg.dataset.text = text;
  const add = (tag, attributes, text) => {
    const node = document.createElementNS(ns, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  add("line", { x1: pad, x2: width - pad, y1: y(model.threshold), y2: y(model.threshold), stroke: "#8c959f",
    "stroke-dasharray": "4 4" });
  for (const [value, text] of [[1, "100%"], [0, "0%"]]) {
    add("text", { x: 2, y: y(value) + 4, "font-size": 11, fill: "#5f6368" }, text);
  }
  add("polyline", { points: steps.map((value, index) => `${x(index)},${y(value)}`).join(" "), fill: "none",
    stroke: "#0969da", "stroke-width": 2 });
  steps.forEach((value, index) => {
    const dot = add("circle", { cx: x(index), cy: y(value), r: steps.length > 120 ? 1.5 : 3,
      fill: value >= model.threshold ? "#1a7f37" : "#c62828" });
    const title = document.createElementNS(ns, "title");
    title.textContent = `${labels[index]}: ${percent(value)}`;
    dot.append(title);
  });
  chart.append(element("p", "The positive probability after each word the model read (hover a point for its word; "
    + "dashed: the threshold).", "muted"), svg);
}

async function classifyOne() {
  const text = $("review").value;
  const [record] = await model.predict([text]);
  describe(record);
  drawChart(record.error ? null : await model.steps(text), text, record.tokens);
}

async function classifyMany() {
  const reviews = $("many").value.split(/\r?\n/).filter((line) => line.trim() !== "");
  const status = $("many-status");
  if (reviews.length === 0) {
    status.textContent = "Paste some reviews first, one a line.";
    return;
  }
  $("classify-many").disabled = true;
  const started = performance.now();
  const records = await model.predict(reviews, (done, total) => {
    status.textContent = `Classified ${done.toLocaleString("en")} of ${total.toLocaleString("en")}…`;
  });
  const seconds = (performance.now() - started) / 1000;
  const body = $("scores").tBodies[0];
  body.replaceChildren();
  records.forEach((record, index) => {
    const row = element("tr");
    row.dataset.score = String(record.score);
    row.append(element("td", String(index + 1), "number"),
      element("td", record.label ?? "—", record.label === model.labels[1] ? "positive" : "negative"),
      element("td", percent(record.score), "number"), element("td", String(record.tokens), "number"),
      element("td", String(record.unknown_tokens), "number"),
      element("td", reviews[index].length > 120 ? `${reviews[index].slice(0, 120)}…` : reviews[index]),
      element("td", caveat(record) ? caveat(record).split(":")[0] : record.truncated ? "cut" : "", "muted"));
    body.append(row);
  });
  $("scores").hidden = false;
  const each = (1000 * seconds) / records.length;
  status.textContent = `${records.length.toLocaleString("en")} review${records.length === 1 ? "" : "s"} in `
    + `${seconds.toFixed(2)} s (${each.toFixed(1)} ms a review)`;
  status.dataset.msPerReview = each.toFixed(3);
  lastRecords = records;
  $("download").disabled = false;
  $("classify-many").disabled = false;
}

function download() {
  const lines = lastRecords.map((record, index) => JSON.stringify({ row: index + 1, ...record })).join("\n");
  const link = element("a");
  link.href = URL.createObjectURL(new Blob([`${lines}\n`], { type: "application/x-ndjson" }));
  link.download = "scores.jsonl";
  link.click();
  setTimeout(() => URL.revokeObjectURL(link.href), 1000);
}

function showFacts() {
  const facts = $("facts");
  const metrics = JSON.parse(model.metadata.metrics ?? "{}");
  const rows = [
    ["labels", model.labels.join(", ")],
    ["threshold", String(model.threshold)],
    ["vocabulary", `${Number(model.metadata.num_words).toLocaleString("en")} most frequent words`],
    ["reads", `up to ${model.sequenceLength} ids a review: a start mark, then its words (the `
      + `${model.truncating === "pre" ? "last" : "first"} ones when it is longer)`],
    ["text rule", model.metadata.normalization ?? "?"],
  ];
  if (metrics.test_accuracy !== undefined) rows.push(["test accuracy", percent(metrics.test_accuracy)]);
  rows.push(["runtime", `onnxruntime-web ${ort.env.versions?.web ?? ""} (WebAssembly, ${ort.env.wasm.numThreads} `
    + `thread${ort.env.wasm.numThreads === 1 ? "" : "s"})`]);
  for (const [name, value] of rows) facts.append(element("dt", name), element("dd", value));
}

async function start() {
  const started = performance.now();
  // Threads need a cross-origin isolated page (COOP and COEP headers); a plain static host gets one thread.
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  ort.env.logLevel = "error";
  const response = await fetch(MODEL_FILE);
  if (!response.ok) throw new Error(`cannot load ${MODEL_FILE}: ${response.status} ${response.statusText}`);
  model = await TextModel.create(ort, new Uint8Array(await response.arrayBuffer()));
  await model.predict(["warm up"]); // the first run compiles kernels: pay for it now, not on the first click
  const loadMs = performance.now() - started;
  $("status").textContent = `Ready: loaded in ${(loadMs / 1000).toFixed(1)} s.`;
  $("status").dataset.loadMs = loadMs.toFixed(0);
  document.body.dataset.ready = "true";
  for (const id of ["classify", "classify-many"]) $(id).disabled = false;
  $("classify").addEventListener("click", () => classifyOne().catch(fail));
  $("classify-many").addEventListener("click", () => classifyMany().catch(fail));
  $("download").addEventListener("click", download);
  showFacts();
}

function fail(error) {
  $("status").textContent = `Something went wrong: ${error.message}`;
  $("status").className = "error";
  document.body.dataset.error = error.message;
}

start().catch((error) => {
  const local = location.protocol === "file:";
  fail(local ? new Error("open this page from a web server (python -m http.server in its folder), not as a file")
    : error);
});
