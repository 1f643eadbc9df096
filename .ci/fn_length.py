#!/usr/bin/env python3
"""Lists every Rust `fn` under the given directories (default: host/) longer than a limit
(default 150 lines, signature to closing brace). Exits 1 if any is found.

Comments, string, raw-string and char literals are blanked out first (newlines kept), so
braces inside them do not count; the body is the brace block that follows the signature."""
import pathlib
import re
import sys

LIMIT = 150


def blank(src: str) -> str:
    out = []
    i, n = 0, len(src)
    keep = lambda s: re.sub(r"[^\n]", " ", s)
    while i < n:
        c = src[i]
        if src.startswith("//", i):
            j = src.find("\n", i)
            j = n if j < 0 else j
            out.append(keep(src[i:j]))
            i = j
        elif src.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if src.startswith("/*", j):
                    depth, j = depth + 1, j + 2
                elif src.startswith("*/", j):
                    depth, j = depth - 1, j + 2
                else:
                    j += 1
            out.append(keep(src[i:j]))
            i = j
        elif (m := re.match(r'b?r(#*)"', src[i:])) and (i == 0 or not (src[i - 1].isalnum() or src[i - 1] == "_")):
            end = '"' + m.group(1)
            j = src.find(end, i + m.end())
            j = n if j < 0 else j + len(end)
            out.append(keep(src[i:j]))
            i = j
        elif c == '"':
            j = i + 1
            while j < n and src[j] != '"':
                j += 2 if src[j] == "\\" else 1
            out.append(keep(src[i : j + 1]))
            i = j + 1
        elif c == "'" and (m := re.match(r"'(\\.[^']*|[^\\'])'", src[i:])):
            out.append(keep(m.group(0)))
            i += m.end()
        else:
            out.append(c)
            i += 1
    return "".join(out)


def long_fns(path: pathlib.Path, limit: int):
    text = blank(path.read_text())
    for m in re.finditer(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)", text):
        # The body starts at the first `{` after the signature; a `;` first means no body.
        j = m.end()
        depth_paren = 0
        while j < len(text):
            ch = text[j]
            if ch in "([<":
                depth_paren += 1
            elif ch in ")]>" and depth_paren:
                depth_paren -= 1
            elif ch == ";" and depth_paren == 0:
                j = -1
                break
            elif ch == "{" and depth_paren == 0:
                break
            j += 1
        if j < 0 or j >= len(text):
            continue
        depth, k = 0, j
        while k < len(text):
            if text[k] == "{":
                depth += 1
            elif text[k] == "}":
                depth -= 1
                if depth == 0:
                    break
            k += 1
        start = text.count("\n", 0, m.start()) + 1
        end = text.count("\n", 0, k) + 1
        if end - start + 1 > limit:
            yield start, end - start + 1, m.group(1)


def main() -> int:
    args = sys.argv[1:] or ["host"]
    found = 0
    for root in args:
        for path in sorted(pathlib.Path(root).rglob("*.rs")):
            if "target" in path.parts:
                continue
            for line, length, name in long_fns(path, LIMIT):
                print(f"{path}:{line}: fn {name} is {length} lines (limit {LIMIT})")
                found += 1
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
