"""Reference input_ids / labels for tests/text/conversation_test.cpp, written from LLaVA's published rules
(llava/train/train.py preprocess_multimodal, preprocess_v1, preprocess_llama_2, preprocess_plain; llava/mm_utils.py
tokenizer_image_token; llava/conversation.py conv_vicuna_v1, conv_llava_llama_2, and LLaVA-Med's
conv_mistral_instruct) on python sentencepiece, independently of the C++.

usage: llava_preprocess_reference.py TOKENIZER_MODEL SAMPLES_JSONL OUTPUT_JSONL [legacy|non-legacy]
The tokenizer is the slow LlamaTokenizer LLaVA pins (transformers 4.37), legacy (the default) or not (legacy false in
tokenizer_config.json, as vicuna-7b-v1.5's and LLaVA-1.5's): then the model is loaded with its normalizer's
add_dummy_prefix off, as transformers loads it, and preprocess_v1 takes one token less per round after the first.
Each sample: {"template": "plain"|"vicuna_v1"|"pathasst"|"mistral_instruct"|"llava_llama_2", "generation": bool,
              "conversations": [{"from": "human"|"gpt", "value": str}, ...]}
Each output line: {"prompt": str, "input_ids": [...], "labels": [...], "mismatch": bool}
A sample {"text": str} gives {"input_ids": [...]}: the tokenizer's ids of the text alone, BOS first.

pathasst has no LLaVA preprocess to mirror: its labels come from SentencePiece's byte offsets instead (a token is
supervised when it lies inside a reply's " A\n###" span), a second, independent way to the same spans.
"""
import json
import re
import sys

import sentencepiece

IGNORE = -100
IMAGE = -200
SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. "
          "The assistant gives helpful, detailed, and polite answers to the user's questions.")
LLAVA_LLAMA_2_SYSTEM = ("You are a helpful language and vision assistant. You are able to understand the visual "
                        "content that the user provides, and assist the user with a variety of tasks using natural "
                        "language.")

sp = sentencepiece.SentencePieceProcessor(model_file=sys.argv[1])
LEGACY = len(sys.argv) < 5 or sys.argv[4] == "legacy"
BOS = sp.bos_id()
# The added tokens: <unk> and the control pieces (<s>, </s>, Mistral v0.3's [INST] ...), as Mistral's
# tokenizer_config.json lists them; the longest first at one position.
SPECIAL_IDS = {sp.id_to_piece(i): i for i in range(sp.get_piece_size()) if i == sp.unk_id() or sp.is_control(i)}
SPECIAL = re.compile("(" + "|".join(re.escape(t) for t in sorted(SPECIAL_IDS, key=len, reverse=True)) + ")")
META = "\u2581"


def read_varint(data, i):
    value, shift = 0, 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def write_varint(value):
    out = bytearray()
    while value >= 0x80:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def fields(data):
    """(field number, the field's bytes whole, its payload for length-delimited fields) of a protobuf message."""
    i = 0
    while i < len(data):
        start = i
        key, i = read_varint(data, i)
        wire, payload = key & 7, None
        if wire == 0:
            _, i = read_varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = read_varint(data, i)
            payload = data[i:i + n]
            i += n
        else:
            raise ValueError("wire type %d" % wire)
        yield key >> 3, data[start:i], payload


def without_dummy_prefix(model):
    """ModelProto bytes with normalizer_spec (field 3).add_dummy_prefix (its field 3) set to false."""
    out = bytearray()
    for number, whole, payload in fields(model):
        if number == 3 and payload is not None:
            spec = b"".join(w for n, w, _ in fields(payload) if n != 3) + bytes([3 << 3, 0])
            out += bytes([(3 << 3) | 2]) + write_varint(len(spec)) + spec
        else:
            out += whole
    return bytes(out)


if not LEGACY:
    with open(sys.argv[1], "rb") as f:
        plain_sp = sentencepiece.SentencePieceProcessor(model_proto=without_dummy_prefix(f.read()))
    UNK = sp.id_to_piece(sp.unk_id())
    UNK_LENGTH = len(plain_sp.encode(UNK))


def llama_tokenize(text):
    """Slow LlamaTokenizer: BOS, special strings become their ids. Legacy: each run between them encoded alone.
    Not legacy (LlamaTokenizer.tokenize / _tokenize): "▁" before the text, whose own "▁" become spaces; each run
    through the model without its dummy prefix, a run starting with a space behind the unknown token's pieces; the
    "▁" dropped when a special token follows it."""
    ids = [BOS]
    if LEGACY:
        for part in SPECIAL.split(text):
            if part in SPECIAL_IDS:
                ids.append(SPECIAL_IDS[part])
            elif part:
                ids.extend(sp.encode(part))
        return ids
    if not text:
        return ids
    tokens = []
    for part in SPECIAL.split(META + text.replace(META, " ")):
        if part in SPECIAL_IDS:
            tokens.append(SPECIAL_IDS[part])
        elif part.startswith((META, " ")):
            tokens.extend(plain_sp.encode(UNK + part)[UNK_LENGTH:])
        elif part:
            tokens.extend(plain_sp.encode(part))
    if len(tokens) > 1 and sp.id_to_piece(tokens[0]) == META and tokens[1] in SPECIAL_IDS.values():
        tokens = tokens[1:]
    return ids + tokens


def image_tokenize(prompt):
    """tokenizer_image_token: chunks between <image> tokenized separately, one BOS kept, -200 between chunks."""
    ids = [BOS]
    for i, chunk in enumerate(prompt.split("<image>")):
        if i > 0:
            ids.append(IMAGE)
        ids.extend(llama_tokenize(chunk)[1:])
    return ids


def move_images(value):
    """preprocess_multimodal: the turn's images first, then "\n" and the stripped rest (k images: k sentinels)."""
    k = value.count("<image>")
    if k == 0:
        return value
    return ("<image>" * k + "\n" + value.replace("<image>", "").strip()).strip()


def vicuna_v1(turns, generation):
    prompt = SYSTEM + " "
    for i, turn in enumerate(turns):
        role = "USER" if turn["from"] == "human" else "ASSISTANT"
        prompt += role + ": " + turn["value"] + (" " if i % 2 == 0 else "</s>")
    if generation:
        prompt += "ASSISTANT:"
        return prompt, image_tokenize(prompt), None, False
    ids = image_tokenize(prompt)
    labels, mismatch = mask_rounds(prompt, ids, " ASSISTANT: ", non_legacy_fix=not LEGACY)
    return prompt, ids, labels, mismatch


def mask_rounds(prompt, ids, round_sep, non_legacy_fix=False):
    """The masking of preprocess_v1 and preprocess_llama_2: rounds split on "</s>", each on `round_sep`; the
    instruction (less BOS and the trailing space token) is masked, the reply and its </s> kept. `non_legacy_fix`:
    preprocess_v1's one token less per round after the first for a non-legacy tokenizer."""
    labels = list(ids)
    labels[0] = IGNORE
    cur = 1
    for i, round_text in enumerate(prompt.split("</s>")):
        if round_text == "":
            break
        parts = round_text.split(round_sep)
        if len(parts) != 2:
            break
        instruction_len = len(image_tokenize(parts[0] + round_sep)) - 2
        round_len = len(image_tokenize(round_text))
        if non_legacy_fix and i != 0:
            instruction_len -= 1
            round_len -= 1
        labels[cur:cur + instruction_len] = [IGNORE] * instruction_len
        cur += round_len
    labels[cur:] = [IGNORE] * (len(labels) - cur)
    mismatch = cur != len(ids)
    if mismatch:
        labels = [IGNORE] * len(ids)
    return labels, mismatch


def llama_2(system, sep):
    """SeparatorStyle.LLAMA_2's get_prompt (the system wrapped only when there is one, as LLaVA-Med and later
    LLaVA write it) and preprocess_llama_2's masking with sep "[/INST] "."""
    def build(turns, generation):
        prompt = ""
        for i, turn in enumerate(turns):
            value = turn["value"]
            if i == 0 and system:
                value = "<<SYS>>\n" + system + "\n<</SYS>>\n\n" + value
            if i % 2 == 0:
                prompt += sep + "[INST] " + value + " [/INST]"
            else:
                prompt += " " + value + " " + "</s>"
        prompt = prompt.lstrip(sep)
        ids = image_tokenize(prompt)
        if generation:
            return prompt, ids, None, False
        labels, mismatch = mask_rounds(prompt, ids, "[/INST] ")
        return prompt, ids, labels, mismatch
    return build


def plain(turns, generation):
    head = "<image>" * turns[0]["value"].count("<image>")
    if generation:
        return head, image_tokenize(head), None, False
    prompt = head + turns[1]["value"] + "\n"
    ids = image_tokenize(prompt)
    masked = len(image_tokenize(head))
    labels = [IGNORE] * masked + ids[masked:]
    return prompt, ids, labels, False


def pathasst(turns, generation):
    prompt = SYSTEM + "\n\n"
    spans = []  # [begin, end) of each reply's " A\n###", in characters (sentencepiece's offsets for a str)
    for i, turn in enumerate(turns):
        if turn["from"] == "human":
            prompt += ("### User: " if i == 0 else " User: ") + turn["value"] + "\n### Assistant:"
        else:
            reply = " " + turn["value"] + "\n###"
            spans.append((len(prompt), len(prompt) + len(reply)))
            prompt += reply
    ids = image_tokenize(prompt)
    if generation:
        return prompt, ids, None, False
    labels = [IGNORE]
    offset = 0
    for i, chunk in enumerate(prompt.split("<image>")):
        if i > 0:
            labels.append(IGNORE)
            offset += len("<image>")
        for piece_id, begin, end in encoded_pieces(chunk):
            begin, end = offset + begin, offset + end
            inside = any(s <= begin and end <= e for s, e in spans)
            labels.append(piece_id if inside else IGNORE)
        offset += len(chunk)
    return prompt, ids, labels, False


def encoded_pieces(text):
    """(id, begin, end) of each piece of `text`, offsets in characters."""
    try:
        return [(p.id, p.begin, p.end) for p in sp.encode(text, out_type="immutable_proto").pieces]
    except ValueError:  # sentencepiece 0.2 dropped "immutable_proto"; "offset_mapping" carries the same offsets
        mapping = sp.encode(text, out_type="offset_mapping")
        return [(i, begin, end) for i, (begin, end) in zip(mapping["ids"], mapping["offsets"])]


TEMPLATES = {"vicuna_v1": vicuna_v1, "plain": plain, "pathasst": pathasst,
             "mistral_instruct": llama_2("", ""), "llava_llama_2": llama_2(LLAVA_LLAMA_2_SYSTEM, "<s>")}

with open(sys.argv[2], encoding="utf-8") as samples, open(sys.argv[3], "w", encoding="utf-8") as out:
    for line in samples:
        sample = json.loads(line)
        if "text" in sample:
            out.write(json.dumps({"input_ids": llama_tokenize(sample["text"])}) + "\n")
            continue
        turns = [dict(t, value=move_images(t["value"])) if t["from"] == "human" else t
                 for t in sample["conversations"]]
        prompt, ids, labels, mismatch = TEMPLATES[sample["template"]](turns, sample["generation"])
        out.write(json.dumps({"prompt": prompt, "input_ids": ids, "labels": labels, "mismatch": mismatch}) + "\n")
