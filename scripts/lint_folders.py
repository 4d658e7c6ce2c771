#!/usr/bin/env python3
"""`make lint`'s layering rule: folders under Sources/AdapterFusion/ depend on each other one way,
in the order of LAYERS (a folder may use its own and earlier folders only).

A dependency is a use, in a folder's files, of a type, protocol, top-level function or
extension-declared name defined at the top level of another folder. Prints each use against the
order as `file:line: uses NAME from FOLDER` and exits 1 if there is any.
"""
import os
import re
import sys

# Lowest first. Written once here and in the README's layout section.
LAYERS = ["Support", "Tensors", "Distributed", "Tasks", "Encoder", "Heads", "Adapters", "Fusion", "Recipes", "Store", "Training",
          "Inference", "Interop"]
DEF = re.compile(r"^(?:@\w+\s+)*(?:(?:public|internal|fileprivate|private|final|open|indirect)\s+)*(?:class|struct|enum|protocol|typealias|func)\s+([A-Za-z_]\w*)")
IDENT = re.compile(r"\b[A-Za-z_]\w*\b")


def strip(line):
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    return line.split("//")[0]


def main(root):
    base = os.path.join(root, "Sources", "AdapterFusion")
    owner, files = {}, []
    for folder in sorted(os.listdir(base)):
        for name in sorted(os.listdir(os.path.join(base, folder))):
            path = os.path.join(base, folder, name)
            lines = open(path, encoding="utf-8").read().split("\n")
            files.append((folder, os.path.relpath(path, root), lines))
            for line in lines:
                m = DEF.match(line)
                if m and m.group(1) not in owner:
                    owner[m.group(1)] = folder
    rank = {f: i for i, f in enumerate(LAYERS)}
    bad = 0
    for folder, path, lines in files:
        if folder not in rank:
            print(f"{path}: folder {folder} is not in LAYERS (scripts/lint_folders.py)"); bad += 1; continue
        seen = set()
        for k, line in enumerate(lines):
            for name in IDENT.findall(strip(line)):
                other = owner.get(name)
                if other and other != folder and rank.get(other, -1) > rank[folder] and (name, other) not in seen:
                    seen.add((name, other))
                    print(f"{path}:{k + 1}: uses {name} from {other}, a later layer than {folder}")
                    bad += 1
    if bad:
        print(f"{bad} layering violation(s); order: {' → '.join(LAYERS)}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
