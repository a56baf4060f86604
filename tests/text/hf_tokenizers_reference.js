// The real Hugging Face tokenizers library (Rust, through its Node bindings @anush008/tokenizers) on one
// tokenizer.json: the reference text::BpeTokenizer is checked against (tests/text/bpe_tokenizer_test.cpp).
//
//   node hf_tokenizers_reference.js PEERS_DIR TOKENIZER_JSON IN.jsonl OUT.jsonl
//
// PEERS_DIR is where scripts/test_peers.sh installed the library. Each input line is {"text": "..."} or
// {"ids": [...]}; each output line, in the same order, holds the library's ids of the text (encoded without special
// tokens added: no BOS; with "add_special_tokens": true in the input line, with them: the post-processor's BOS and
// EOS), "decode" and "decode_skip": its decode of those ids (or of the given ids) keeping and skipping special
// tokens. The library's decode does not apply transformers' clean_up_tokenization_spaces.
"use strict";
const fs = require("fs");
const path = require("path");

async function main() {
  const [peers, tokenizerJson, input, output] = process.argv.slice(2);
  if (!output) throw new Error("usage: hf_tokenizers_reference.js PEERS_DIR TOKENIZER_JSON IN.jsonl OUT.jsonl");
  const { Tokenizer } = require(path.join(peers, "node_modules", "@anush008", "tokenizers"));
  const tokenizer = await Tokenizer.fromFile(tokenizerJson);
  const lines = fs.readFileSync(input, "utf8").split("\n").filter((line) => line.length > 0);
  const out = [];
  for (const line of lines) {
    const record = JSON.parse(line);
    let ids = record.ids;
    const result = {};
    if (record.text !== undefined) {
      const encoding = await tokenizer.encode(record.text, null, {
        addSpecialTokens: record.add_special_tokens === true,
      });
      ids = Array.from(encoding.getIds());
      result.ids = ids;
    }
    result.decode = await tokenizer.decode(ids, false);
    result.decode_skip = await tokenizer.decode(ids, true);
    out.push(JSON.stringify(result));
  }
  fs.writeFileSync(output, out.join("\n") + (out.length ? "\n" : ""));
}

main().catch((e) => {
  console.error(`hf_tokenizers_reference.js: ${e.stack || e}`);
  process.exit(1);
});
