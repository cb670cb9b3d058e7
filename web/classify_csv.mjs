#!/usr/bin/env node
// Score the reviews of a CSV file under Node with onnxruntime-web, as `python -m core predict --csv` does:
//
//   node web/classify_csv.mjs MODEL.text.onnx REVIEWS.csv [--text-column NAME] > scores.jsonl
//
// One JSON line a data row, in order: {"row", "label", "score", "tokens", "unknown_tokens", "truncated"}, or for a row
// without review text {"row", "label": null, "score": null, ..., "error": "review is empty"}; the same scores as
// Python's onnxruntime within float32 rounding. The text column is the one named, else text or review.
// Needs `npm ci` in web/ (make web). A mistake is one line on standard error and exit status 2.

import fs from "node:fs";
import path from "node:path";
import * as ort from "onnxruntime-web/wasm";

import { TextModel } from "./page/score.mjs";

const TEXT_COLUMNS = ["text", "review"];

// The records of CSV text (RFC 4180, as Python's csv module reads it): quoted fields may hold commas, doubled quotes
// and line breaks; a blank line is an empty record.
export function parseCsv(text) {
  const records = [];
  let record = [];
  let field = "";
  let quoted = false;
  let fieldStart = true; // nothing of the current field read yet
  let recordStarted = false; // a blank line is an empty record, not one empty field
  for (let at = 0; at < text.length; at++) {
    const char = text[at];
    if (quoted) {
      if (char === '"' && text[at + 1] === '"') {
        field += '"';
        at++;
      } else if (char === '"') quoted = false;
      else field += char;
      continue;
    }
    if (char === "\n" || char === "\r") {
      if (char === "\r" && text[at + 1] === "\n") at++;
      if (recordStarted) record.push(field);
      records.push(record);
      [record, field, fieldStart, recordStarted] = [[], "", true, false];
      continue;
    }
    recordStarted = true;
    if (char === '"' && fieldStart) quoted = true;
    else if (char === ",") {
      record.push(field);
      field = "";
      fieldStart = true;
      continue;
    } else field += char;
    fieldStart = false;
  }
  if (quoted) throw new Error("the CSV ends inside a quoted field");
  if (recordStarted) {
    record.push(field);
    records.push(record);
  }
  return records;
}

// The index of the text column: the name given (exactly, else ignoring case and surrounding spaces), else text or
// review.
function textColumn(header, wanted, file) {
  const names = wanted ? [wanted] : TEXT_COLUMNS;
  const lowered = header.map((name) => name.trim().toLowerCase());
  for (const name of names) {
    if (header.includes(name)) return header.indexOf(name);
    if (lowered.includes(name.trim().toLowerCase())) return lowered.indexOf(name.trim().toLowerCase());
  }
  if (wanted) throw new Error(`${file} has no column '${wanted}'; its columns: ${header.join(", ")}`);
  throw new Error(`${file} has no text or review column (columns: ${header.join(", ")}); name one with --text-column`);
}

// A record as Python's json.dumps writes it (", " and ": " between items): the same lines, compared as text or as JSON.
function jsonLine(record) {
  const items = Object.entries(record).map(([key, value]) => `${JSON.stringify(key)}: ${JSON.stringify(value)}`);
  return `{${items.join(", ")}}`;
}

function usage() {
  return "usage: node web/classify_csv.mjs MODEL.text.onnx REVIEWS.csv [--text-column NAME]";
}

async function main(argv) {
  const args = [...argv];
  let wanted = null;
  const flag = args.indexOf("--text-column");
  if (flag >= 0) {
    wanted = args[flag + 1];
    if (!wanted) throw new Error(`--text-column needs a name; ${usage()}`);
    args.splice(flag, 2);
  }
  if (args.length !== 2) throw new Error(usage());
  const [modelFile, csvFile] = args;
  const read = (file) => {
    try {
      return fs.readFileSync(file);
    } catch (error) {
      throw new Error(error.code === "ENOENT" ? `no file at ${file}` : `cannot read ${file}: ${error.message}`);
    }
  };
  const modelBytes = new Uint8Array(read(modelFile));
  let text;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(read(csvFile));
  } catch (error) {
    if (error.message.startsWith("no file") || error.message.startsWith("cannot read")) throw error;
    throw new Error(`${csvFile} is not UTF-8 text: save the CSV as UTF-8`);
  }
  if (text.includes("\0")) throw new Error(`${csvFile} has a NUL byte: it is a binary file, not a CSV text file`);
  const [header, ...rows] = parseCsv(text);
  if (!header) throw new Error(`${csvFile} is empty: expected a header row with a text or review column`);
  const column = textColumn(header, wanted, csvFile);

  ort.env.wasm.numThreads = 1; // one thread: Node runs the wasm build without SharedArrayBuffer workers here
  ort.env.logLevel = "error"; // the optional input with_steps has a default: not worth a warning
  const model = await TextModel.create(ort, modelBytes).catch((error) => {
    throw new Error(`${path.basename(modelFile)}: ${error.message.split("\n")[0]}`);
  });
  const numbered = [];
  rows.forEach((row, index) => {
    if (row.length > 0) numbered.push([index + 1, row[column] ?? ""]);
  });
  const records = await model.predict(numbered.map(([, review]) => review));
  const out = numbered.map(([row], index) => jsonLine({ row, ...records[index] })).join("\n");
  if (out) process.stdout.write(out + "\n");
  const failed = records.filter((record) => record.error).length;
  if (failed) {
    process.stderr.write(`${failed.toLocaleString("en")} of ${numbered.length.toLocaleString("en")} rows had no `
      + 'review text (an "error" line each)\n');
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  main(process.argv.slice(2)).catch((error) => {
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(2);
  });
}
