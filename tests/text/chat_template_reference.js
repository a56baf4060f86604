// Chat templates rendered by @huggingface/jinja (the Jinja engine transformers.js renders chat templates with) and
// tokenized by the real Hugging Face tokenizers library: the reference the llama_3 and chatml conversation
// templates are checked against (tests/text/chat_template_test.cpp).
//
//   node chat_template_reference.js PEERS_DIR TOKENIZER_DIR IN.jsonl OUT.jsonl
//
// TOKENIZER_DIR holds tokenizer.json and tokenizer_config.json. Each input line is {"messages": [{"role",
// "content"}...], "add_generation_prompt": bool, "chat_template": "...", "enable_thinking": bool} (chat_template
// optional: the model's own from tokenizer_config.json otherwise; enable_thinking passed on when given). A user
// message's "<image>" placeholders are first moved to its start as LLaVA's preprocess_multimodal does ("<image>\n"
// + the rest stripped). Each output line holds "text", the rendered prompt, and "ids": the library's ids of each part
// of it between "<image>" placeholders (no special tokens added), joined by -200, as LLaVA's tokenizer_image_token
// makes them.
"use strict";
const fs = require("fs");
const path = require("path");

const IMAGE = "<image>";
const IMAGE_TOKEN_INDEX = -200;

function moveImagesFirst(content) {
  if (!content.includes(IMAGE)) return content;
  const images = content.split(IMAGE).length - 1;
  const rest = content.split(IMAGE).join("").trim();
  return IMAGE.repeat(images) + (rest.length ? "\n" + rest : "");
}

// @huggingface/jinja's str.strip / lstrip / rstrip ignore their argument and strip all whitespace; Python's (the
// Jinja transformers renders with) strip only the characters given: Qwen3's template writes a reply as
// content.lstrip('\n'), which keeps the reply's leading spaces. Its string methods are made Python's here.
function withPythonStrip(jinja) {
  const { Environment, Interpreter, parse, tokenize } = jinja;
  const env = new Environment();
  env.set("x", "a");
  const StringValue = new Interpreter(env).run(parse(tokenize("{{ x }}"))).constructor;
  const builtins = Object.getOwnPropertyDescriptor(StringValue.prototype, "builtins").get;
  const strip = (text, chars, left, right) => {
    if (chars === undefined) return left && right ? text.trim() : left ? text.trimStart() : text.trimEnd();
    let begin = 0, end = text.length;
    while (left && begin < end && chars.includes(text[begin])) ++begin;
    while (right && end > begin && chars.includes(text[end - 1])) --end;
    return text.slice(begin, end);
  };
  Object.defineProperty(StringValue.prototype, "builtins", {
    get() {
      const map = builtins.call(this);
      if (!map.pythonStrip) {
        const FunctionValue = map.get("lstrip").constructor;
        for (const [name, left, right] of [["strip", true, true], ["lstrip", true, false], ["rstrip", false, true]]) {
          map.set(name, new FunctionValue((args) =>
            new StringValue(strip(this.value, args.length > 0 && args[0].value !== null ? args[0].value : undefined,
                                  left, right))));
        }
        map.pythonStrip = true;
      }
      return map;
    },
  });
  return jinja;
}

async function main() {
  const [peers, tokenizerDir, input, output] = process.argv.slice(2);
  if (!output) throw new Error("usage: chat_template_reference.js PEERS_DIR TOKENIZER_DIR IN.jsonl OUT.jsonl");
  const modules = path.join(peers, "node_modules");
  const { Tokenizer } = require(path.join(modules, "@anush008", "tokenizers"));
  const { Template } = withPythonStrip(require(path.join(modules, "@huggingface", "jinja")));
  const tokenizer = await Tokenizer.fromFile(path.join(tokenizerDir, "tokenizer.json"));
  const config = JSON.parse(fs.readFileSync(path.join(tokenizerDir, "tokenizer_config.json"), "utf8"));
  const tokenName = (t) => (t && typeof t === "object" ? t.content : t);
  const out = [];
  for (const line of fs.readFileSync(input, "utf8").split("\n").filter((l) => l.length > 0)) {
    const record = JSON.parse(line);
    const messages = record.messages.map((m) => ({
      role: m.role,
      content: m.role === "user" ? moveImagesFirst(m.content) : m.content,
    }));
    const template = new Template(record.chat_template || config.chat_template);
    const context = {
      messages,
      add_generation_prompt: record.add_generation_prompt,
      bos_token: tokenName(config.bos_token) || "",
      eos_token: tokenName(config.eos_token) || "",
    };
    if ("enable_thinking" in record) context.enable_thinking = record.enable_thinking;
    const text = template.render(context);
    const ids = [];
    const chunks = text.split(IMAGE);
    for (let i = 0; i < chunks.length; ++i) {
      if (i > 0) ids.push(IMAGE_TOKEN_INDEX);
      if (chunks[i].length === 0) continue;
      const encoding = await tokenizer.encode(chunks[i], null, { addSpecialTokens: false });
      ids.push(...Array.from(encoding.getIds()));
    }
    out.push(JSON.stringify({ text, ids }));
  }
  fs.writeFileSync(output, out.join("\n") + (out.length ? "\n" : ""));
}

main().catch((e) => {
  console.error(`chat_template_reference.js: ${e.stack || e}`);
  process.exit(1);
});
