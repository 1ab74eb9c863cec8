"""Find solution or hidden-test text where students will see it.

A *secret line* is a line of a solution region or a hidden-test region of the instructor's source
(at least ``MIN_CHARS`` characters once stripped) that does not also occur anywhere in the public
part of the notebook (markdown, visible code, the stubs), not even inside a longer line. ``release`` checks that no secret line, and no
region delimiter, reaches the student version; ``grade`` withholds any feedback output that
contains a hidden-test line (student code can read what the kernel runs and print it later).

Feedback is searched in every decoding a student can undo without a key (``decodings``): the text
as written, HTML entities and URL escapes undone, runs of base64 and hex decoded (the bytes of an
embedded PNG or JPEG included, with a PNG's compressed chunks inflated), whitespace collapsed.
*Hidden inputs* (``hidden_inputs``) are the literal values a hidden test feeds the student's code
(strings, lists, tuples of constants): a copy of one in feedback is a leak too.
"""

from __future__ import annotations

import ast
import base64
import binascii
import html
import json
import re
import struct
import zlib
from pathlib import Path

from dlcourse.grading import nbformat_grading as fmt

MIN_CHARS = 12
DELIMITERS = (fmt.SOLUTION_BEGIN, fmt.SOLUTION_END, fmt.HIDDEN_BEGIN, fmt.HIDDEN_END)


def _public_text(nb) -> str:
    out = []
    for cell in nb.cells:
        src = cell.source
        if fmt.role(cell) == "test":
            src = fmt.strip_hidden(src)
        elif fmt.role(cell) in ("solution", "manual"):
            src = fmt.stub_solution(src, cell.cell_type)
        out.append(src)
    return "\n".join(out)


def secret_lines(nb, *, hidden_only: bool = False) -> set[str]:
    """The lines of ``nb``'s solution/hidden-test regions that must not reach students."""
    public = _public_text(nb)
    secrets = set()
    for cell in nb.cells:
        if hidden_only:
            hidden = fmt.role(cell) == "test"
            regions = [s.code for s in fmt.split_hidden(cell.source) if s.hidden] if hidden else []
        else:
            regions = fmt.secret_regions(cell.source)
        for region in regions:
            for line in region.splitlines():
                line = line.strip()
                if len(line) >= MIN_CHARS and line not in public:
                    secrets.add(line)
    return secrets


def found_in(text: str, secrets: set[str]) -> list[str]:
    """The secrets (and region delimiters) that occur in ``text``."""
    hits = [d for d in DELIMITERS if d in text]
    hits += sorted(s for s in secrets if s in text)
    return hits


MIN_INPUT_CHARS = 8
MIN_CONTAINER_CHARS = 16
_CODE_NAME = re.compile(r"[_\d]|[a-z][A-Z]")  # dense_as_conv, Conv2D, UpSampling2D
_BASE64_RUN = re.compile(r"(?:[A-Za-z0-9+/_-]\s*){16,}={0,2}")
_HEX_RUN = re.compile(r"(?:[0-9a-fA-F]{2}){8,}")
_MAX_DECODED = 8 * 2**20  # a PNG inflates to at most this much for the search


def hidden_inputs(nb) -> set[str]:
    """The literal values hidden tests feed the student's code, as text a leak would show.

    Taken from the hidden-test regions with ``ast``: every string constant of at least
    ``MIN_INPUT_CHARS`` characters (not the pieces of an f-string: those are messages; not a
    bare name such as ``"BatchNormalization"``), every list, tuple, set or dict of constants whose
    ``repr`` has at least ``MIN_CONTAINER_CHARS`` (not a flat tuple of ints: a shape), and the items of a list of
    strings joined by spaces or commas (``"  ".join(words)`` of a hidden vocabulary). Values that
    also occur in the public part of the notebook are left out.
    """
    public = _public_text(nb)
    found: set[str] = set()
    for cell in nb.cells:
        if fmt.role(cell) != "test":
            continue
        for seg in fmt.split_hidden(cell.source):
            if not seg.hidden:
                continue
            try:
                tree = ast.parse(seg.code)
            except SyntaxError:
                continue
            in_fstring = {
                id(part)
                for node in ast.walk(tree)
                if isinstance(node, ast.JoinedStr)
                for part in node.values
            }
            for node in ast.walk(tree):
                values = None
                if isinstance(node, ast.Constant) and isinstance(node.value, str):
                    if id(node) in in_fstring or node.value.replace(".", "_").isidentifier():
                        continue  # a message piece, or a name (a layer type) any output has
                    value, least = node.value.strip(), MIN_INPUT_CHARS
                elif isinstance(node, ast.List | ast.Tuple | ast.Set | ast.Dict):
                    try:
                        values = ast.literal_eval(node)
                    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                        continue
                    if isinstance(values, tuple | list) and all(
                        x is None or type(x) is int for x in values
                    ):
                        continue  # a shape: (None, 8, 10, 4) is in any model summary
                    value, least = repr(values), MIN_CONTAINER_CHARS
                else:
                    continue
                if len(value) < least or value in public:
                    continue
                found.add(value)
                words = isinstance(values, list | tuple) and all(isinstance(x, str) for x in values)
                if words and not any(_CODE_NAME.search(x) for x in values):  # not layer names
                    for sep in (" ", ", "):  # whitespace is ignored when searching
                        joined = sep.join(values)
                        if len(joined) >= MIN_INPUT_CHARS and joined not in public:
                            found.add(joined)
    return found


_ESCAPE = re.compile(r"\\(x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|U[0-9a-fA-F]{8}|[0-7]{1,3}|[nrt\\'\"])")


_PERCENT = re.compile(r"%([0-9A-Fa-f]{2})")


def _unpercent(m: re.Match) -> str:
    return chr(int(m.group(1), 16))


def _unescape(m: re.Match) -> str:
    """One Python string escape (``\\x41``, ``\\u0041``, ``\\101``, ``\\n``) undone."""
    code = m.group(1)
    simple = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", "'": "'", '"': '"'}
    if code in simple:
        return simple[code]
    value = int(code[1:], 16) if code[0] in "xuU" else int(code, 8)
    return chr(value) if value < 0x110000 else m.group(0)


def _png_chunks(data: bytes) -> list[bytes]:
    """The inflated IDAT stream and text chunks of a PNG (empty if ``data`` is no PNG)."""
    start = data.find(b"\x89PNG\r\n\x1a\n")
    if start < 0:
        return []
    out, idat, pos = [], b"", start + 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IDAT":
            idat += body
        elif kind in (b"zTXt", b"iTXt"):
            for start in range(len(body)):
                try:
                    out.append(zlib.decompressobj().decompress(body[start:], _MAX_DECODED))
                    break
                except zlib.error:
                    continue
    if idat:
        try:
            out.append(zlib.decompressobj().decompress(idat, _MAX_DECODED))
        except zlib.error:
            pass
    return out


_ZLIB = re.compile(rb"\x78[\x01\x5e\x9c\xda]")


def _inflated(data: bytes) -> list[bytes]:
    """Every zlib stream in ``data`` (a compressed copy is no key), the first 32 tried."""
    out = []
    for m in list(_ZLIB.finditer(data))[:32]:
        try:
            out.append(zlib.decompressobj().decompress(data[m.start() :], _MAX_DECODED))
        except zlib.error:
            continue
    return out


def _from_bytes(data: bytes) -> tuple[list[str], list[str]]:
    """(texts to search as they are, texts to decode further) that ``data`` holds.

    Only bytes that are UTF-8 text are decoded again (base64 of base64, of a URL-encoded text);
    binary data (an image, its inflated pixel rows) is searched but not taken apart again, which
    kept a 40 KB plot from costing seconds.
    """
    final = [data.decode("latin-1")]
    again = [t for t in [_as_text(data)] if t]
    for inner in _inflated(data) + _png_chunks(data):
        final.append(inner.decode("latin-1"))
        # one text row per image row: the filter byte before each row splits nothing longer
        final.append(inner.replace(b"\x00", b"").decode("latin-1"))
        again += [t for t in [_as_text(inner)] if t]
    return final, again


_PRINTABLE = frozenset(range(0x20, 0x7F)) | {9, 10, 13}


def _as_text(data: bytes) -> str | None:
    """``data`` as text if it is text: UTF-8, or nearly all printable ASCII (a misaligned
    base64 decode starts with a few bytes of junk)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    sample = data[:4096]
    if sample and sum(b in _PRINTABLE for b in sample) >= 0.9 * len(sample):
        return data.decode("latin-1")
    return None


def decodings(text: str, depth: int = 3) -> list[str]:
    """``text`` and what it says once decoded the ways a student can encode without a key."""
    seen: dict[str, None] = {}
    searched: dict[str, None] = {}  # binary data as text: searched, not decoded again
    todo = [text]
    for _ in range(depth):
        new = []
        for t in todo:
            if t in seen:
                continue
            seen[t] = None
            cands = [" ".join(t.split())]
            if "\x00" in t:  # UTF-16 and friends
                cands.append(t.replace("\x00", ""))
            if "&" in t:
                cands.append(html.unescape(t))
            if _PERCENT.search(t):  # URL-encoded (a regex: unquote is slow on binary text)
                cands.append(_PERCENT.sub(_unpercent, t.replace("+", " ")))
            if "\\" in t:
                cands.append(_ESCAPE.sub(_unescape, t))
            for m in _BASE64_RUN.finditer(t):
                run = re.sub(r"\s", "", m.group(0)).rstrip("=").replace("-", "+").replace("_", "/")
                for shift in range(4):  # a copy that starts mid-way through a longer base64 run
                    part = run[shift:]
                    part = part[: len(part) - len(part) % 4]
                    try:
                        raw = base64.b64decode(part)
                    except (binascii.Error, ValueError):
                        continue
                    final, again = _from_bytes(raw)
                    searched.update(dict.fromkeys(final))
                    cands += again
            for m in _HEX_RUN.finditer(t):
                final, again = _from_bytes(bytes.fromhex(m.group(0)))
                searched.update(dict.fromkeys(final))
                cands += again
            new += [c for c in cands if c and c not in seen]
        todo = new
        if not todo:
            break
    return [*seen, *(t for t in todo if t not in seen), *(t for t in searched if t not in seen)]


def leaked(text: str, secrets: set[str]) -> list[str]:
    """The secrets found in ``text`` in any of its ``decodings``, whitespace ignored (a line
    printed in pieces, or wrapped, is still found)."""
    bare = {"".join(s.split()): s for s in secrets}
    hits: set[str] = set()
    for t in decodings(text):
        hits.update(found_in(t, secrets))
        flat = "".join(t.split())
        hits.update(orig for b, orig in bare.items() if b and b in flat)
    return sorted(hits)


def notebook_texts(nb) -> list[tuple[str, str]]:
    """(where, text) for every place a notebook stores text: sources, outputs, attachments, metadata."""
    out = [("notebook metadata", json.dumps(nb.get("metadata", {}), ensure_ascii=False))]
    for i, cell in enumerate(nb.cells):
        out.append((f"cell {i}", cell.get("source", "")))
        out.append((f"cell {i} metadata", json.dumps(cell.get("metadata", {}), ensure_ascii=False)))
        if cell.get("attachments"):
            out.append((f"cell {i} attachments", json.dumps(cell["attachments"])))
        for output in cell.get("outputs", []) or []:
            out.append((f"cell {i} output", json.dumps(output, ensure_ascii=False)))
    return out


def check_release(source_nb, release_dir: Path) -> list[str]:
    """Problems with what students get in ``release_dir`` (empty list: nothing leaked)."""
    import nbformat

    secrets = secret_lines(source_nb)
    problems = []
    for path in sorted(release_dir.rglob("*")):
        if not path.is_file():
            continue
        rel = path.relative_to(release_dir)
        if path.suffix == ".ipynb":
            nb = nbformat.read(path, as_version=4)
            places = notebook_texts(nb)
            if any(c.get("outputs") for c in nb.cells if c.cell_type == "code"):
                problems.append(f"{rel}: outputs were not cleared")
        else:
            places = [("file", path.read_bytes().decode("utf-8", errors="replace"))]
        for where, text in places:
            for hit in found_in(text, secrets):
                problems.append(f"{rel} ({where}): contains {hit[:60]!r}")
    return problems
