#!/usr/bin/env python3
"""The layering check: fails on an import that breaks the rules of ARCHITECTURE.md.

    python3 .ci/layers.py            # from the repository root; exit 1 on a violation

It reads the table under "## Allowed imports" in ARCHITECTURE.md (module -> the crate
modules it may import) and checks every file under src/ against it, and also:

  * no import circle: among the modules of one parent (e.g. storage::members and
    storage::search), the graph of `use` edges has no cycle (a module may use its own
    ancestors' items, and a parent its children's);
  * only `storage` names diesel, only `http`, `server` and `main` name actix-web;
  * the two backends are told apart (`Backend::Sqlite`, `Backend::Postgres`) only in
    storage/dialect.rs and storage/conn.rs.

Comments and string literals are ignored; paths are read from `use` trees and from
`crate::...` paths in code.
"""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "src")


def strip(text):
    """The code of a Rust file without comments, string or char literals."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == "r" and re.match(r'r#*"', text[i:]) and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + 2 + len(hashes))
            out.append('""')
            i = n if j < 0 else j + len(end)
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append('""')
            i = j + 1
        elif c == "'" and re.match(r"'(\\.|[^\\'])'", text[i:i + 4]) or text.startswith("'\\u{", i):
            j = text.find("'", i + 1 if text[i + 1] != "\\" else i + 3)
            out.append("' '")
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def module_of(path):
    """`src/storage/search/mod.rs` -> ["storage", "search"]; `src/main.rs` -> ["main"]."""
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    if rel == ["lib"]:
        return []
    return rel


def modules():
    """Every module of the crate (as tuples), and its file."""
    found = {}
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(dirpath, f)
                found[tuple(module_of(p))] = p
    return found


def use_trees(code):
    """The paths of every `use` tree in the code, expanded (`a::{b, c::d}` -> a::b, a::c::d)."""
    paths = []
    for m in re.finditer(r"\buse\s+([^;]+);", code):
        paths.extend(expand(m.group(1).replace("\n", " ")))
    return paths


def expand(tree):
    tree = tree.strip()
    depth, brace = 0, None
    for i, c in enumerate(tree):
        if c == "{":
            if depth == 0:
                brace = i
            depth += 1
        elif c == "}":
            depth -= 1
    if brace is None:
        return [re.sub(r"\s+as\s+\w+$", "", tree).strip()]
    prefix = tree[:brace].rstrip(":").strip()
    inner = tree[brace + 1:tree.rindex("}")]
    parts, depth, start = [], 0, 0
    for i, c in enumerate(inner):
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(inner[start:i])
            start = i + 1
    parts.append(inner[start:])
    out = []
    for part in parts:
        if not part.strip():
            continue
        for sub in expand(part):
            out.append(prefix if sub == "self" else f"{prefix}::{sub}")
    return out


def resolve(path, here, known):
    """The crate module a path names (the longest known prefix), or None for outside paths."""
    segs = [s for s in path.split("::") if s]
    if not segs:
        return None
    if segs[0] == "crate":
        base, rest = [], segs[1:]
    elif segs[0] in ("super", "self"):
        base = list(here)
        rest = segs
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    elif tuple(here + [segs[0]]) in known:
        base, rest = list(here), segs
    elif segs[0] == "scimitar":
        base, rest = [], segs[1:]
    else:
        return None
    target = list(base)
    for s in rest:
        if tuple(target + [s]) in known:
            target.append(s)
        else:
            break
    return tuple(target)


def allowed_table():
    text = open(os.path.join(ROOT, "ARCHITECTURE.md"), encoding="utf-8").read()
    section = text.split("## Allowed imports", 1)
    if len(section) < 2:
        sys.exit("ARCHITECTURE.md has no \"## Allowed imports\" section")
    table = {}
    for line in section[1].split("\n## ", 1)[0].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([a-z_]+)`", cells[1])
        table[cells[0].strip("`")] = "*" if "everything" in cells[1] else set(names)
    return table


def main():
    known = modules()
    table = allowed_table()
    problems = []
    edges = {}
    for mod, path in sorted(known.items()):
        code = strip(open(path, encoding="utf-8").read())
        rel = os.path.relpath(path, ROOT)
        top = mod[0] if mod else "lib"
        names = use_trees(code) + re.findall(r"\b(?:crate|scimitar)(?:::\w+)+", code)
        targets = set()
        for name in names:
            t = resolve(name, list(mod), known)
            if t is not None and t != mod:
                targets.add(t)
        edges[mod] = targets
        if top != "lib":
            if top not in table:
                problems.append(f"{rel}: module `{top}` is not in ARCHITECTURE.md's table")
            elif table[top] != "*":
                for t in sorted(targets):
                    if t and t[0] != top and t[0] not in table[top]:
                        problems.append(f"{rel}: `{top}` may not import `{'::'.join(t)}`")
        if re.search(r"\bdiesel(_migrations)?::", code) and top != "storage":
            problems.append(f"{rel}: only storage may name diesel")
        if re.search(r"\bactix_(web|http)::", code) and top not in ("http", "server", "main"):
            problems.append(f"{rel}: only http, server and main may name actix-web")
        if re.search(r"\bBackend::(Sqlite|Postgres)\b", code) and rel not in (
            os.path.join("src", "storage", "dialect.rs"),
            os.path.join("src", "storage", "conn.rs"),
        ):
            problems.append(f"{rel}: backend differences belong in storage/dialect.rs")
    # Circles among siblings: contract each edge to the children of the two modules' closest
    # common ancestor; an edge to or from an ancestor is a module using its parent's items.
    graph = {}
    for a, targets in edges.items():
        for b in targets:
            common = 0
            while common < min(len(a), len(b)) and a[common] == b[common]:
                common += 1
            if common == len(a) or common == len(b):
                continue
            x, y = a[: common + 1], b[: common + 1]
            graph.setdefault(x, set()).add(y)
    state = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                problems.append("import circle: " + " -> ".join("::".join(m) or "crate" for m in cycle))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    for p in problems:
        print(p)
    if problems:
        print(f"layering: {len(problems)} problem(s); see ARCHITECTURE.md", file=sys.stderr)
        return 1
    print(f"layering: {len(known)} modules checked against ARCHITECTURE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
