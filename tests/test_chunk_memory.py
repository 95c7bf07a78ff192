"""Texts already cut are remembered per manifest in the state directory: the plan is the same
with or without the memory, a changed text is cut again, a damaged memory is ignored."""

from __future__ import annotations

from pathlib import Path

import msgpack

from runner.chunk_memory import ChunkMemory
from runner.manifest import load_manifest
from runner.plan import Plan, expand


def _manifest(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "providers:\n  loc: {kind: local, limits: {max_chars: 40}}\n"
        "voices:\n  n: {provider: loc, language: auto}\n"
        f"defaults: {{voice: n}}\ntexts:\n  - {{id: a, text: {text!r}}}\n"
        "  - {id: b, text: 'Second text. It has two sentences, and then some more words.'}\n"
    )
    return path


def _shape(plan: Plan) -> list[tuple[str, list[str], list[str], tuple[int, ...]]]:
    return [
        (c.id, [s.key for s in c.segments], [s.text for s in c.segments], c.paragraphs)
        for c in plan.chapters
    ]


TEXT = (
    "First sentence here. Dr. Watson came at 10:30 a.m. today.\n\n第一句话很长很长。Then English."
)


def test_the_plan_is_the_same_with_or_without_the_memory(tmp_path: Path) -> None:
    book = _manifest(tmp_path / "book.yaml", TEXT)
    manifest = load_manifest(book)
    plain = _shape(expand(manifest))
    first = ChunkMemory(tmp_path / "state", book)
    assert _shape(expand(manifest, first)) == plain
    first.save()
    assert first.path.is_file()
    again = ChunkMemory(tmp_path / "state", book)
    assert _shape(expand(manifest, again)) == plain
    written = first.path.stat().st_mtime_ns
    again.save()  # nothing new: not written again
    assert first.path.stat().st_mtime_ns == written


def test_the_memory_is_read_and_keyed_by_the_text(tmp_path: Path) -> None:
    book = _manifest(tmp_path / "book.yaml", TEXT)
    memory = ChunkMemory(tmp_path / "state", book)
    expand(load_manifest(book), memory)
    memory.save()
    document = msgpack.unpackb(memory.path.read_bytes(), raw=False)
    assert len(document["texts"]) == 2
    # what the memory says is what the plan uses (so it is read, not recomputed)
    for key, pairs in document["texts"].items():
        if len(pairs) > 2:
            document["texts"][key] = [["Remembered chunk.", 0]]
    memory.path.write_bytes(msgpack.packb(document))
    plan = expand(load_manifest(book), ChunkMemory(tmp_path / "state", book))
    assert [s.text for s in plan.chapters[0].segments] == ["Remembered chunk."]
    # a changed text is cut afresh, and the old text's entry is dropped on saving
    _manifest(book, TEXT + " One more sentence at the end.")
    memory = ChunkMemory(tmp_path / "state", book)
    plan = expand(load_manifest(book), memory)
    assert plan.chapters[0].segments[-1].text.endswith("One more sentence at the end.")
    memory.save()
    assert len(msgpack.unpackb(memory.path.read_bytes(), raw=False)["texts"]) == 2


def test_a_damaged_memory_is_ignored_and_each_manifest_keeps_its_own(tmp_path: Path) -> None:
    book = _manifest(tmp_path / "book.yaml", TEXT)
    other = _manifest(tmp_path / "other.yaml", "Another book entirely. With its own words.")
    plain = _shape(expand(load_manifest(book)))
    memory = ChunkMemory(tmp_path / "state", book)
    expand(load_manifest(book), memory)
    memory.save()
    theirs = ChunkMemory(tmp_path / "state", other)
    expand(load_manifest(other), theirs)
    theirs.save()
    assert theirs.path != memory.path
    assert theirs.path.is_file()
    for damage in (b"\x00garbage", memory.path.read_bytes()[:-7], b""):
        memory.path.write_bytes(damage)
        assert _shape(expand(load_manifest(book), ChunkMemory(tmp_path / "state", book))) == plain
    # well-formed msgpack of the wrong shape under the texts' own keys: cut again too
    memory = ChunkMemory(tmp_path / "state", book)
    expand(load_manifest(book), memory)
    memory.save()
    document = msgpack.unpackb(memory.path.read_bytes(), raw=False)
    document["texts"] = {key: [[1, "x"]] for key in document["texts"]}
    memory.path.write_bytes(msgpack.packb(document))
    assert _shape(expand(load_manifest(book), ChunkMemory(tmp_path / "state", book))) == plain
