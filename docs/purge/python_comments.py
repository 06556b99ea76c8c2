#!/usr/bin/env python3
"""The toy per-token score of `monet purge`: 1 for every byte inside a Python `#` comment
(from the `#` to the end of its line), 0 for every other byte, one number per line.

A small scanner, not Python's tokenizer: the corpus cuts files into documents at arbitrary line
ends, so a document may start inside a string, which tokenize rejects. The scanner follows
'...', "...", '''...''' and \"\"\"...\"\"\" strings (with backslash escapes) so that a `#` inside a
string is not a comment. Documents are cut from long files, so one may end inside a docstring:
inside a triple-quoted string, a blank line followed by a line that starts like code at column 0
(RESYNC) is taken for a document boundary and ends the string. The score is approximate.

    python3 docs/purge/python_comments.py third_party/corpora/toy4/python.val.txt \
        > docs/purge/python_comments.score
"""
import sys


# What a document of the corpus starts with, and a docstring's paragraph rarely does.
RESYNC = (b"def ", b"class ", b"import ", b"from ", b"@", b"#", b'"""', b"'''", b"if __name__")


def comment_mask(data: bytes) -> list:
    mask = [0] * len(data)
    i, n = 0, len(data)
    quote = None  # the open string's delimiter: b"'", b'"', b"'''" or b'"""'
    while i < n:
        c = data[i:i + 1]
        if quote is None:
            if c == b"#":
                while i < n and data[i:i + 1] != b"\n":
                    mask[i] = 1
                    i += 1
                continue
            if c in (b"'", b'"'):
                quote = c * 3 if data[i:i + 3] == c * 3 else c
                i += len(quote)
                continue
            i += 1
            continue
        if len(quote) == 3 and data[i:i + 2] == b"\n\n" and data[i + 2:].startswith(RESYNC):
            quote = None  # most likely a document boundary: see the module docstring
            i += 2
            continue
        if c == b"\\":
            i += 2
            continue
        if data[i:i + len(quote)] == quote:
            i += len(quote)
            quote = None
            continue
        if c == b"\n" and len(quote) == 1:  # an unterminated one-line string
            quote = None
        i += 1
    return mask


def main() -> None:
    data = open(sys.argv[1], "rb").read()
    sys.stdout.write("\n".join(str(v) for v in comment_mask(data)) + "\n")


if __name__ == "__main__":
    main()
