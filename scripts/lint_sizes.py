#!/usr/bin/env python3
"""`make lint`'s size rules: no file under Sources/ over 300 lines, no function over 80.

A function is a `func`, `init`, `deinit` or `subscript` declaration with a body; its length runs
from the declaration line to the line of its closing brace. Braces inside string literals and
comments are skipped. Prints each violation as `file:line: …` and exits 1 if there is any.
"""
import os
import re
import sys

MAX_FILE, MAX_FUNC = 300, 80
DECL = re.compile(r"^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|private|fileprivate|internal|open|static|class|final|override|mutating|nonmutating|convenience|required|nonisolated)\s+)*(func|init|deinit|subscript)\b")


def code_chars(lines):
    """Yields (line_index, char) for code outside strings and comments."""
    in_block = 0
    in_multi = False
    for i, line in enumerate(lines):
        j, in_str = 0, False
        while j < len(line):
            c, two, three = line[j], line[j:j + 2], line[j:j + 3]
            if in_block:
                if two == "*/": in_block -= 1; j += 2; continue
                if two == "/*": in_block += 1; j += 2; continue
                j += 1; continue
            if in_multi:
                if three == '"""': in_multi = False; j += 3; continue
                j += 2 if c == "\\" else 1; continue
            if in_str:
                if c == "\\": j += 2; continue
                if c == '"': in_str = False
                j += 1; continue
            if two == "//": break
            if two == "/*": in_block += 1; j += 2; continue
            if three == '"""': in_multi = True; j += 3; continue
            if c == '"': in_str = True; j += 1; continue
            yield i, c
            j += 1


def functions(lines):
    """(start line, end line) of every function body, 0-based."""
    chars = list(code_chars(lines))
    out = []
    for k, line in enumerate(lines):
        if not DECL.match(line):
            continue
        # The body's opening brace: the first '{' at or after the declaration, before any ';'
        # or a following declaration (protocol requirements have no body).
        depth, start = 0, None
        for idx, (i, c) in enumerate(chars):
            if i < k:
                continue
            if start is None:
                if c == "{":
                    start, depth = idx, 1
                elif i > k and DECL.match(lines[i]):
                    break
                continue
            if c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    out.append((k, i))
                    break
    return out


def main(root):
    bad = 0
    for folder, _, files in os.walk(os.path.join(root, "Sources")):
        for name in sorted(files):
            if not name.endswith(".swift"):
                continue
            path = os.path.relpath(os.path.join(folder, name), root)
            with open(os.path.join(root, path), encoding="utf-8") as f:
                lines = f.read().split("\n")
            if lines and lines[-1] == "":
                lines.pop()
            if len(lines) > MAX_FILE:
                print(f"{path}:{len(lines)}: file has {len(lines)} lines (at most {MAX_FILE})")
                bad += 1
            for a, b in functions(lines):
                if b - a + 1 > MAX_FUNC:
                    print(f"{path}:{a + 1}: function has {b - a + 1} lines (at most {MAX_FUNC}): {lines[a].strip()[:80]}")
                    bad += 1
    if bad:
        print(f"{bad} size rule violation(s)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
