#!/usr/bin/env python3
"""Top allocation sites of a massif heap profile, per stream.

    massif-sites.py MASSIF_OUT --streams N [--base BASE_SNAPSHOT] [--held HELD_SNAPSHOT] [--top K]

Reads the peak snapshot of MASSIF_OUT (valgrind --tool=massif --massif-out-file), and, with
--base, a detailed snapshot taken before the streams opened (vgdb ... detailed_snapshot FILE): a
site's bytes per stream are (peak - base) / N. A site is the first frame of an allocation's stack,
from the allocator outwards, that is not allocation plumbing (malloc, alloc::, RawVec, Vec,
BytesMut, Box/Arc::new, tokio's task spawning, ...), named with its first qualified caller when its
own name is not (an inlined closure); "allocated at" is the first source line outside the standard
library on the way there, when it differs; "as" what the plumbing made (Box, Vec, a task cell, ...). --held: another detailed snapshot (taken with the
streams open) whose total is printed as a check on the peak.
"""

import argparse
import re
import sys
from collections import defaultdict

NODE = re.compile(r"^( *)n(\d+): (\d+) (.*)$")
BELOW = re.compile(r"^in [\d,]+ places?, (all )?below massif's threshold")
LABEL = re.compile(r"^(.*) \(([^()]*:\d+)\)$")
# Allocation plumbing, which says how memory was allocated, not what for: the standard library's
# sources, allocator and collection growth, BytesMut, and tokio's task spawning (a task's cell is
# charged to whoever spawned it).
PLUMBING_FILE = re.compile(
    r"^library/|(^|/)(alloc|boxed|raw_vec|bytes_mut|string|spec_extend|vec_deque|unix)\.rs:"
    r"|^src/(runtime/(task|scheduler|context)/|task/spawn\.rs|runtime/handle\.rs)"
)
PLUMBING_NAME = re.compile(r"^(alloc|core|std|hashbrown|__rustc|bytes::bytes_mut|tokio::runtime::(task|scheduler|context)|tokio::task::spawn)::")
PLUMBING_FN = set(
    "realloc malloc calloc alloc alloc_impl alloc_impl_runtime allocate grow grow_impl grow_impl_runtime grow_amortized "
    "grow_one finish_grow do_reserve_and_handle reserve reserve_inner with_capacity with_capacity_in box_new_uninit "
    "new_uninit aligned_malloc append_elements spec_extend extend_from_slice push_str write_str __rdl_alloc "
    "__rust_alloc __rg_alloc exchange_malloc try_allocate_in allocate_in UnknownInlinedFun".split()
)
# What kind of allocation the plumbing made, from the standard library file it passed last.
KINDS = [
    ("boxed.rs", "Box"), ("sync.rs", "Arc"), ("rc.rs", "Rc"), ("vec_deque", "VecDeque"), ("btree", "BTreeMap"),
    ("string.rs", "String"), ("raw_vec", "Vec"), ("vec/", "Vec"), ("hashbrown", "HashMap"),
]


class Node:
    __slots__ = ("bytes", "label", "children")

    def __init__(self, nbytes, label):
        self.bytes, self.label, self.children = nbytes, label, []


def parse(path):
    """The snapshots of a massif file: [(fields, tree root or None)]."""
    snaps = []
    fields, stack, root = None, [], None
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("snapshot="):
                if fields is not None:
                    snaps.append((fields, root))
                fields, stack, root = {}, [], None
                continue
            if fields is None:
                continue
            m = NODE.match(line)
            if m:
                depth = len(m[1])
                label = re.sub(r"^0x[0-9A-Fa-f]+: ", "", m[4])
                node = Node(int(m[3]), label)
                del stack[depth:]
                if stack:
                    stack[-1].children.append(node)
                else:
                    root = node
                stack.append(node)
            elif "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                fields[k] = v
    if fields is not None:
        snaps.append((fields, root))
    return snaps


def strip_generics(s):
    s = s.replace("->", "→")
    for _ in range(8):
        s2 = re.sub(r"<[^<>]*>", "", s)
        if s2 == s:
            break
        s = s2
    return s


def split(label):
    """(name without generic parameters, file:line) of a frame."""
    m = LABEL.match(label)
    name, loc = (m[1], m[2]) if m else (label, "")
    return strip_generics(name).lstrip("<"), loc


def plumbing(label):
    name, loc = split(label)
    # Short names are inlined frames: allocate, reserve, ... (qualified ones are judged by their path).
    short_name = "::" not in name or name.startswith("::")
    last = name.rstrip(":").split("::")[-1]
    return bool(PLUMBING_FILE.search(loc) or PLUMBING_NAME.match(name) or short_name and last in PLUMBING_FN)


def qualified(label):
    name, _ = split(label)
    return "::" in name and not name.startswith(("::", "{")) and not plumbing(label)


def kind_of(path):
    """Box, Vec, ... or the first non-std plumbing function (BytesMut::reserve_inner, task Cell::new)."""
    for label in path:
        name, _ = split(label)
        if "::" in name and not name.startswith(("alloc::", "core::", "std::", "__rustc::", "::")):
            return "tokio task" if name.startswith("tokio::runtime::task::") else "::".join(name.split("::")[-2:])
    for label in reversed(path):
        _, loc = split(label)
        for needle, kind in KINDS:
            if needle in loc:
                return kind
    return "alloc" if path else "-"


def context(node):
    """The first qualified, non-plumbing frame from `node` outwards (following the largest caller)."""
    n = node
    while n is not None:
        if qualified(n.label):
            return split(n.label)[0]
        n = max(n.children, key=lambda c: c.bytes) if n.children else None
    return ""


def sites(root):
    """{(site, at): [bytes, {kind: bytes}, {context: bytes}]} for a snapshot's tree. `site` is the
    first frame from the allocator outwards that is not plumbing; `at` the first source line
    outside the standard library on the way (where the allocation is, when the site inlined it)."""
    acc = defaultdict(lambda: [0, defaultdict(int), defaultdict(int)])

    def walk(node, path, at):
        if BELOW.match(node.label):
            a = acc[("(many small sites below massif's threshold)", "")]
            a[0] += node.bytes
            return
        name, loc = split(node.label)
        if not at and loc and not PLUMBING_FILE.search(loc) and not PLUMBING_NAME.match(name) \
                and not (name != "UnknownInlinedFun" and plumbing(node.label)):
            at = loc
        if plumbing(node.label) and node.children:
            for c in node.children:
                walk(c, path + [node.label], at)
            return
        name, loc = split(node.label)
        site = f"{name} ({loc})" if loc else name
        a = acc[(site, "" if at == loc else at)]
        a[0] += node.bytes
        a[1][kind_of(path)] += node.bytes
        if not qualified(node.label):
            a[2][context(node)] += node.bytes

    if root is not None:
        for c in root.children:
            walk(c, [], "")
    return acc


def short(s, width):
    s = strip_generics(s)
    return s if len(s) <= width else s[: width - 1] + "…"


def top(d):
    return max(d.items(), key=lambda kv: kv[1])[0] if d else ""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("massif_out")
    ap.add_argument("--streams", type=int, required=True)
    ap.add_argument("--base")
    ap.add_argument("--held")
    ap.add_argument("--top", type=int, default=15)
    a = ap.parse_args()

    snaps = parse(a.massif_out)
    peak = [s for s in snaps if s[0].get("heap_tree") == "peak"]
    if not peak:
        sys.exit("no peak snapshot in " + a.massif_out)
    pf, proot = peak[0]
    base_f, base_root = ({"mem_heap_B": "0", "mem_heap_extra_B": "0"}, None)
    if a.base:
        base_f, base_root = parse(a.base)[0]
    n = a.streams
    heap = int(pf["mem_heap_B"]) - int(base_f["mem_heap_B"])
    extra = int(pf["mem_heap_extra_B"]) - int(base_f["mem_heap_extra_B"])

    print(f"peak snapshot at {pf.get('time')} {'ms' if 'time' in pf else ''}: heap {int(pf['mem_heap_B']):,} B "
          f"+ {int(pf['mem_heap_extra_B']):,} B allocator overhead")
    if a.base:
        print(f"before the streams (base):  heap {int(base_f['mem_heap_B']):,} B + {int(base_f['mem_heap_extra_B']):,} B")
    if a.held:
        hf, _ = parse(a.held)[0]
        dh = int(hf["mem_heap_B"]) - int(base_f["mem_heap_B"])
        print(f"with the streams open (held snapshot): heap {int(hf['mem_heap_B']):,} B: {dh / n:,.0f} B per stream")
    print(f"per stream (peak{' - base' if a.base else ''}) / {n:,}: heap {heap / n:,.0f} B + allocator overhead "
          f"{extra / n:,.0f} B = {(heap + extra) / n:,.0f} B")
    print()

    p = sites(proot)
    b = sites(base_root)
    rows = []
    for key, (nbytes, kinds, ctx) in p.items():
        delta = nbytes - (b[key][0] if key in b else 0)
        rows.append((delta, key[0], key[1], top(kinds), top(ctx)))
    rows.sort(key=lambda r: -r[0])
    shown = rows[: a.top]
    rest = sum(r[0] for r in rows[a.top :])
    print("| bytes per stream | share | allocation site (first frame that is not allocation plumbing) | allocated at | as |")
    print("|---:|---:|---|---|---|")
    for delta, site, at, kind, ctx in shown:
        where = f"`{short(site, 100)}`" + (f" in `{short(ctx, 70)}`" if ctx else "")
        print(f"| {delta / n:,.0f} | {100 * delta / heap if heap else 0:.1f} % | {where} | {at} | {kind} |")
    print(f"| {rest / n:,.0f} | {100 * rest / heap if heap else 0:.1f} % | everything else ({len(rows) - len(shown)} sites) | | |")
    print(f"| **{heap / n:,.0f}** | 100 % | heap per stream (+ {extra / n:,.0f} B allocator overhead) | | |")


if __name__ == "__main__":
    main()
