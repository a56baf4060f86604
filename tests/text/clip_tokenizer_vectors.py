"""Writes tests/text/clip_tokenizer_ftfy_vectors.jsonl: texts with the ids open_clip's tokenizer gives them, for
the cleaning that comes before BPE (ftfy.fix_text, html.unescape, whitespace, lower case) and the pre-tokeniser's
classes. Runs the real open_clip tokenizer: pip install open_clip_torch ftfy regex.

usage: python3 tests/text/clip_tokenizer_vectors.py [OUT]
Each line: {"text": str, "ids": [sot, ..., eot]} (the padding left out). The texts are the hand-picked cases below and
seeded random mixes of the characters those fixes touch, and of words turned into mojibake by the codecs ftfy
undoes. Left out: texts with code points unassigned in this Python's Unicode version (`regex` releases classify
them differently).
"""
import json
import os
import random
import sys
import unicodedata

import ftfy
from open_clip.tokenizer import SimpleTokenizer

CASES = [
    "Crohn\u2019s disease: \u201cskip lesions\u201d with non-caseating granulomas.",
    "\u2018Signet-ring\u2019 cells; it\u2019s a poorly cohesive carcinoma \u201ePDC\u201f.",
    "Modi\u02bci; don\u2019t, won\u2019t, we\u2019ll, they\u2019re, I\u2019m, he\u2019d, we\u2019ve.",
    "\ufb01brosis, \ufb02uid, e\ufb00usion, o\ufb03ce, ba\ufb04e, \ufb05, \ufb06ain, \u0132ssel, \u0133s, \u0149, \u01c4, \u01c5, \u01c6, \u01c9, \u01cc, \u01f3",
    "\uff28\uff06\uff25 \uff53\uff54\uff41\uff49\uff4e\uff0c \uff14\uff10\uff10\u00d7\u3000\uff76\uff80\uff76\uff85 \uffe0 \uffe3 \uffe6 \uff5e",
    "Caf\u0065\u0301, nai\u0308ve, \u212bngstr\u00f6m, \u2126, q\u0307\u0323, a\u0323\u0302, \u0958, \u1100\u1161\u11a8, \u1112\u1161\u11ab",
    "H&amp;E; &amp;lt; 5 &amp;amp;gt; &EACUTE;T&Eacute; &NTILDE; &nTILDE; &#x2019; &#8220;x&#8221; &#59; &#x3b; &#12a; &#xyz;",
    "P&EACUTE;REZ &SZLIG; &AMP; &AMP &copy &copy; &not that &notit; &#0; &#128; &#x80; &#1114112; &#xD800;",
    "<b>bold &amp; tagged</b> &eacute;\nnext line &eacute; after a tag",
    "first line &eacute;\nsecond <i>line</i>\nthird &eacute;",
    "\x1b[31mred\x1b[0m \x1b[1;32mbold green\x1b[m \x1b[\u0663\u0664m \x1b[3\x01m \x1bnot",
    "tabs\tand\r\nCRLF\rCR\u2028LS\u2029PS\x85NEL\x0bVT\x0cFF\x1cFS\x1fUS end",
    "controls\x00\x07\x08\x0e\x1a\x7f \u206a\u206f \ufeffBOM \ufff9\ufffa\ufffb\ufffc\ufffd kept",
    "C1 \x80\x81\x8d\x8f\x90\x91\x92\x93\x94\x96\x97\x99\x9c\x9d\x9f  euro \x80 dash \x96",
    "\u0345 alone, a\u0345, \u03b1\u0345, \u1fb3, \u0399\u0345x",
    "Scale bar 50 \u00b5m, \u00d7400, \u00b1 2 \u2264 3, 37 \u00b0C, \u00bd, \u2460, \u00b2, \u2167, \u3392",
    "Ki-67 \u224820%, HER2 (3+), ER\u2212, PR\u2013, \u2014 em dash \u2026 ellipsis \u2022 bullet \u00b7 middot",
    "\U0001f52c \U0001f9ec \U0001f44d\U0001f3fd \U0001f1fa\U0001f1f8 \U0001f3f4\U000e0067\U000e0062\U000e0077\U000e006c\U000e0073\U000e007f",
    "\u0130stanbul \u1e9e stra\u00dfe \u03a3\u039f\u03a3 \u03bf\u03c3 \u03a3 \u01c5 \u1f88",
    "\u4e2d\u6587 \u65e5\u672c\u8a9e \ud55c\uad6d\uc5b4 \u05e2\u05d1\u05e8\u05d9\u05ea \u0627\u0644\u0639\u0631\u0628\u064a\u0629 \u0939\u093f\u0928\u094d\u0926\u0940 \u0e44\u0e17\u0e22",
    "   \u00a0\u2003leading and trailing\u3000spaces \u200b zero\u200dwidth\u00ad   ",
    "'S 'T 'RE 'VE 'M 'LL 'D \u017ft <start_of_text> <END_OF_TEXT> <|endoftext|>",
    "",
    "&",
    "&&amp;;;&;&#;&#x;",
    "caf\u00c3\u00a9 na\u00c3\u00afve \u00e2\u20ac\u0153quoted\u00e2\u20ac\ufffd \u00c2\u00b5m \u00c3\u2014400 \u00e2\u20ac\u201d dash",
    "voil\u00c3 le travail, \u00c3 s vezes, \u00c3 quele, f\u00c3 cil",
    "\u00c3\u00a9 \u00e2\u20ac\u2122 mixed with real caf\u00e9 and \u201ccurly\u201d",
    "\u0432\u0402\u045a Windows-1251 \u0420\u045f\u0421\u0402\u0420\u0451\u0420\u0406\u0420\u00b5\u0421\u201a",
    "\u00e2\u0153\u201d No problems, \u00c2\u00a3 5, \u00c3\u00bc\u00c3\u00b6, \u00ce\u00b1\u00ce\u00b2",
    "latin-1 C1: \u00e2\x80\x99 and \x93quoted\x94 and \x81 hole",
    "\u00ed\xa0\xbd\u00ed\xb2\xa9 CESU-8, \u00c0\x80 Java NUL",
    "sometimes correct: \u00c3 la carte, \u00c2 propos, \u00d7\u00b2, \u221a\u00b1, \u2248\u00b0",
]

MOJIBAKE_PIECES = ["\u00c3\u00a9", "\u00e2\u20ac\u2122", "\u00c2\u00b0", "caf\u00c3\u00a9", "\u00c3\u00bcber"]
PIECES = [c for case in CASES for c in case] + [
    "\u2019", "\u201c", "\u201d", "\ufb01", "\uff21", "\u3000", "e\u0301", "&amp;", "&lt;", "&#39;", "&#x27;", "&nbsp;",
    "&AMP;", "&EACUTE;", "<", "\r\n", "\x1b[0m", "\x85", "\x96", "\u0345", "\u1100", "\u1161", "\u11a8", "\u0323",
    "\u0302", "\u0308", "\u0327", "\u0328", "\u031b", "\u093c", "\u094d", "tumor", "stroma", "H&E", " ", " ", "  ",
]


CODECS = ["latin-1", "cp1252", "cp1251", "cp1250", "cp1253", "cp1254", "cp1257", "iso-8859-2", "mac_roman", "cp437"]
WORDS = ["caf\u00e9", "na\u00efve", "\u00b5m", "\u00d7400", "Crohn\u2019s", "\u201cquoted\u201d", "\u2014", "\u2026", "\u00b0C",
         "\u00fcber", "Stra\u00dfe", "\u00e0 la", "Gda\u0144sk", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
         "\u041c\u043e\u0441\u043a\u0432\u0430", "\u015feker", "tumor", "H&E", "\u00bd", "\u20ac5", "\u2122", "\u2022",
         "\U0001f52c", "\u4e2d\u6587"]


def mojibake(rng, text):
    """`text` in UTF-8 read back with a single-byte codec, now and then with its lost bytes as '?' or 0xA0 as ' '."""
    broken = text.encode("utf-8").decode(rng.choice(CODECS), errors=rng.choice(["replace", "ignore"]))
    if rng.random() < 0.2:
        broken = broken.replace("\xa0", " ")
    if rng.random() < 0.1:
        broken = broken.replace("\ufffd", "?")
    return broken


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "clip_tokenizer_ftfy_vectors.jsonl")
    tok = SimpleTokenizer()
    rng = random.Random(20261205)
    texts = list(CASES)
    while len(texts) < len(CASES) + 600:
        if len(texts) % 3:
            text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 24)))
        else:
            words = [rng.choice(WORDS) for _ in range(rng.randint(1, 6))]
            k = rng.randrange(len(words))
            words[k:] = [mojibake(rng, " ".join(words[k:]))]
            text = " ".join(words)
        if not any(unicodedata.category(c) == "Cn" for c in text):
            texts.append(text)
    repaired = sum(ftfy.fix_text(t) != ftfy.fix_text(t, fix_encoding=False) for t in texts)
    with open(out, "w", encoding="utf-8") as f:
        for text in texts:
            ids = tok(text)[0].tolist()
            while ids[-1] == 0:  # padding: the last token is always eot
                ids.pop()
            f.write(json.dumps({"text": text, "ids": ids}) + "\n")
    print(out, len(texts), "texts,", repaired, "with mojibake ftfy repairs")


if __name__ == "__main__":
    main()
