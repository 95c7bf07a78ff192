"""libyaml's fast path of `parse_yaml` gives exactly what PyYAML's Python loader gives.

Every comparison is against `parse_yaml(..., _pure=True)`, the reference. Where a document is
meant to go the fast way, the test also checks that it did, so that a silent fallback to the
Python loader cannot make a comparison pass.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import yaml

from runner.errors import Problem
from runner.manifest import yamlpos
from runner.manifest.yamlpos import Node, parse_yaml

REPO = Path(__file__).resolve().parent.parent
CORPUS = sorted(
    path for folder in ("examples", "jobs", "tests") for path in (REPO / folder).rglob("*.yaml")
)

pytestmark = pytest.mark.skipif(not yaml.__with_libyaml__, reason="PyYAML built without libyaml")


def shape(node: Node | None) -> object:
    """A Node tree as plain data, with types spelt out (True == 1 and nan != nan otherwise)."""
    if node is None:
        return None
    v = node.value
    if isinstance(v, dict):
        value: object = {k: shape(child) for k, child in v.items()}
    elif isinstance(v, list):
        value = [shape(child) for child in v]
    elif isinstance(v, float) and math.isnan(v):
        value = "nan"
    else:
        value = v
    return (type(v).__name__, value, node.line, node.column, dict(node.key_positions))


def outcome(text: str, *, pure: bool) -> object:
    try:
        root, problems = parse_yaml(text, "m.yaml", _pure=pure)
    except Exception as exc:
        return ("raised", type(exc).__name__, str(exc))
    return shape(root), problems


def fast_only(text: str) -> tuple[Node, list[Problem]] | None:
    """libyaml's own answer, or None where `parse_yaml` hands the text to the Python loader."""
    try:
        return yamlpos._parse_fast(text, "m.yaml")
    except Exception:
        return None


def assert_same(text: str, *, fast: bool | None = None) -> None:
    quick = fast_only(text)
    if quick is not None:
        root, problems = quick
        assert (shape(root), problems) == outcome(text, pure=True)
    assert outcome(text, pure=False) == outcome(text, pure=True)
    if fast is not None:
        assert (quick is not None) == fast, "fast path taken" if quick else "fast path refused"


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8-sig")


def test_the_corpus_is_there() -> None:
    names = {p.relative_to(REPO).as_posix() for p in CORPUS}
    assert "examples/demo/book.yaml" in names
    assert any(name.startswith("tests/manifests/invalid/") for name in names)
    assert len(CORPUS) > 50


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_corpus_file_parses_the_same(path: Path) -> None:
    assert_same(read(path))


def test_most_of_the_corpus_takes_the_fast_path() -> None:
    fast = [p for p in CORPUS if fast_only(read(p)) is not None]
    assert len(fast) >= 0.8 * len(CORPUS)
    for path in (REPO / "examples/demo/book.yaml", REPO / "examples/all-providers/book.yaml"):
        assert path in fast


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.relative_to(REPO).as_posix())
def test_corpus_file_with_crlf_and_bom_parses_the_same(path: Path) -> None:
    text = read(path).replace("\n", "\r\n")
    assert_same(text)
    assert_same("\ufeff" + text)


#: (name, text, whether libyaml's answer is kept)
CRAFTED = [
    ("chinese before a value", "标题: 灯塔守望人\n作者: 佚名 和 😀 x\nk: v\n", True),
    ("emoji keys and values", "😀: 😀😀\n'😀😀': [😀, 中文, x]\n\"中😀\": {键: 值, 😀: 1}\n", True),
    (
        "non-ASCII inside and after quotes",
        "a: '中文 😀' \nb: \"\\u4e2d 😀\"\nc: 中文 # 注释 😀\n",
        True,
    ),
    (
        "nested block after non-ASCII lines",
        "texts:\n  - id: 第一\n    title: 灯塔 😀 守望人\n    voice: 小明\n"
        "  - {id: 二, title: 😀}\n",
        True,
    ),
    ("crlf", "a: 1\r\nb:\r\n  - x\r\n  - 中文\r\nc: |\r\n  one\r\n  two\r\n", True),
    ("lone cr", "a: 1\rb: 2\r", True),
    ("bom", "\ufeffa: 1\nb: 中文\n", True),
    ("bom and crlf", "\ufefftexts:\r\n  - text: hi\r\n", True),
    ("bom in the middle", "a: \ufeffb\nc: d\n", False),
    (
        "block scalars",
        "a: |\n  line one\n    indented\n\n  after blank\nb: >-\n  folded\n  text\n\n  para\n"
        "c: |+\n  keep\n\nd: |2\n   two\ne: >\n  中文 😀\n",
        True,
    ),
    ("block scalar holding tabs", "a: |\n  col\tcol\n  \tlead\nb: x\n", True),
    ("block scalar header with a tab", "a: |\t\n  x\n", False),
    ("block scalar header glued to a comment", "a: |#c\n  x\n", False),
    ("block scalar at the end without newline", "a: |", True),
    ("anchored block scalar", "a: &x |\n  x\nb: *x\n", False),
    ("multi-line plain", "a: one\n  two\n  three\nb: x\n", True),
    ("multi-line quoted", "a: \"one\n  two\"\nb: 'three\n\n  four'\n", True),
    ("quoted with tabs inside", 'a: "x\ty"\nb: \'x\t\ty\'\nc: "x\n\ty"\n', True),
    (
        "flow collections",
        "a: [x, y, {c: d, e: [f, g]}]\nb: {h: 1, i: [2, 3]}\nc: [a:b, 'q']\n",
        True,
    ),
    ("flow over lines", "a: [x,\n  y,\n  z]\nb: {c: 1,\n  d: 2}\n", True),
    (
        "merge keys",
        "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\nmore:\n  <<: [*b, {z: 4}]\n",
        True,
    ),
    ("duplicate keys", "a: 1\nb: 2\na: 3\nc:\n  d: 1\n  d: 2\n", True),
    ("duplicate keys after a merge", "base: &b {x: 1}\nuse:\n  <<: *b\n  x: 2\n  x: 3\n", True),
    ("non-scalar key", "? [a, b]\n: c\nd: e\n", True),
    ("anchors and aliases", "a: &v hello\nb: *v\nc: &l [1, 2]\nd: *l\ne: &m {x: 1}\nf: *m\n", True),
    (
        "scalars of every type",
        "a: 1\nb: 1.5\nc: true\nd: ~\ne: null\nf: 0x1F\ng: 0o17\nh: .inf\ni: .nan\nj: 1:20\n"
        "k: 2001-12-14\nl: 2001-12-14t21:59:43.10-05:00\nn: '1'\no: yes\n",
        True,
    ),
    ("exclamation marks in values", "a: Hello! World!\nb: 'Hi!'\nc: |\n  Wow!\nd: x !y\n", True),
    ("a tag", "a: !!binary aGk=\nb: !!str 1\n", False),
    ("a tag after an anchor", "a: &x !!str 1\nb: *x\n", False),
    ("a tag PyYAML rejects", " !...!\nb: 1\n", False),
    ("a tag on a mapping, read otherwise by PyYAML", "!a:! \rb: 2\n", False),
    ("bom before a tab in quotes", '\ufeffa: "x\ty"\n', True),
    ("bom before an empty value at the end", "\ufeff? c...<<:!", False),
    ("empty values", "a:\nb: # nothing\nc:\n  -\n  - x\n  - \nd: e\n", True),
    ("empty value at the very end", "a: 1\nb:", False),
    ("empty value on the last line", "a: 1\nb:\n", True),
    ("empty complex key value at the end", "? c\n", False),
    ("empty complex key value at the end, trailing spaces", "? c\n   ", False),
    ("empty value in a flow mapping", "a: {x: , y: 2}\n", False),
    ("empty value tagged !", "a: !\nb: 1\n", False),
    ("bad timestamp", "a: !!timestamp 2001-13-99\n", None),
    ("unknown tag", "a: !custom x\nb: 1\n", None),
    ("bad int", "a: !!int x\n", None),
    ("bad key", "!!timestamp 2001-13-99: x\n", None),
    ("bad merge", "a:\n  <<: 1\n", None),
    ("question mark in flow", "a: [what?]\n", False),
    ("tab after a value", "a: b\t\n", False),
    ("tab after a colon", "a:\tb\n", False),
    ("tab inside a plain value", "a: b\tc\n", False),
    ("tab inside a comment", "a: b # c\td\n", False),
    ("tab indentation", "texts:\n  - id: a\n\ttext: b\n", False),
    ("local tag in flow", "a: [!x,y]\n", False),
    (
        "question mark in an anchored flow mapping, first met through an alias in a flow list",
        "base: &b {x?: 1}\nuse:\n  <<: *b\nmore:\n  <<: [*b, {z: 4}]\n",
        False,
    ),
    ("tab between a tag and a quoted value", 'a: ! \t"1"\n', False),
    ("tab between an anchor and a quoted value", 'a: &x \t"1"\n', False),
    ("tab inside an anchored quoted value", 'a: &x "\t1"\n', False),
    ("directive glued to a comment", "%YAML 1.1#\n---\na: 1\n", False),
    ("directive after a bom", "\ufeff%YAML 1.1#\n---\na: 1\n", False),
    ("directive", "%YAML 1.1\n---\na: 1\n", False),
    ("document markers", "---\na: 1\n...\n", True),
    ("line and paragraph separators", "a: b\u2028c\nd: e\x85f: g\n", None),
    ("a long key", "k" * 1100 + ": v\n", None),
    ("a long non-ASCII key", "中" * 1030 + ": v\n", None),
    ("empty", "", None),
    ("only a comment", "# nothing\n", None),
]


@pytest.mark.parametrize(("text", "fast"), [c[1:] for c in CRAFTED], ids=[c[0] for c in CRAFTED])
def test_crafted_document_parses_the_same(text: str, fast: bool | None) -> None:
    assert_same(text, fast=fast)


#: Broken documents: libyaml fails on each, so the Python loader must give today's problem.
SYNTAX_ERRORS = [
    "texts:\n  - id: a\n   title: b\n",
    "a: 'never closed\nb: c\n",
    'a: "never closed\n',
    "texts:\n  - id: a\n\ttext: b\n",
    "a: b: c\n",
    'path: "C:\\Users\\me"\n',
    "a: 'it's'\n",
    "a:\n  - x\n - y\n",
    "a: [x, y\n",
    "a: 1\n---\nb: 2\n",
    "a: *missing\n",
    "a: &x 1\nb: &x 2\n",
    "%YAML 2.0\n---\na: 1\n",
    "a: |0\n  x\n",
    "a: 'x'\n\t",
]


@pytest.mark.parametrize("text", SYNTAX_ERRORS)
def test_syntax_error_gives_the_python_loaders_problem(text: str) -> None:
    with pytest.raises((yaml.YAMLError, UnicodeError)):
        yaml.compose(text, Loader=yaml.CSafeLoader)
    assert fast_only(text) is None
    root, problems = parse_yaml(text, "m.yaml")
    assert root is None
    [problem] = problems
    assert (root, problems) == parse_yaml(text, "m.yaml", _pure=True)
    assert problem.file == "m.yaml"


@pytest.mark.parametrize("text", ["a: \x00\n", "a: b\ud800\n", "a: \x07\n"])
def test_unreadable_character_raises_as_before(text: str) -> None:
    assert fast_only(text) is None
    with pytest.raises(yaml.reader.ReaderError) as raised:
        parse_yaml(text, "m.yaml")
    with pytest.raises(yaml.reader.ReaderError) as expected:
        parse_yaml(text, "m.yaml", _pure=True)
    assert str(raised.value) == str(expected.value)


def test_corpus_syntax_errors_keep_their_positions_and_hints() -> None:
    for name, hint in (
        ("03-tab-indentation.yaml", "replace the tab with spaces"),
        ("02-unclosed-quote.yaml", "is never closed"),
    ):
        text = read(REPO / "tests/manifests/invalid" / name)
        root, [problem] = parse_yaml(text, name)
        assert root is None
        assert hint in problem.message
        assert (root, [problem]) == parse_yaml(text, name, _pure=True)
        assert problem.line > 1


def test_every_node_has_the_python_loaders_marks() -> None:
    """The marks of libyaml's own node graph, not just of the Nodes built from it."""
    texts = [read(p) for p in CORPUS] + [c[1] for c in CRAFTED if c[2]]
    for text in texts:
        try:
            c_root = yaml.compose(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError:
            continue
        if fast_only(text) is None:
            continue
        py_root = yaml.compose(text, Loader=yaml.SafeLoader)
        pending = [(c_root, py_root)]
        while pending:
            c, py = pending.pop()
            assert type(c) is type(py), text
            assert (c.start_mark.line, c.start_mark.column) == (
                py.start_mark.line,
                py.start_mark.column,
            ), text
            assert c.tag == py.tag, text
            if isinstance(c, yaml.ScalarNode):
                assert c.value == py.value, text
            elif isinstance(c, yaml.SequenceNode):
                assert len(c.value) == len(py.value), text
                pending.extend(zip(c.value, py.value, strict=True))
            else:
                assert len(c.value) == len(py.value), text
                for (ck, cv), (pk, pv) in zip(c.value, py.value, strict=True):
                    pending += [(ck, pk), (cv, pv)]


def big_manifest(texts: int, size: int) -> str:
    para = (
        "The north wind and the sun were disputing which was the stronger, when a traveller "
        "came along wrapped in a warm cloak.\t北风和太阳正在争论谁更有力量。😀\n"
    )
    body = (para * (size // len(para) + 1))[:size]
    lines = ["version: 1", "voices:", "  narrator: {provider: local, language: auto}", "texts:"]
    for i in range(texts):
        lines += [f"  - id: ch{i:03d}", f"    title: Chapter {i} — 第{i}章", "    text: |"]
        lines += ["      " + line for line in body.splitlines()]
        lines += [f"  - id: q{i:03d}", f'    text: "{body[:200]}"']
    return "\n".join(lines) + "\n"


def test_a_large_manifest_takes_the_fast_path_and_parses_the_same() -> None:
    text = big_manifest(texts=10, size=14_000)
    assert_same(text, fast=True)


def test_without_libyaml_the_python_loader_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_c_loader(*args: object) -> None:
        raise AssertionError("the C loader must not be used")

    text = read(REPO / "examples/demo/book.yaml")
    expected = parse_yaml(text, "m.yaml", _pure=True)
    monkeypatch.setattr(yaml, "__with_libyaml__", False)
    monkeypatch.setattr(yamlpos, "_parse_fast", no_c_loader)
    assert parse_yaml(text, "m.yaml") == expected


def test_the_pure_path_does_not_touch_libyaml(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_c_loader(*args: object) -> None:
        raise AssertionError("the C loader must not be used")

    monkeypatch.setattr(yamlpos, "_parse_fast", no_c_loader)
    root, problems = parse_yaml("a: 1\n", "m.yaml", _pure=True)
    assert root is not None
    assert (root.value, problems) == ({"a": Node(1, 1, 4)}, [])


ALPHABET = [
    *":?#!&*-,[]{}\"'\t |>%@`~\\\n",
    "\r\n",
    "中",
    "😀",
    "\ufeff",
    "\u2028",
    ": ",
    "- ",
    " #",
    "? ",
    "---",
    "<<: ",
    "*a",
    "&a ",
    "!!str ",
    "!",
    "\n  ",
    "\n- ",
    "{a: 1}",
    "[a, b]",
    "|\n  x",
    "2001-12-14",
]


def test_mutated_documents_parse_the_same_wherever_libyaml_is_trusted() -> None:
    rnd = random.Random(20240611)
    seeds = [read(p) for p in CORPUS if p.stat().st_size < 3000] + [c[1] for c in CRAFTED]
    kept = 0
    for _ in range(1500):
        text = rnd.choice(seeds)
        for _ in range(rnd.randint(1, 3)):
            at = rnd.randint(0, len(text))
            cut = rnd.choice([0, 0, 1, 2])
            text = text[:at] + rnd.choice(ALPHABET) + text[at + cut :]
        quick = fast_only(text)
        if quick is None:
            continue
        kept += 1
        root, problems = quick
        pure_root, pure_problems = parse_yaml(text, "m.yaml", _pure=True)
        assert (shape(root), problems) == (shape(pure_root), pure_problems), repr(text)
    assert kept > 300
