#!/usr/bin/env python3
"""Keeps README's module graph and Package.swift in step (issue 33: folder = target = import).

Fails, naming what differs, when
- a row of README's module-graph table (section "The module graph") and the target of the same
  name in Package.swift disagree on the folder or on the package's own modules it may import;
- a library or executable target is in one and not the other;
- a folder under Sources/ is not a target, or a target has `exclude:`/`sources:` lists;
- a source file re-exports a module (`@_exported`).
Reads both files as text (no build, no `swift package`), so it runs in a second.
Usage: scripts/check-layout.py [repo]   (exit 0: in step; exit 1: the differences, one a line)
"""
import os
import re
import sys

repo = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
problems = []

package = open(os.path.join(repo, "Package.swift")).read()
# Each target declaration runs from `.target(name:` (or executableTarget, systemLibrary, testTarget)
# up to the next one or the end of the list.
starts = list(re.finditer(r"\.(target|executableTarget|testTarget|systemLibrary)\(name: \"([^\"]+)\"", package))
targets = {}
for i, m in enumerate(starts):
    end = starts[i + 1].start() if i + 1 < len(starts) else len(package)
    body = package[m.start():end]
    kind, name = m.group(1), m.group(2)
    if re.search(r"\b(exclude|sources):", body):
        problems.append(f"Package.swift: target {name} has an exclude:/sources: list")
    path = re.search(r"path: \"([^\"]+)\"", body)
    deps_block = re.search(r"dependencies: \[(.*?)\]", body, re.S)
    deps = set()
    if deps_block:
        # The package's own modules are the bare strings; products are `.product(...)`.
        text = re.sub(r"\.product\([^)]*\)", "", deps_block.group(1))
        deps = set(re.findall(r"\"([^\"]+)\"", text))
    default = "Tests/" + name if kind == "testTarget" else "Sources/" + name
    targets[name] = (kind, path.group(1) if path else default, deps)

readme = open(os.path.join(repo, "README.md")).read()
section = re.search(r"^### The module graph\n(.*?)(?=^#)", readme, re.S | re.M)
if not section:
    print("README.md: no section \"### The module graph\"")
    sys.exit(1)
rows = {}
for line in section.group(1).splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) < 4 or not cells[0].startswith("`"):
        continue
    name = cells[0].strip("`")
    folder = cells[1].strip("`")
    imports = set(re.findall(r"`([^`]+)`", cells[3]))
    rows[name] = (folder, imports)

graph = {n: t for n, t in targets.items() if t[0] in ("target", "executableTarget", "systemLibrary")}
for name, (kind, path, deps) in sorted(graph.items()):
    if name not in rows:
        problems.append(f"README: no row for target {name} ({path})")
        continue
    folder, imports = rows[name]
    if folder != path:
        problems.append(f"{name}: README says folder {folder}, Package.swift {path}")
    # C and generated targets are listed too: the graph is every arrow SwiftPM enforces.
    if imports != deps:
        missing = sorted(deps - imports)
        extra = sorted(imports - deps)
        problems.append(f"{name}: README's imports differ from Package.swift's"
                        + (f"; README lacks {', '.join(missing)}" if missing else "")
                        + (f"; README adds {', '.join(extra)}" if extra else ""))
for name in sorted(set(rows) - set(graph)):
    problems.append(f"README: row {name} is not a (library, executable or system library) target in Package.swift")

for folder in sorted(os.listdir(os.path.join(repo, "Sources"))):
    if os.path.isdir(os.path.join(repo, "Sources", folder)) and folder not in targets:
        problems.append(f"Sources/{folder} is not a target")

for base in ("Sources", "Tests", "Fuzz"):
    for root, _, files in os.walk(os.path.join(repo, base)):
        for f in files:
            if f.endswith(".swift") and "@_exported" in open(os.path.join(root, f)).read():
                problems.append(f"{os.path.relpath(os.path.join(root, f), repo)}: @_exported")

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
