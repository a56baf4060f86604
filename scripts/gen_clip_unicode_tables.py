#!/usr/bin/env python3
"""Writes the Unicode and HTML tables that make the CLIP tokenizer's text handling open_clip's, into src/text/:
clip_tokenizer_unicode.inc (pre-tokenisation classes, str.lower()'s final-sigma rule), html_entities.inc
(html.unescape), fix_text_unicode.inc (what ftfy.fix_text needs: NFC data, width forms, ftfy's extra entity names)
and mojibake_unicode.inc (ftfy's character classes and codecs for its mojibake repair).

open_clip's SimpleTokenizer pre-tokenises with the `regex` module (\\p{L}, \\p{N}, \\s) and lower-cases with
Python's str.lower() (its per-character mapping is in char_properties_unicode.inc, which
scripts/gen_bpe_unicode_tables.py writes); this script asks those same functions about every code point, so the C++
tokenizer classifies exactly as open_clip does; html.unescape's entity and character-reference tables come from
Python's `html` module, ftfy's character classes for spotting mojibake from `ftfy`. Re-run it
(python3 scripts/gen_clip_unicode_tables.py) to update the Unicode version; needs the `regex` and `ftfy` packages.
"""
import os
import sys

import html
import html.entities
import re
import unicodedata

import ftfy  # ftfy's own sloppy codecs register on import
import regex


def ranges(pattern, flags=0):
    compiled = regex.compile(pattern, flags)
    out, start = [], None
    for cp in range(0x110000):
        ok = not 0xD800 <= cp <= 0xDFFF and compiled.match(chr(cp)) is not None
        if ok and start is None:
            start = cp
        if not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    if start is not None:
        out.append((start, 0x10FFFF))
    return out


def c_string(text):
    """A C string literal of the UTF-8 bytes, escaping every non-alphanumeric byte in octal (never ambiguous)."""
    return '"' + "".join(chr(b) if chr(b).isalnum() and b < 128 else f"\\{b:03o}" for b in text.encode("utf-8")) + '"'


def table(name, rows, fmt):
    lines, line = [], ""
    for item in (fmt(r) for r in rows):
        if len(line) + len(item) > 110:
            lines.append(line)
            line = ""
        line += item + ","
    lines.append(line)
    return f"static const {name} = {{\n" + "\n".join("    " + l for l in lines) + "\n};\n"


def decompositions():
    """Canonical decompositions one level deep (cp, first, second or 0, composes): NFC recomposes a pair to cp
    unless cp is excluded from composition, which is exactly when NFC does not give cp back."""
    rows = []
    for cp in range(0x110000):
        if 0xD800 <= cp <= 0xDFFF:
            continue
        d = unicodedata.decomposition(chr(cp))
        if not d or d.startswith("<"):
            continue
        parts = [int(x, 16) for x in d.split()]
        composes = len(parts) == 2 and unicodedata.normalize("NFC", chr(cp)) == chr(cp)
        rows.append((cp, parts[0], parts[1] if len(parts) == 2 else 0, int(composes)))
    return rows


def combining_class_runs():
    runs = []
    for cp in range(0x110000):
        ccc = unicodedata.combining(chr(cp))
        if not ccc:
            continue
        if runs and runs[-1][1] == cp - 1 and runs[-1][2] == ccc:
            runs[-1] = (runs[-1][0], cp, ccc)
        else:
            runs.append((cp, cp, ccc))
    return runs


def width_map():
    """ftfy's fix_character_width: U+3000 -> space, and each halfwidth/fullwidth form its NFKC form."""
    rows = [(0x3000, " ")]
    for cp in range(0xFF01, 0xFFF0):
        alternate = unicodedata.normalize("NFKC", chr(cp))
        if alternate != chr(cp):
            rows.append((cp, alternate))
    return rows


def upper_case_entities():
    """ftfy's unescape_html also decodes an all-caps lower-case entity name when html.unescape leaves it alone."""
    rows = []
    for name, char in html.entities.html5.items():
        if name.endswith(";") and name == name.lower():
            upper = "&" + name.upper()
            if html.unescape(upper) == upper:
                rows.append((upper, char.upper()))
    return sorted(rows)


# ftfy's character classes for spotting mojibake (ftfy.badness, ftfy.chardata), in the bit order of
# MojibakeClass in src/text/fix_text.cpp.
MOJIBAKE_CLASSES = ["c1", "bad", "law", "currency", "start_punctuation", "end_punctuation", "numeric", "kaomoji",
                    "upper_accented", "lower_accented", "upper_common", "lower_common", "box", "common",
                    "utf8_first_of_2", "utf8_first_of_3", "utf8_first_of_4", "utf8_continuation",
                    "utf8_continuation_strict"]
# The single-byte codecs ftfy tries, in its order; "sloppy" ones decode their unassigned bytes as Latin-1 and
# byte 0x1A as U+FFFD.
CODECS = ["latin-1", "sloppy-windows-1252", "sloppy-windows-1251", "sloppy-windows-1250", "sloppy-windows-1253",
          "sloppy-windows-1254", "sloppy-windows-1257", "iso-8859-2", "macroman", "cp437"]


def mojibake_classes():
    from ftfy.badness import MOJIBAKE_CATEGORIES
    from ftfy.chardata import UTF8_CLUES
    fragments = {**MOJIBAKE_CATEGORIES, **UTF8_CLUES}
    masks = {}
    for bit, name in enumerate(MOJIBAKE_CLASSES):
        compiled = re.compile("[" + fragments[name] + "]")
        for cp in range(0x10000):
            if compiled.match(chr(cp)):
                masks[cp] = masks.get(cp, 0) | (1 << bit)
    return sorted(masks.items())


def codec_table(codec):
    all_bytes = bytes(range(256))
    if not codec.startswith("sloppy-"):
        return [ord(c) for c in all_bytes.decode(codec)]
    chars = [ord(c) for c in all_bytes.decode(codec[len("sloppy-"):], errors="replace")]
    chars = [b if c == 0xFFFD else c for b, c in enumerate(chars)]
    chars[0x1A] = 0xFFFD
    return chars


def python_re_ranges(pattern):
    """Ranges of what Python's `re` (not `regex`) matches: its \\w and \\s follow str.isalnum / str.isspace."""
    compiled = re.compile(pattern)
    out, start = [], None
    for cp in range(0x110001):
        ok = cp <= 0x10FFFF and not 0xD800 <= cp <= 0xDFFF and compiled.match(chr(cp)) is not None
        if ok and start is None:
            start = cp
        if not ok and start is not None:
            out.append((start, cp - 1))
            start = None
    return out


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    print(path)


def main():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src", "text")
    hexr = lambda r: f"{{0x{r[0]:X},0x{r[1]:X}}}"
    header = (f"// Generated by scripts/gen_clip_unicode_tables.py from Python {sys.version.split()[0]} "
              f"(Unicode {unicodedata.unidata_version}): {{}}. Do not edit.\n")
    write(os.path.join(root, "clip_tokenizer_unicode.inc"),
          header.format(f"`regex` {regex.__version__}")
          + "// Sorted, disjoint code point ranges.\n"
          + "// The pre-tokeniser's classes as open_clip compiles them, with IGNORECASE: a few marks that case-fold\n"
          + "// to letters (U+0345) then match neither [\\p{L}] nor [^\\s\\p{L}\\p{N}], and are dropped.\n"
          + table("UnicodeRange kLetterRanges[]", ranges(r"[\p{L}]", regex.IGNORECASE), hexr)
          + table("UnicodeRange kNumberRanges[]", ranges(r"[\p{N}]", regex.IGNORECASE), hexr)
          + table("UnicodeRange kSymbolRanges[]", ranges(r"[^\s\p{L}\p{N}]", regex.IGNORECASE), hexr)
          + "// Whitespace, for strip and the collapse of runs.\n"
          + table("UnicodeRange kSpaceRanges[]", ranges(r"\s"), hexr)
          + "// For str.lower()'s final-sigma rule.\n"
          + table("UnicodeRange kCasedRanges[]", ranges(r"\p{Cased}"), hexr)
          + table("UnicodeRange kCaseIgnorableRanges[]", ranges(r"\p{Case_Ignorable}"), hexr))
    write(os.path.join(root, "html_entities.inc"),
          header.format("the `html` module")
          + "// html.entities.html5, sorted by name (names with and without the trailing ';').\n"
          + table("HtmlEntity kHtmlEntities[]", sorted(html.entities.html5.items()),
                  lambda kv: f"{{{c_string(kv[0])},{c_string(kv[1])}}}")
          + "// html.unescape's replacements for numeric references to C1 controls and NUL/CR.\n"
          + table("CharRef kInvalidCharRefs[]", sorted(html._invalid_charrefs.items()),
                  lambda kv: f"{{0x{kv[0]:X},0x{ord(kv[1]):X}}}")
          + "// Numeric references html.unescape drops (control characters and non-characters).\n"
          + table("uint32_t kInvalidCodepoints[]", sorted(html._invalid_codepoints), lambda c: f"0x{c:X}"))
    write(os.path.join(root, "fix_text_unicode.inc"),
          header.format("unicodedata and the `html` module")
          + "// Canonical decompositions (code point, first, second or 0, whether NFC composes the pair back).\n"
          + table("Decomposition kDecompositions[]", decompositions(),
                  lambda r: f"{{0x{r[0]:X},0x{r[1]:X},0x{r[2]:X},{r[3]}}}")
          + "// Non-zero canonical combining classes: runs (first, last, class).\n"
          + table("CombiningRun kCombiningClasses[]", combining_class_runs(),
                  lambda r: f"{{0x{r[0]:X},0x{r[1]:X},{r[2]}}}")
          + "// Python re's \\d (decimal digits, category Nd), for ftfy's terminal-escape pattern.\n"
          + table("UnicodeRange kDecimalDigitRanges[]", python_re_ranges(r"\d"), hexr)
          + "// Halfwidth and fullwidth forms -> their standard forms (ftfy's fix_character_width).\n"
          + table("WidthForm kWidthForms[]", width_map(), lambda kv: f"{{0x{kv[0]:X},{c_string(kv[1])}}}")
          + "// All-caps entity names ftfy decodes, sorted.\n"
          + table("HtmlEntity kUpperCaseEntities[]", upper_case_entities(),
                  lambda kv: f"{{{c_string(kv[0])},{c_string(kv[1])}}}"))
    write(os.path.join(root, "mojibake_unicode.inc"),
          header.format(f"ftfy {ftfy.__version__} and the `re` module")
          + f"// ftfy {ftfy.__version__}'s mojibake classes: (code point, bit mask in MojibakeClass order).\n"
          + table("MojibakeChar kMojibakeChars[]", mojibake_classes(), lambda kv: f"{{0x{kv[0]:X},0x{kv[1]:X}}}")
          + "// Byte -> code point of each codec ftfy tries, in its order: " + ", ".join(CODECS) + ".\n"
          + "static const uint16_t kCodecs[][256] = {\n"
          + "".join(table("", codec_table(c), lambda c: f"0x{c:X}").replace("static const  = {", "  {")
                    .replace("\n};\n", "\n  },\n") for c in CODECS) + "};\n"
          + "// Python re's \\w (str.isalnum and '_') and \\s (str.isspace).\n"
          + table("UnicodeRange kWordRanges[]", python_re_ranges(r"\w"), hexr)
          + table("UnicodeRange kPythonSpaceRanges[]", python_re_ranges(r"\s"), hexr))


if __name__ == "__main__":
    main()
