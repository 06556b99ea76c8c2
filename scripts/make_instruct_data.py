#!/usr/bin/env python3
"""Generate toy4_instruct, a small FLAN-style instruction-tuning mixture.

In the style of FLAN (arXiv 2210.11416) and FLAN-MoE (arXiv 2305.14705), in
miniature: 16 task families in 4 clusters, 3 instruction phrasings per family
(one picked at random per example, always before the input), and one whole
cluster held out for zero-shot evaluation. All text comes from the byte-level
toy4 corpus (third_party/corpora/toy4), sized for tiny byte models (context 128).

Clusters and families (chance = a uniform guess over the balanced answer set):
  classify  (held in)  language        snippet -> python/cpp/java/english    0.25
                       code_or_prose   snippet -> code/prose                  0.5
                       has_digit       snippet -> yes/no                      0.5
                       comment_or_code code line -> comment line? yes/no      0.5
  extract   (held in)  function_name   def/declaration line -> its name       n/a
                       first_word      snippet -> its first word              n/a
                       last_word       snippet -> its last word               n/a
                       longest_word    line -> its longest word               n/a
  transform (held in)  uppercase       1-3 word phrase -> UPPER CASE          n/a
                       reverse_word    3-8 letter lower-case word -> reversed n/a
                       count_words     2-9 word phrase -> the count (digit)   0.125
                       first_letters   2-6 word phrase -> its initials        n/a
  complete  (HELD OUT) next_word       passage -> the word that follows it    n/a
                       masked_word     line with one word as ____ -> the word n/a
                       which_is_code   "1: ..\\n2: ..", code vs prose -> 1/2   0.5
                       same_language   "1: ..\\n2: .." -> same language? yes/no 0.5
Held-out answers use formats the held-in clusters train (a word copied from the
prompt, yes/no, a digit), so zero-shot accuracy need not be 0.

Template (hard-coded on the C++ side): text = prompt + "\\nA: " + response + "\\n",
prompt = phrasing + "\\n" + input; the loss is on response + "\\n" and generation
stops at "\\n". Checked before writing: text is printable ASCII plus "\\n", <= 128
bytes; response 1-24 bytes, no "\\n"; no prompt contains "\\nA: "; no test
(prompt, response) is in train; no held-out family is in train.

Source text: lines are whitespace-collapsed; a line that is not printable ASCII
is dropped (never transliterated) and ends a block like a blank line. A snippet
is 1-3 consecutive lines of a block, a too-long first line cut at a space. The
"code" side of code_or_prose/which_is_code has no comment or docstring lines.
Word rule: split on whitespace, strip leading/trailing string.punctuation, drop
empty tokens; an answer word must be purely alphabetic or the snippet is skipped
(never ambiguous); longest_word uses only all-alphabetic lines with a unique
longest word; transform phrases are runs of such words of one line.

Protocol: held-in families get --train-per-family train and --test-per-family
test examples, held-out ones test only. Train text comes only from *.train.txt,
test text only from *.val.txt; a test (input, response) never repeats a train
one. Labels and source languages are balanced by cycling them over the example
index. Each family and split has its own random.Random(zlib.crc32(
f"{seed}:{family}:{split}")), so reruns are byte-identical. Output in --out:
train.jsonl, test.jsonl (families in name order, examples shuffled per family),
families.json, README.md.
"""

import argparse
import json
import os
import random
import re
import string
import sys
import zlib

LANGS = ("cpp", "english", "java", "python")
CODE_LANGS = ("cpp", "java", "python")
MARKERS = {"cpp": ("//", "/*", "*"), "java": ("//", "/*", "*"), "python": ("#",), "english": ()}
SEP, END = "\nA: ", "\n"
OPEN_QUOTE = re.compile(r"^(.*?)[rRbBuUfF]*(\"\"\"|''')")
MAX_TEXT, MAX_RESP = 128, 24
CLUSTERS = (("classify", False), ("extract", False), ("transform", False), ("complete", True))
FAMILIES = {}  # name -> dict(name, cluster, chance, description, phrasings, make)


class DataError(Exception):
    """Missing input or a violated output constraint: one line on stderr, exit 1."""


def printable(s):
    return all(32 <= ord(c) <= 126 for c in s)


def words(text):
    """The word rule: whitespace tokens stripped of punctuation, empties dropped."""
    return [w for w in (t.strip(string.punctuation) for t in text.split()) if w]


class Source:
    """The printable-ASCII, whitespace-collapsed lines of one <lang>.<split>.txt."""

    def __init__(self, path, lang):
        if not os.path.isfile(path):
            raise DataError(f"corpus file not found: {path}")
        with open(path, encoding="utf-8", errors="replace", newline="\n") as f:
            raw = f.read().split("\n")
        self.lang, self.lines, self.block, self.in_comment = lang, [], [], []
        block, inside = 0, False
        for line in raw:
            # Does the line lie (partly) in a /* */ comment or a Python triple-quoted string? Documents
            # may start mid-string, so an odd triple quote after nothing or one of =([{,: opens a string
            # and any other one (a bare one too) closes it, instead of toggling.
            flag = inside
            if lang == "python":
                t = line.strip()
                n = t.count('"""') + t.count("'''")
                flag = inside or n > 0
                if n % 2:
                    pre = OPEN_QUOTE.match(t).group(1).rstrip()
                    inside = (pre == "" and t[3:] != "") or pre[-1:] in tuple("=([{,:") or pre.endswith("return")
            elif lang != "english":
                start, stop = line.rfind("/*"), line.rfind("*/")
                flag, inside = inside or start >= 0, start > stop or (inside and stop < 0)
            text = " ".join(line.split())
            if not text or not printable(text):
                block += 1
                continue
            self.lines.append(text)
            self.block.append(block)
            self.in_comment.append(flag)
        runs, run = [], []  # runs of consecutive alphabetic words inside one line
        for text in self.lines:
            for tok in text.split() + [""]:
                if tok.strip(string.punctuation).isalpha():
                    run.append(tok.strip(string.punctuation))
                elif run:
                    runs.append(tuple(run))
                    run = []
        self.runs_min = {n: [r for r in runs if len(r) >= n] for n in range(1, 10)}

    def lines_at(self, rng, k, code_only=False):
        """Up to k consecutive lines of one block from a random start (no comments if code_only)."""
        i = j = rng.randrange(len(self.lines))
        while j - i < k and j < len(self.lines) and self.block[j] == self.block[i]:
            if code_only and (self.in_comment[j] or self.lines[j].startswith(MARKERS[self.lang])):
                break
            j += 1
        return self.lines[i:j]

    def phrase(self, rng, n):
        """n consecutive alphabetic words from one line."""
        run = rng.choice(self.runs_min[n])
        j = rng.randrange(len(run) - n + 1)
        return run[j : j + n]


def fit(lines, room):
    """Join lines with "\\n" while they fit in room bytes; cut a too-long first line at a space."""
    out = ""
    for line in lines:
        if len(out) + bool(out) + len(line) <= room:
            out = out + "\n" + line if out else line
            continue
        if not out and " " in line[: room + 1]:
            out = line[: room + 1].rsplit(" ", 1)[0]
        break
    return out


def snippet(src, rng, room, kmax=3, minlen=20, code_only=False):
    """1..kmax consecutive lines fitting room, with at least minlen bytes and a letter."""
    s = fit(src.lines_at(rng, rng.randint(1, kmax), code_only), room)
    return s if len(s) >= minlen and re.search("[A-Za-z]", s) else None


def family(name, cluster, chance, description, *phrasings):
    """Register make(S, rng, i, room) -> (input, response), or something false to retry: S maps a
    language to the split's Source, i is the example index (cycled to balance labels) and room
    the bytes left for input plus response."""

    def register(make):
        FAMILIES[name] = dict(name=name, cluster=cluster, chance=chance, description=description,
                              phrasings=list(phrasings), make=make)
        return make

    return register


# --- cluster classify ---------------------------------------------------------


# Four-way language identification, languages cycled evenly.
@family("language", "classify", 0.25, "name the language of a 1-3 line snippet (python/cpp/java/english)",
        "Which language is this snippet written in?", "Name the language (python, cpp, java or english):",
        "What language is the following text?")
def language(S, rng, i, room):
    s = snippet(S[LANGS[i % 4]], rng, room - len(LANGS[i % 4]))
    return s and (s, LANGS[i % 4])


# Code without comments (cpp/java/python cycled) versus English prose, 50/50.
@family("code_or_prose", "classify", 0.5, "is a 1-3 line snippet source code or English prose? (code/prose)",
        "Is this code or prose?", "Code or prose? Answer code or prose.",
        "Is the following text source code or English prose?")
def code_or_prose(S, rng, i, room):
    want = ("code", "prose")[i % 2]
    s = snippet(S["english" if want == "prose" else CODE_LANGS[(i // 2) % 3]], rng, room - 5, code_only=True)
    return s and (s, want)


# Does the snippet contain a digit? Balanced over (language, yes/no).
@family("has_digit", "classify", 0.5, "does a 1-3 line snippet contain a digit 0-9? (yes/no)",
        "Does this text contain a digit?", "Is there a digit (0-9) in the text below? Answer yes or no.",
        "Any digits in this snippet?")
def has_digit(S, rng, i, room):
    want = ("yes", "no")[i % 2]
    s = snippet(S[LANGS[(i // 2) % 4]], rng, room - 3)
    return s and ("yes" if re.search("[0-9]", s) else "no") == want and (s, want)


# Is one code line a comment line? Balanced over (language, yes/no). A comment line starts with '#' (python,
# outside docstrings) or '//', '/*', '*' (cpp, java; '*' only inside /* */); a code line has no comment marker.
@family("comment_or_code", "classify", 0.5, "is one line of code a comment line? (yes/no)",
        "Is this line a comment?", "Is the following line a comment? Answer yes or no.", "Comment line or not?")
def comment_or_code(S, rng, i, room):
    want, src = ("yes", "no")[i % 2], S[CODE_LANGS[(i // 2) % 3]]
    j = rng.randrange(len(src.lines))
    s, inside = fit([src.lines[j]], room - 3), src.in_comment[j]
    if len(s) < 8 or (src.lang == "python" and inside) or (s[0] == "*" and not inside):
        return None  # too short, inside a docstring, or '*p = x;'
    if s.startswith(MARKERS[src.lang]):
        got = "yes" if len(re.findall("[A-Za-z]{2,}", s)) >= 2 else None
    else:
        markers = ("#", '"""', "'''") if src.lang == "python" else ("//", "/*", "*/")
        code = re.search(r"[;{}()=]", s) and re.search("[A-Za-z]{3}", s)
        got = "no" if code and not inside and not any(m in s for m in markers) else None
    return got == want and (s, want)


# --- cluster extract ----------------------------------------------------------

PY_DEF = re.compile(r"^(?:async )?def ([A-Za-z_]\w*) ?\(")
C_DEF = re.compile(r"^([A-Za-z_][\w:<>,*&\[\] ]*?[ *&])([A-Za-z_]\w*) ?\((.*)$")
C_PARAM = re.compile(r"^(?:\)|$|(?:const |final )?[A-Za-z_][\w:<>.\[\]]*[ *&]+[A-Za-z_]\w*)")
NOT_TYPE = {"return", "else", "case", "throw", "new", "delete", "if", "while", "for", "switch", "do",
            "goto", "sizeof", "assert", "using", "typedef", "namespace", "template", "friend", "co_return"}


# Name of the function/method a python `def` line or a cpp/java declaration line
# (`type name(` with a parameter list that starts like `type param` or `)`) declares.
@family("function_name", "extract", None, "the name of the function/method declared on a python, cpp or java line",
        "What is the name of the function defined here?", "Name the function or method:",
        "Which function does this line define?")
def function_name(S, rng, i, room):
    src = S[CODE_LANGS[i % 3]]
    s = fit([src.lines[rng.randrange(len(src.lines))]], room - MAX_RESP)
    if src.lang == "python":
        m = PY_DEF.match(s)
        return m and (s, m.group(1))
    m = C_DEF.match(s)
    ok = m and m.group(1).split()[0] not in NOT_TYPE and m.group(2) not in NOT_TYPE and C_PARAM.match(m.group(3))
    return ok and (s, m.group(2))


def word_at(S, rng, i, room, pick):
    s = snippet(S[LANGS[i % 4]], rng, room - 12, kmax=2, minlen=10)
    w = s and words(s)
    return w and w[pick].isalpha() and (s, w[pick])


# First word of a 1-2 line snippet under the word rule.
@family("first_word", "extract", None, "the first word of a 1-2 line snippet",
        "What is the first word?", "Give the first word of the text.", "Copy the first word:")
def first_word(S, rng, i, room):
    return word_at(S, rng, i, room, 0)


# Last word of a 1-2 line snippet under the word rule.
@family("last_word", "extract", None, "the last word of a 1-2 line snippet",
        "What is the last word?", "Give the last word of the text.", "Copy the last word:")
def last_word(S, rng, i, room):
    return word_at(S, rng, i, room, -1)


# Longest word of a line of 3+ words, all alphabetic, with a unique longest one.
@family("longest_word", "extract", None, "the longest word of one line (all words alphabetic, no ties)",
        "Which word is the longest?", "Find the longest word.", "Give the longest word in this line:")
def longest_word(S, rng, i, room):
    s = snippet(S[LANGS[i % 4]], rng, room - 12, kmax=1, minlen=10)
    w = words(s) if s else []
    top = sorted(map(len, w), reverse=True) + [0, 0]
    return len(w) >= 3 and all(x.isalpha() for x in w) and top[0] > top[1] and (s, max(w, key=len))


# --- cluster transform --------------------------------------------------------


# A 1-3 word phrase (with a lower-case letter) in upper case.
@family("uppercase", "transform", None, "write a 1-3 word phrase in upper case",
        "Write this in upper case.", "Convert to capital letters:", "Uppercase the phrase:")
def uppercase(S, rng, i, room):
    p = " ".join(S[LANGS[i % 4]].phrase(rng, 1 + (i // 4) % 3))
    return p != p.upper() and (p, p.upper())


# A lower-case 3-8 letter word (not a palindrome) spelled backwards.
@family("reverse_word", "transform", None, "spell a lower-case 3-8 letter word backwards",
        "Spell this word backwards.", "Reverse the letters:", "Write the word in reverse order.")
def reverse_word(S, rng, i, room):
    (w,) = S[LANGS[i % 4]].phrase(rng, 1)
    return 3 <= len(w) <= 8 and w.islower() and w != w[::-1] and (w, w[::-1])


# Number of words of a 2-9 word phrase (cycled evenly), as one digit.
@family("count_words", "transform", 0.125, "count the words of a 2-9 word phrase (one digit)",
        "How many words are there?", "Count the words:", "Give the number of words in this phrase.")
def count_words(S, rng, i, room):
    n = 2 + (i // 4) % 8
    return (" ".join(S[LANGS[i % 4]].phrase(rng, n)), str(n))


# First letter of each word of a 2-6 word phrase, concatenated, case kept.
@family("first_letters", "transform", None, "concatenate the first letters of a 2-6 word phrase",
        "Join the first letter of each word.", "Write the initials of these words:",
        "Give the first letters of the words:")
def first_letters(S, rng, i, room):
    w = S[LANGS[i % 4]].phrase(rng, 2 + (i // 4) % 5)
    return (" ".join(w), "".join(x[0] for x in w))


# --- cluster complete (held out: test only) ----------------------------------


# The word that follows a 4-12 word passage (from a line start) in the source.
@family("next_word", "complete", None, "the word that follows a 4-12 word passage in the source",
        "What word comes next?", "Continue the text with one word:", "Give the next word of this passage.")
def next_word(S, rng, i, room):
    toks, n = " ".join(S[LANGS[i % 4]].lines_at(rng, 3)).split(), rng.randint(4, 12)
    w = toks[n].strip(string.punctuation) if len(toks) > n else ""
    return w.isalpha() and (" ".join(toks[:n]), w)


# One alphabetic word (3+ letters) of a line replaced by ____.
@family("masked_word", "complete", None, "the word (3+ letters) replaced by ____ in one line",
        "Which word fills the blank ____?", "Fill in the missing word:", "What word was replaced by ____?")
def masked_word(S, rng, i, room):
    toks = (snippet(S[LANGS[i % 4]], rng, room - 12, kmax=1) or "").split(" ")
    bare = [t.strip(string.punctuation) for t in toks]
    cands = [j for j, w in enumerate(bare) if len(w) >= 3 and w.isalpha()]
    if len(toks) < 4 or not cands:
        return None
    j = rng.choice(cands)
    toks[j] = toks[j].replace(bare[j], "____", 1)
    return (" ".join(toks), bare[j])


# Two one-line snippets, one code (no comment) and one English: which is code? (1/2)
@family("which_is_code", "complete", 0.5, "which of two one-line snippets (one code, one English) is code? (1/2)",
        "Which one is code, 1 or 2?", "One text is code and one is prose. Which is code? Answer 1 or 2.",
        "Which snippet is source code?")
def which_is_code(S, rng, i, room):
    half = (room - 1 - 7) // 2  # "1: " + "\n2: " take 7 bytes
    code = snippet(S[CODE_LANGS[(i // 2) % 3]], rng, half, kmax=1, code_only=True)
    prose = snippet(S["english"], rng, half, kmax=1)
    pair = (code, prose) if i % 2 == 0 else (prose, code)
    return code and prose and (f"1: {pair[0]}\n2: {pair[1]}", str(1 + i % 2))


# Two one-line snippets: same source language? (yes/no; 'no' cycles the 12 ordered pairs)
@family("same_language", "complete", 0.5, "are two one-line snippets in the same language? (yes/no)",
        "Are these two snippets in the same language?", "Same language? Answer yes or no.",
        "Are 1 and 2 written in the same language?")
def same_language(S, rng, i, room):
    pairs = [(a, b) for a in LANGS for b in LANGS if a != b]
    a, b = (LANGS[(i // 2) % 4],) * 2 if i % 2 == 0 else pairs[(i // 2) % len(pairs)]
    x, y = snippet(S[a], rng, (room - 10) // 2, kmax=1), snippet(S[b], rng, (room - 10) // 2, kmax=1)
    return x and y and x != y and (f"1: {x}\n2: {y}", "yes" if a == b else "no")


# --- generation, checks and output -------------------------------------------


def generate(fam, S, split, count, seed, forbid):
    """count examples of one family; (input, response) pairs are unique and not in forbid."""
    rng = random.Random(zlib.crc32(f"{seed}:{fam['name']}:{split}".encode()))
    out, seen = [], set()
    for i in range(count):
        for _ in range(50000):
            phrasing = rng.choice(fam["phrasings"])
            got = fam["make"](S, rng, i, MAX_TEXT - len(phrasing) - 1 - len(SEP) - len(END))
            if not got or got in seen or got in forbid:
                continue
            prompt, response = phrasing + "\n" + got[0], got[1]
            if SEP not in prompt and len(prompt + SEP + response + END) <= MAX_TEXT and len(response) <= MAX_RESP:
                seen.add(got)
                out.append({"family": fam["name"], "cluster": fam["cluster"], "prompt": prompt, "response": response})
                break
        else:
            raise DataError(f"family {fam['name']}: no valid {split} example #{i} after 50000 tries")
    rng.shuffle(out)
    return out, seen


def check(train, test, held_out):
    """The format constraints of the mixture; raise DataError on the first violation."""
    for ex in train + test:
        text = ex["prompt"] + SEP + ex["response"] + END
        where = f"{ex['family']}: {json.dumps(text)}"
        if not printable(text.replace("\n", " ")):
            raise DataError(f"non-printable byte in {where}")
        if not ex["response"] or "\n" in ex["response"] or len(ex["response"]) > MAX_RESP:
            raise DataError(f"empty, multi-line or over-{MAX_RESP}-byte response in {where}")
        if SEP in ex["prompt"] or len(text) > MAX_TEXT:
            raise DataError(f"prompt contains the separator or text over {MAX_TEXT} bytes in {where}")
    pairs = {(ex["prompt"], ex["response"]) for ex in train}
    for ex in test:
        if (ex["prompt"], ex["response"]) in pairs:
            raise DataError(f"test example also in train: {ex['family']}: {json.dumps(ex['prompt'])}")
    if any(ex["family"] in held_out for ex in train):
        raise DataError("a held-out family occurs in train.jsonl")


def md_code(s):
    s = json.dumps(s)[1:-1].replace("|", "\\|")
    return f"`` {s} ``" if "`" in s else f"`{s}`"


def readme(args, fams, examples, files):
    cmd = (f"python3 scripts/make_instruct_data.py --corpus {args.corpus} --out data/toy4_instruct "
           f"--seed {args.seed} --train-per-family {args.train_per_family} --test-per-family {args.test_per_family}")
    rows = "\n".join(
        f"| {f['name']} | {f['cluster']} | {'yes' if f['held_out'] else 'no'} | "
        f"{'n/a' if f['chance'] is None else f['chance']} | {f['description']} | "
        f"{md_code(examples[f['name']]['prompt'])} | {md_code(examples[f['name']]['response'])} | "
        f"{f['train']} | {f['test']} |" for f in fams)
    sizes = "\n".join(f"| {name} | {len(data)} | {data.count(chr(10))} |" for name, data in files)
    return f"""# toy4_instruct: a toy FLAN-style instruction-tuning mixture

Generated by `scripts/make_instruct_data.py` (do not edit by hand; its docstring describes every
family and rule): {len(fams)} task families in {len(CLUSTERS)} clusters, 3 instruction phrasings per
family, one whole cluster (`complete`) held out for zero-shot evaluation, in the style of FLAN
(arXiv 2210.11416) and FLAN-MoE (arXiv 2305.14705). Regenerate from the repository root
(deterministic; the content does not depend on `--out`):

    {cmd}

## Template and protocol

Each line of `train.jsonl` / `test.jsonl` is `{{"family", "cluster", "prompt", "response"}}`; the model
text is `prompt + "\\nA: " + response + "\\n"` (at most 128 bytes, printable ASCII plus newline),
where a prompt is an instruction phrasing, a newline and the input, and a response is 1-24 bytes.
The loss is taken on `response + "\\n"`; generation stops at `"\\n"`. Held-in families have train
and test examples, held-out families (cluster `complete`) test examples only. Train text comes
only from `*.train.txt`, test text only from `*.val.txt`; no test (prompt, response) occurs in
train. Labels are balanced, so `chance` is the accuracy of a uniform guess (n/a: open answer).

## Families

| family | cluster | held out | chance | description | example prompt (test, JSON-escaped) | response | train | test |
|---|---|---|---:|---|---|---|---:|---:|
{rows}

## Files

| file | bytes | lines |
|---|---:|---:|
{sizes}

The text comes from the toy4 corpus (`third_party/corpora/toy4/`); licences are in
`third_party/corpora/toy4/LICENSES/`.
"""


def run(args):
    if not os.path.isdir(args.corpus):
        raise DataError(f"corpus folder not found: {args.corpus}")
    sources = {split: {lang: Source(os.path.join(args.corpus, f"{lang}.{split}.txt"), lang) for lang in LANGS}
               for split in ("train", "val")}
    held_out = {n for n, f in FAMILIES.items() if dict(CLUSTERS)[f["cluster"]]}
    train, test, fams, examples = [], [], [], {}
    for name in sorted(FAMILIES):
        fam = FAMILIES[name]
        ntrain = 0 if name in held_out else args.train_per_family
        tr, seen = generate(fam, sources["train"], "train", ntrain, args.seed, set())
        te, _ = generate(fam, sources["val"], "test", args.test_per_family, args.seed, seen)
        train, test = train + tr, test + te
        examples[name] = (te or tr or [{"prompt": "", "response": ""}])[0]
        fams.append({"name": name, "cluster": fam["cluster"], "held_out": name in held_out,
                     "description": fam["description"], "phrasings": fam["phrasings"],
                     "chance": fam["chance"], "train": len(tr), "test": len(te)})
    check(train, test, held_out)
    meta = {"seed": args.seed, "template": {"separator": SEP, "end": END},
            "clusters": [{"name": c, "held_out": h, "families": [f["name"] for f in fams if f["cluster"] == c]}
                         for c, h in CLUSTERS],
            "families": fams}
    files = [("train.jsonl", "".join(json.dumps(ex, ensure_ascii=True) + "\n" for ex in train)),
             ("test.jsonl", "".join(json.dumps(ex, ensure_ascii=True) + "\n" for ex in test)),
             ("families.json", json.dumps(meta, indent=2, ensure_ascii=True) + "\n")]
    files.append(("README.md", readme(args, fams, examples, files)))
    os.makedirs(args.out, exist_ok=True)
    for name, data in files:
        with open(os.path.join(args.out, name), "w", encoding="ascii", newline="\n") as f:
            f.write(data)
    print(f"wrote {args.out}: {len(train)} train and {len(test)} test examples, {len(fams)} families")


def count(s):
    if not s.isdigit():
        raise argparse.ArgumentTypeError(f"not a non-negative integer: {s}")
    return int(s)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Generate the toy4_instruct FLAN-style instruction mixture.",
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--corpus", default="third_party/corpora/toy4",
                    help="folder of {cpp,english,java,python}.{train,val}.txt")
    ap.add_argument("--out", default="data/toy4_instruct", help="output folder")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--train-per-family", type=count, default=1000, help="train examples per held-in family")
    ap.add_argument("--test-per-family", type=count, default=32, help="test examples per family")
    args = ap.parse_args(argv)
    try:
        run(args)
    except DataError as e:
        print(f"make_instruct_data.py: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
