// Scoring with an exported text file (model.text.onnx) in onnxruntime-web: in the page and under Node alike.
//
// The file is the whole model, text rule included: raw reviews go in as a string tensor, the probability comes out
// with the words read (tokens) and, of those, the words outside the vocabulary (unknown_tokens). Its metadata
// (labels, threshold, sequence_length, ...) is read from the file's own bytes, so nothing else needs to travel with it.
// A review's record is the one `python -m core predict` writes: label, score, tokens, unknown_tokens, truncated.
//
// No import here: the caller passes the onnxruntime-web module, which the page loads from its own folder and Node from
// node_modules (`onnxruntime-web/wasm`, the WebAssembly build: the default WebGPU build has no string tensors).

export const TEXT_INPUT = "review";
export const STEPS_SWITCH = "with_steps";
const BATCH = 64; // reviews a run: sorted by length, so that a run of short reviews stays short
const textDecoder = new TextDecoder("utf-8");

// The metadata_props of an ONNX ModelProto (field 14: repeated {key = 1, value = 2}), read from its protobuf bytes.
export function readMetadata(bytes) {
  const props = {};
  readFields(bytes, 0, bytes.length, (field, start, end) => {
    if (field !== 14) return;
    const entry = {};
    readFields(bytes, start, end, (inner, from, to) => {
      if (inner === 1) entry.key = textDecoder.decode(bytes.subarray(from, to));
      if (inner === 2) entry.value = textDecoder.decode(bytes.subarray(from, to));
    });
    if (entry.key !== undefined) props[entry.key] = entry.value ?? "";
  });
  return props;
}

// Calls onField(number, start, end) for each length-delimited field of the message in bytes[start, end); skips others.
function readFields(bytes, start, end, onField) {
  let at = start;
  const varint = () => {
    let value = 0;
    for (let scale = 1; ; scale *= 128) {
      if (at >= end) throw new Error("not an ONNX file: a protobuf field runs past the end");
      const byte = bytes[at++];
      value += (byte & 0x7f) * scale;
      if (byte < 0x80) return value;
    }
  };
  while (at < end) {
    const key = varint();
    const field = Math.floor(key / 8);
    const wire = key % 8;
    if (wire === 0) varint();
    else if (wire === 1) at += 8;
    else if (wire === 5) at += 4;
    else if (wire === 2) {
      const length = varint();
      if (at + length > end) throw new Error("not an ONNX file: a protobuf field runs past the end");
      onField(field, at, at + length);
      at += length;
    } else throw new Error(`not an ONNX file: protobuf wire type ${wire}`);
  }
}

// A loaded text file: its session and what its metadata says.
export class TextModel {
  constructor(ort, session, metadata) {
    this.ort = ort;
    this.session = session;
    this.metadata = metadata;
    this.labels = JSON.parse(metadata.labels ?? '["negative", "positive"]');
    this.threshold = Number(metadata.threshold ?? 0.5);
    this.sequenceLength = Number(metadata.sequence_length);
    // onnxruntime-web cannot feed an input that has a default (it lists only the required ones): the page's copy of
    // the file makes with_steps required (core.export.web_page); the stock text file scores without it.
    this.hasSteps = session.inputNames.includes(STEPS_SWITCH);
    this.truncating = metadata.truncating === "post" ? "post" : "pre";
  }

  // bytes: the file's contents (Uint8Array). Throws a one-line Error when the file does not read text.
  static async create(ort, bytes, options = {}) {
    const metadata = readMetadata(bytes);
    if (!("text_input" in metadata)) {
      throw new Error("this .onnx file reads ids, not text: give its text file (model.text.onnx)");
    }
    const session = await ort.InferenceSession.create(bytes, {
      executionProviders: ["wasm"],
      logSeverityLevel: 3, // errors only: the optional input with_steps has a default, not worth a warning
      ...options,
    });
    return new TextModel(ort, session, metadata);
  }

  // The label at the file's threshold: the rule of core.export.model_file.positive (score >= threshold).
  label(score) {
    return score >= this.threshold ? this.labels[1] : this.labels[0];
  }

  // One record a review, in order. An empty review (nothing but white space) gets {error: "review is empty"}, no
  // score, as a CSV row without text does in Python. onProgress(done, total) after each run.
  async predict(texts, onProgress = () => {}) {
    const records = new Array(texts.length);
    const order = [];
    texts.forEach((text, index) => {
      if (typeof text !== "string" || text.trim() === "") {
        records[index] = { label: null, score: null, tokens: 0, unknown_tokens: 0, truncated: false,
          error: "review is empty" };
      } else order.push(index);
    });
    order.sort((a, b) => texts[a].length - texts[b].length);
    for (let start = 0; start < order.length; start += BATCH) {
      const chunk = order.slice(start, start + BATCH);
      const out = await this.run(chunk.map((index) => texts[index]), false);
      chunk.forEach((index, row) => {
        const score = out.probability.data[row]; // a float32, exactly as Python's float() of it
        const tokens = Number(out.tokens.data[row]);
        records[index] = { label: this.label(score), score, tokens,
          unknown_tokens: Number(out.unknown_tokens.data[row]), truncated: tokens + 1 > this.sequenceLength };
      });
      onProgress(Math.min(start + BATCH, order.length), order.length);
    }
    return records;
  }

  // The words of a review of `tokens` words that the model reads: the start id takes one place unless "pre" truncation
  // cut it off with the first words; "post" truncation cuts the last words (core.scoring.explanation.read_words).
  wordsRead(tokens) {
    if (tokens + 1 <= this.sequenceLength) return tokens;
    return this.truncating === "pre" ? this.sequenceLength : this.sequenceLength - 1;
  }

  // The positive probability after each word read of one review (start id first), when the file has step_probability.
  async steps(text) {
    if (!this.hasSteps) return null;
    const out = await this.run([text], true);
    const row = Array.from(out.step_probability.data);
    const kept = Math.min(Number(out.tokens.data[0]) + 1, this.sequenceLength, row.length);
    const padding = this.metadata.padding ?? "pre";
    return padding === "pre" ? row.slice(row.length - kept) : row.slice(0, kept);
  }

  async run(texts, withSteps) {
    const feeds = { [TEXT_INPUT]: new this.ort.Tensor("string", texts, [texts.length]) };
    if (this.hasSteps) feeds[STEPS_SWITCH] = new this.ort.Tensor("bool", new Uint8Array([withSteps ? 1 : 0]), []);
    return this.session.run(feeds);
  }
}
