#!/usr/bin/env python3
"""The server's import graph, drawn from its sources: which file refers to which.

Reads every `server/src/**/*.rs`, resolves each `crate::…`, `super::…` and `self::…` path (in `use`
declarations and inline) to the file that defines the module, and prints:

- each folder (domain) and the folders it imports, with the files that cross;
- every import cycle (strongly connected set of files) that passes through `app.rs` or `jobs/`;
- every file that reaches into another domain's `store` (a domain owns its tables: others call
  its use cases or its public module, never its store);
- every file outside a `store.rs` that names a database table, through the diesel schema
  (`companion_schema::schema::…`) or in SQL text (`FROM jobs`, `UPDATE alerts`, …): SQL lives in
  the stores;
- the README's length.

    python3 tests/structure/imports.py            # the picture
    python3 tests/structure/imports.py --check    # also exit 1 on any of the four findings
    python3 tests/structure/imports.py --dot      # folder graph for graphviz (dot -Tsvg)

Test modules (`#[cfg(test)] mod tests { … }`) are left out: they do not shape the build.
"""
import os
import re
import sys
from collections import defaultdict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SRC = os.path.join(ROOT, "server", "src")
SCHEMA = os.path.join(ROOT, "schema", "src", "schema.rs")
README_LIMIT = 300
# Folders that are infrastructure every domain may use through their store-level API: the job
# queue (enqueue inside the caller's transaction) and the database helpers.
SHARED_STORES = {"jobs", "db"}


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] in ("mod", "lib", "main"):
        rel = rel[:-1]
    return tuple(rel)


def table_names():
    """The tables `schema/src/schema.rs` declares (`diesel::table! { name (key) { … } }`)."""
    with open(SCHEMA, encoding="utf-8") as fh:
        return set(re.findall(r"table!\s*\{\s*(\w+)\s*\(", fh.read()))


def tables_named(text, tables):
    """The tables `text` (a file without tests and comments) names: through the diesel schema
    (`schema::{a, b}`, `schema::a`, or `schema::schema::*` for every table) or in SQL text inside
    a string literal (a table after FROM, JOIN, INTO, UPDATE or TABLE, in capitals as the stores
    write SQL)."""
    named = set()
    if re.search(r"schema::schema::\*", text):
        named.update(tables)
    for m in re.finditer(r"\bschema::\{([^}]*)\}", text):
        named.update(t.strip() for t in m.group(1).split(",") if t.strip() in tables)
    for m in re.finditer(r"\bschema::(\w+)", text):
        if m.group(1) in tables:
            named.add(m.group(1))
    for literal in re.findall(r'"(?:[^"\\]|\\.)*"', text):
        for m in re.finditer(r"\b(?:FROM|JOIN|INTO|UPDATE|TABLE)\s+(\w+)", literal):
            if m.group(1) in tables:
                named.add(m.group(1))
    return named


def strip_tests_and_comments(text):
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    # Drop `#[cfg(test)] mod tests { ... }` blocks by brace matching.
    out, i = [], 0
    for m in re.finditer(r"#\[cfg\(test\)\]\s*(?:pub\s+)?mod\s+\w+\s*\{", text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        i = j
    out.append(text[i:])
    return "".join(out)


def expand_use(tree):
    """`a::{b, c::{d, e}}` -> [a::b, a::c::d, a::c::e]."""
    tree = re.sub(r"\s+", "", tree)
    m = re.match(r"^(.*?)\{(.*)\}$", tree)
    if not m:
        return [tree.split(" as ")[0]]
    prefix, inner = m.group(1), m.group(2)
    parts, depth, cur = [], 0, ""
    for ch in inner:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += {"{": 1, "}": -1}.get(ch, 0)
        cur += ch
    parts.append(cur)
    return [p2 for p in parts if p for p2 in expand_use(prefix + p)]


def paths_in(text):
    for m in re.finditer(r"\buse\s+([^;]+);", text):
        for p in expand_use(m.group(1)):
            yield re.sub(r"as\w+$", "", p)
    body = re.sub(r"\buse\s+[^;]+;", "", text)
    for m in re.finditer(r"\b((?:crate|super|self)(?:::\w+)+)", body):
        yield m.group(1)


def resolve(path, here, modules):
    segs = path.split("::")
    if segs[0] == "crate":
        base, rest = (), segs[1:]
    elif segs[0] not in ("super", "self"):
        # `use child::…` in a folder's `mod.rs` (or `lib.rs`) names a child module.
        if here + (segs[0],) not in modules:
            return None
        base, rest = here, segs
    else:
        base = here
        while segs and segs[0] in ("super", "self"):
            if segs[0] == "super":
                base = base[:-1]
            segs = segs[1:]
        rest = segs
    best = None
    for k in range(len(rest), -1, -1):
        cand = base + tuple(rest[:k])
        if cand in modules:
            best = cand
            break
    return best


def load():
    modules = {}
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(dirpath, f)
                modules[module_of(p)] = p
                PATHS[module_of(p)] = p
    edges = defaultdict(set)
    for mod, p in modules.items():
        with open(p, encoding="utf-8") as fh:
            text = strip_tests_and_comments(fh.read())
        for path in paths_in(text):
            target = resolve(path, mod, modules)
            if target is not None and target != mod and target != ():
                edges[mod].add(target)
    return modules, edges


PATHS = {}


def name(mod):
    """The file that defines `mod`, relative to server/src."""
    if mod in PATHS:
        return os.path.relpath(PATHS[mod], SRC)
    return "/".join(mod) + ".rs" if mod else "lib.rs"


def folder(mod):
    return mod[0] if mod else "lib"


def sccs(nodes, edges):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out



def report(lines):
    """Prints one finding a line, or "none"; returns how many."""
    for line in lines:
        print(line)
    if not lines:
        print("none")
    return len(lines)

def main(argv):
    modules, edges = load()
    if "--dot" in argv:
        print("digraph imports {\n  rankdir=LR; node [shape=box];")
        pairs = {(folder(a), folder(b)) for a, ts in edges.items() for b in ts}
        for a, b in sorted(pairs):
            if a != b and a != "lib":
                print(f'  "{a}" -> "{b}";')
        print("}")
        return 0

    by_folder = defaultdict(lambda: defaultdict(set))
    for a, ts in edges.items():
        for b in ts:
            if folder(a) != folder(b) and folder(a) != "lib":
                by_folder[folder(a)][folder(b)].add(name(a))
    print(f"== {len(modules)} files; folders and what they import")
    for f in sorted(by_folder):
        print(f"{f:>14} -> {', '.join(sorted(by_folder[f]))}")

    findings = 0
    print("\n== import cycles through app.rs or jobs/")
    # Files of one folder that refer to each other are one unit; a cycle counts when it leaves
    # the folder.
    watched = [c for c in sccs(modules.keys(), edges)
               if any(m == ("app",) for m in c)
               or (any(m[:1] == ("jobs",) for m in c) and any(m[:1] != ("jobs",) for m in c))]
    findings += report(
        [f"cycle of {len(c)} files: {', '.join(name(m) for m in c)}" for c in watched]
    )

    print("\n== files reaching into another domain's store")
    crossings = []
    for a, ts in sorted(edges.items()):
        for b in sorted(ts):
            if len(b) >= 2 and b[1] == "store" and folder(a) != b[0] and b[0] not in SHARED_STORES:
                crossings.append(f"{name(a)} -> {name(b)}")
    findings += report(crossings)

    print("\n== tables named outside a store (SQL lives in the stores)")
    tables = table_names()
    outside = []
    for mod, p in sorted(modules.items()):
        if mod and mod[-1] == "store":
            continue
        with open(p, encoding="utf-8") as fh:
            named = tables_named(strip_tests_and_comments(fh.read()), tables)
        if named:
            outside.append(f"{name(mod)}: {', '.join(sorted(named))}")
    findings += report(outside)

    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as fh:
        lines = sum(1 for _ in fh)
    print(f"\n== README.md: {lines} lines (at most {README_LIMIT})")
    if lines > README_LIMIT:
        findings += 1

    if "--check" in argv and findings:
        print(f"\n{findings} finding(s)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
