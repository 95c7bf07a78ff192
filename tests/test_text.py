"""The chunker: invariants as properties (hypothesis), the cut rule as tables of exact outputs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
import unicodedata
from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runner import text
from runner.text import CHUNKER_VERSION, Chunk, chunk_text, normalise, split_paragraphs

TAG = re.compile(r"<\|speaker:[0-9]+\|>")


def squash(source: str) -> str:
    """What must survive chunking: the NFC text without whitespace and speaker tags."""
    return re.sub(r"\s+", "", TAG.sub("", unicodedata.normalize("NFC", source)))


def texts(chunks: list[Chunk]) -> list[str]:
    return [chunk.text for chunk in chunks]


def attributed(source: str) -> list[tuple[str | None, str]]:
    """Each visible character with the speaker tag in force where it stands."""
    speaker: str | None = None
    out: list[tuple[str | None, str]] = []
    for part in re.split(f"({TAG.pattern})", unicodedata.normalize("NFC", source)):
        if TAG.fullmatch(part):
            speaker = part
        else:
            out.extend((speaker, char) for char in part if not char.isspace())
    return out


# -- strategies ---------------------------------------------------------------------------------

WORDS = st.sampled_from(["the", "Quick", "fox", "jumps", "over", "lazy", "dog", "Tolkien", "x"])
CJK = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=30)
KANA = st.sampled_from(["ひらがな", "カタカナ", "ラーメン"])
PUNCTUATION = st.sampled_from(
    [*"。！？!?.…；;，,、：:「『（(《》【】'\"“”", "...", "……", "?!", "!?", "。」", '."', "！”"]
)
NUMBERS = st.sampled_from(["3.14", "1,000", "2,500.75", "10:30", "42", "0.5"])
ABBREVIATED = st.sampled_from(
    [
        *["Dr.", "Mr.", "Mrs.", "Ms.", "St.", "e.g.", "i.e.", "etc.", "U.S.", "a.m.", "p.m."],
        *["vs.", "No. 5", "J. R. R. Tolkien"],
    ]
)
SPACES = st.sampled_from(
    [" ", " ", " ", "  ", "\t", "\n", "\n\n", " \n \t\n ", "\u3000", "\r\n\r\n"]
)
LONG_WORDS = st.text("abcdefghijklmnopqrstuvwxyz", min_size=17, max_size=90)
URLS = st.just("https://example.com/a/very/long/path/to/some/page?query=1&other=2.5")
SPEAKER_TAGS = st.integers(0, 120).map(lambda n: f"<|speaker:{n}|>")
PLAIN_TOKENS = [WORDS, WORDS, SPACES, SPACES, SPACES, CJK, KANA, PUNCTUATION, PUNCTUATION]
PLAIN_TOKENS += [NUMBERS, ABBREVIATED, LONG_WORDS, URLS]

prose = st.lists(st.one_of(*PLAIN_TOKENS), max_size=80).map("".join)
dialogue = st.lists(st.one_of(*PLAIN_TOKENS, SPEAKER_TAGS), max_size=80).map("".join)


#: Speed has its own test; a per-example deadline would only make busy CI machines flaky.
PROPERTY = settings(max_examples=200, deadline=None)


@st.composite
def limits(draw: st.DrawFn) -> tuple[int, int]:
    max_chars = draw(st.integers(16, 120))
    return max_chars, draw(st.integers(0, max_chars // 2))


# -- properties ---------------------------------------------------------------------------------


def check_invariants(source: str, max_chars: int, min_chars: int) -> list[Chunk]:
    chunks = chunk_text(source, max_chars, min_chars)
    for chunk in chunks:
        assert chunk.text, chunk
        assert len(chunk.text) <= max_chars, chunk
        assert chunk.text == normalise(chunk.text), chunk
        assert not re.search(rf"{TAG.pattern}\Z", chunk.text), chunk
    # Nothing lost, nothing added, order kept, per paragraph and as a whole.
    assert "".join(squash(chunk.text) for chunk in chunks) == squash(source)
    indices = [chunk.paragraph for chunk in chunks]
    assert indices == sorted(indices)
    for index, paragraph in enumerate(split_paragraphs(source)):
        own = "".join(squash(chunk.text) for chunk in chunks if chunk.paragraph == index)
        assert own == squash(paragraph), index
    # Every chunk is self-contained: read alone, each character has the speaker it had.
    assert [pair for chunk in chunks for pair in attributed(chunk.text)] == attributed(source)
    assert chunk_text(source, max_chars, min_chars) == chunks  # deterministic
    return chunks


@PROPERTY
@given(prose, limits())
def test_prose_invariants(source: str, limit: tuple[int, int]) -> None:
    check_invariants(source, *limit)


@PROPERTY
@given(dialogue, limits())
def test_dialogue_invariants(source: str, limit: tuple[int, int]) -> None:
    check_invariants(source, *limit)


@PROPERTY
@given(SPEAKER_TAGS, dialogue, limits())
def test_dialogue_chunks_start_with_a_tag(tag: str, rest: str, limit: tuple[int, int]) -> None:
    chunks = check_invariants(tag + rest, *limit)
    assert all(TAG.match(chunk.text) for chunk in chunks)


@PROPERTY
@given(st.text(max_size=300), limits())
def test_any_unicode_keeps_the_limits(source: str, limit: tuple[int, int]) -> None:
    max_chars, min_chars = limit
    chunks = chunk_text(source, max_chars, min_chars)
    assert all(0 < len(chunk.text) <= max_chars for chunk in chunks)
    # A hard cut may separate a letter from its accents, and NFC composes them only in the
    # whole text: compare canonical decompositions instead.
    joined = "".join(squash(chunk.text) for chunk in chunks)
    assert unicodedata.normalize("NFD", joined) == unicodedata.normalize("NFD", squash(source))


# Atoms the chunker must never cut inside; each is followed by a free space, so no hard cut is
# ever needed at these limits and any cut inside an atom is a real bug.
ATOMS = ["3.14", "1,000", "2,500.75", "10:30", "Dr. Watson", "Mr. Holmes", "Mrs. Hudson"]
ATOMS += ["Ms. Adler", "St. Paul", "U.S.", "a.m.", "p.m.", "e.g.", "i.e.", "vs. Jones"]
ATOMS += ["No. 5", "J. R. R. Tolkien", "wait...", "well……", "really?!", "“好。”"]
FILLERS = st.sampled_from(["tea", "then", "Then", "rain", "雨", "the end"])
SEPARATORS = st.sampled_from([" ", ". ", ", ", "! ", "。", "; ", "\n\n", "，"])


@PROPERTY
@given(
    st.lists(st.tuples(st.sampled_from(ATOMS), FILLERS, SEPARATORS), max_size=40),
    st.integers(40, 120),
)
def test_no_cut_inside_numbers_abbreviations_or_ellipses(
    pieces: list[tuple[str, str, str]], max_chars: int
) -> None:
    spans, offset, parts = [], 0, []
    for atom, filler, separator in pieces:
        part = f"{atom} {filler}{separator}"
        spans.append((offset, offset + len(squash(atom))))
        offset += len(squash(part))
        parts.append(part)
    chunks = chunk_text("".join(parts), max_chars, min_chars=0)
    cuts, position = set(), 0
    for chunk in chunks:
        position += len(squash(chunk.text))
        cuts.add(position)
    for start, end in spans:
        assert not any(start < cut < end for cut in cuts), (start, end, texts(chunks))


SENTENCE_WORDS = st.lists(st.sampled_from(["cat", "dog", "sat", "on", "mat", "ran"]), max_size=2)


@PROPERTY
@given(st.lists(SENTENCE_WORDS.map(lambda w: " ".join(["The", *w]) + "."), min_size=1), limits())
def test_sentences_are_packed_greedily(sentences: list[str], limit: tuple[int, int]) -> None:
    max_chars, _ = limit
    chunks = texts(chunk_text(" ".join(sentences), max_chars, min_chars=0))
    assert all(chunk.endswith(".") for chunk in chunks)  # every cut at a sentence end
    for current, following in pairwise(chunks):
        first_sentence = following[: following.index(".") + 1]
        assert len(current) + 1 + len(first_sentence) > max_chars, (current, following)


# -- the cut rule, case by case ------------------------------------------------------------------

URL = "https://example.com/" + "a" * 36 + "/" + "b" * 22


@pytest.mark.parametrize(
    ("source", "max_chars", "expected"),
    [
        pytest.param(
            "他说：「你好。」然后走了！今天天气很好？是的。我们去公园吧，好不好。",
            16,
            ["他说：「你好。」然后走了！", "今天天气很好？是的。", "我们去公园吧，好不好。"],
            id="chinese-latest-sentence-end",
        ),
        pytest.param(
            "他说：「你好。」然后走了很远很远的路！",
            16,
            ["他说：「你好。」", "然后走了很远很远的路！"],
            id="chinese-closing-quote",
        ),
        pytest.param(
            "“走吧！”他说。“好的……”我答道，然后我们就出发了。",
            16,
            ["“走吧！”他说。“好的……”", "我答道，然后我们就出发了。"],
            id="chinese-ellipsis",
        ),
        pytest.param(
            "He met Dr. Watson and Mr. Holmes at the station. They talked.",
            30,
            ["He met Dr. Watson and", "Mr. Holmes at the station.", "They talked."],
            id="english-titles",
        ),
        pytest.param(
            "Bring fruit, e.g. apples or pears. Then go home.",
            24,
            ["Bring fruit,", "e.g. apples or pears.", "Then go home."],
            id="english-eg",
        ),
        pytest.param(
            "Apples, pears, etc. Then we left.",
            24,
            ["Apples, pears, etc.", "Then we left."],
            id="english-etc-ends-a-sentence",
        ),
        pytest.param(
            "We had apples, pears, etc. and more fruit than we could eat.",
            30,
            ["We had apples, pears,", "etc. and more fruit than we", "could eat."],
            id="english-etc-mid-sentence",
        ),
        pytest.param(
            "We landed in the U.S. Army base today.",
            30,
            ["We landed in the U.S. Army", "base today."],
            id="english-dotted-abbreviation",
        ),
        pytest.param(
            "Meet me at 10:30 a.m. sharp", 20, ["Meet me at", "10:30 a.m. sharp"], id="english-time"
        ),
        pytest.param(
            "I liked chapter No. 5 a lot",
            20,
            ["I liked chapter", "No. 5 a lot"],
            id="english-number",
        ),
        pytest.param(
            "会议时间是下午10：30大家都要准时到场不要迟到",
            16,
            ["会议时间是下午10：30大家都要", "准时到场不要迟到"],
            id="fullwidth-colon-in-a-time",
        ),
        pytest.param(
            "The value of pi is about 3.14159 and a grand is 1,000 dollars.",
            34,
            ["The value of pi is about 3.14159", "and a grand is 1,000 dollars."],
            id="english-decimal",
        ),
        pytest.param(
            "Count to 1,000 and then to 2,500.75 or so",
            16,
            ["Count to 1,000", "and then to", "2,500.75 or so"],
            id="english-thousands",
        ),
        pytest.param(
            "Wait... what? We meet at 10:30 a.m. Tomorrow is fine.",
            22,
            ["Wait... what?", "We meet at 10:30 a.m.", "Tomorrow is fine."],
            id="english-ellipsis-time",
        ),
        pytest.param(
            "We read J. R. R. Tolkien and No. 5 of the U.S. list. It was long.",
            36,
            ["We read J. R. R. Tolkien and No. 5", "of the U.S. list. It was long."],
            id="english-initials",
        ),
        pytest.param(
            "我喜欢Python。It is great! 但是有时候很慢，对吧？OK, fine.",
            20,
            ["我喜欢Python。", "It is great!", "但是有时候很慢，对吧？OK, fine."],
            id="mixed",
        ),
        pytest.param(
            "This sentence is long, it has several clauses; and it goes on: without any end",
            40,
            [
                "This sentence is long,",
                "it has several clauses; and it goes on:",
                "without any end",
            ],
            id="clause-marks",
        ),
        pytest.param(
            "这句话很长很长，没有任何句号；只能在逗号处切开，对吧",
            16,
            ["这句话很长很长，没有任何句号；", "只能在逗号处切开，对吧"],
            id="chinese-clause-marks",
        ),
        pytest.param(
            "one two three four five six seven eight nine ten",
            20,
            ["one two three four", "five six seven eight", "nine ten"],
            id="whitespace",
        ),
        pytest.param(
            f"see {URL} ok", 30, ["see", URL[:30], URL[30:60], URL[60:] + " ok"], id="hard-cut-url"
        ),
        pytest.param(
            "一二三四五六七八九十" * 4,
            16,
            [
                "一二三四五六七八九十一二三四五六",
                "七八九十一二三四五六七八九十一二",
                "三四五六七八九十",
            ],
            id="hard-cut-cjk-run",
        ),
        pytest.param(
            "中文中文中文中文中文Englishwords",
            16,
            ["中文中文中文中文中文", "Englishwords"],
            id="cjk-latin-gap",
        ),
        pytest.param(
            "aaaa bbbbbbbbbbbbbbbb", 16, ["aaaa", "bbbbbbbbbbbbbbbb"], id="word-that-fits-is-whole"
        ),
        pytest.param(
            "a bbbbbbbbbbbbbbbbbbbb c", 16, ["a", "bbbbbbbbbbbbbbbb", "bbbb c"], id="word-too-long"
        ),
        pytest.param("e\u0301" * 8 + " ok", 16, ["é" * 8 + " ok"], id="nfc-before-measuring"),
    ],
)
def test_cut_rule(source: str, max_chars: int, expected: list[str]) -> None:
    assert texts(chunk_text(source, max_chars, min_chars=0)) == expected


def test_hard_cut_keeps_a_letter_with_its_accents() -> None:
    source = "a" * 14 + "q\u0301\u0302" + "a" * 10  # q has no precomposed form: 3 code points
    chunks = texts(chunk_text(source, 16, min_chars=0))
    assert chunks == ["a" * 14, "q\u0301\u0302" + "a" * 10]


def test_hard_cut_never_splits_a_tag() -> None:
    # Backing off a run of combining marks must stop at the tag, not cut into it.
    source = "<|speaker:1|>" + "\u0301" * 9 + "abc"
    chunks = texts(chunk_text(source, 16, min_chars=0))
    assert chunks == ["<|speaker:1|>" + "\u0301" * 3] * 3 + ["<|speaker:1|>abc"]


@pytest.mark.parametrize(
    ("min_chars", "expected"),
    [
        (0, ["Hi there.", "Ok,", "and then a very long clause", "follows without end"]),
        (5, ["Hi there. Ok,", "and then a very long clause", "follows without end"]),
    ],
)
def test_short_chunk_merges_into_previous(min_chars: int, expected: list[str]) -> None:
    source = "Hi there. Ok, and then a very long clause follows without end"
    assert texts(chunk_text(source, 30, min_chars)) == expected


@pytest.mark.parametrize(
    ("min_chars", "expected"),
    [
        (0, ["Hi.", "Long sentence,", "continuing on and", "on."]),
        # "Hi." has no previous chunk: it joins the next. "on." fits with neither: it stays.
        (5, ["Hi. Long sentence,", "continuing on and", "on."]),
    ],
)
def test_short_chunk_merges_into_next(min_chars: int, expected: list[str]) -> None:
    source = "Hi. Long sentence, continuing on and on."
    assert texts(chunk_text(source, 20, min_chars)) == expected


def test_merging_stays_within_a_paragraph() -> None:
    assert chunk_text("Hi.\n\nYo.", 100, min_chars=20) == [Chunk("Hi.", 0), Chunk("Yo.", 1)]


def test_paragraphs() -> None:
    source = "  First one.\n\nSecond one,\nstill the second.\n \t\n\n\nThird.\r\n\r\nFourth."
    assert chunk_text(source, 100, min_chars=0) == [
        Chunk("First one.", 0),
        Chunk("Second one, still the second.", 1),
        Chunk("Third.", 2),
        Chunk("Fourth.", 3),
    ]


def test_split_paragraphs() -> None:
    source = "\n\n  a\nb \n\t\n\r\n c\r\n\r\nd\r\re\n\u3000\nf  "
    assert split_paragraphs(source) == ["a\nb", "c", "d", "e", "f"]
    assert split_paragraphs(" \n\n\t ") == []


def test_normalise() -> None:
    assert normalise("  a\t\n b\u3000\u3000c  ") == "a b c"
    assert normalise("Cafe\u0301") == "Café"
    assert len(normalise("Cafe\u0301")) == 4


@pytest.mark.parametrize("source", ["", "   ", "\n\n\t\n", "<|speaker:1|>", "<|speaker:1|>\n\n "])
def test_nothing_to_say_gives_no_chunks(source: str) -> None:
    assert chunk_text(source, 100) == []


@pytest.mark.parametrize(
    ("source", "max_chars", "expected"),
    [
        pytest.param(
            "<|speaker:0|>Hello there, my friend. How are you today?"
            "<|speaker:1|>I am fine, thanks for asking. And you?",
            40,
            [
                "<|speaker:0|>Hello there, my friend.",
                "<|speaker:0|>How are you today?",
                "<|speaker:1|>I am fine,",
                "<|speaker:1|>thanks for asking. And you?",
            ],
            id="carry-over",
        ),
        pytest.param(
            "<|speaker:0|>你好<|speaker:1|>谢谢你",
            16,
            ["<|speaker:0|>你好", "<|speaker:1|>谢谢你"],
            id="turn-is-a-cut",
        ),
        pytest.param(
            "<|speaker:0|>Hello, world <|speaker:1|>Yes, indeed",
            30,
            ["<|speaker:0|>Hello, world", "<|speaker:1|>Yes, indeed"],
            id="cut-before-tag",
        ),
        pytest.param(
            "<|speaker:100|> the",
            16,
            ["<|speaker:100|>t", "<|speaker:100|>h", "<|speaker:100|>e"],
            id="never-a-tag-alone",
        ),
        pytest.param(
            "Before any tag. <|speaker:7|>After it.",
            16,
            ["Before any tag.", "<|speaker:7|>Aft", "<|speaker:7|>er", "<|speaker:7|>it."],
            id="tag-counts-toward-max",
        ),
    ],
)
def test_speaker_tags(source: str, max_chars: int, expected: list[str]) -> None:
    assert texts(chunk_text(source, max_chars, min_chars=0)) == expected


def test_speaker_carries_across_paragraphs_and_empty_tags() -> None:
    source = (
        "<|speaker:2|>First.\n\nSecond.\n\n<|speaker:3|>\n\n"
        "Third. <|speaker:4|><|speaker:5|>Fourth."  # speaker 4 says nothing
    )
    assert chunk_text(source, 100, min_chars=0) == [
        Chunk("<|speaker:2|>First.", 0),
        Chunk("<|speaker:2|>Second.", 1),
        Chunk("<|speaker:3|>Third. <|speaker:5|>Fourth.", 3),
    ]


@pytest.mark.parametrize(
    ("max_chars", "min_chars", "source"),
    [(15, 0, "x"), (16, -1, "x"), (40, 21, "x"), (16, 0, "<|speaker:1000|>x")],
)
def test_rejects_limits_that_cannot_work(max_chars: int, min_chars: int, source: str) -> None:
    with pytest.raises(ValueError, match=r"max_chars|min_chars"):
        chunk_text(source, max_chars, min_chars)


def test_limits_at_the_edges_are_accepted() -> None:
    assert texts(chunk_text("Hi.", 16, 8)) == ["Hi."]
    assert texts(chunk_text("<|speaker:100|>x", 16, 0)) == ["<|speaker:100|>x"]


def test_public_api() -> None:
    assert set(text.__all__) == {
        "ABBREVIATIONS",
        "CHUNKER_VERSION",
        "Chunk",
        "chunk_text",
        "normalise",
        "split_paragraphs",
    }
    assert isinstance(CHUNKER_VERSION, int)
    with pytest.raises(dataclasses.FrozenInstanceError):
        Chunk("a", 0).text = "b"  # type: ignore[misc]


PROSE = (
    "Dr. Smith met J. R. R. Tolkien at 10:30 a.m. in the U.S. They paid 1,000 dollars, e.g. "
    "for 3.14 kg of tea... Really?! “我们走吧。”他说，然后离开了……今天天气很好；明天呢？ "
)
DIALOGUE = (
    "<|speaker:0|>Hello, how are you? <|speaker:1|>很好，谢谢！And you? "
    "See https://example.com/a/very/long/path/that/never/ends/at/all/ok for details. "
)
GOLDEN_SOURCE = f"{PROSE}\n\n{DIALOGUE}\n\n{'一二三四五六七八九十' * 12}"


def test_output_change_needs_a_version_bump() -> None:
    # Segment keys embed CHUNKER_VERSION, so one version must always mean the same chunks. If
    # this fails, chunk_text's output changed: bump CHUNKER_VERSION and record the new digest.
    golden = {1: "cd057cbf5ceb084b0b7d7f6a8c2b5c3a6d64630890c9ad31ff23d0aba2075a0d"}
    outputs = {
        str(max_chars): [[c.paragraph, c.text] for c in chunk_text(GOLDEN_SOURCE, max_chars, 8)]
        for max_chars in (16, 40, 100, 300)
    }
    digest = hashlib.sha256(json.dumps(outputs, ensure_ascii=False).encode()).hexdigest()
    assert digest == golden.get(CHUNKER_VERSION), "chunk_text output changed: bump CHUNKER_VERSION"


@pytest.mark.parametrize(
    "unit",
    [
        pytest.param(PROSE + DIALOGUE, id="one-long-paragraph"),
        pytest.param(GOLDEN_SOURCE + "\n\n", id="many-paragraphs"),
        pytest.param("中" * 1000, id="cjk-without-punctuation"),
        pytest.param("a" * 1000, id="latin-without-spaces"),
    ],
)
@pytest.mark.parametrize("max_chars", [300, 3000])
def test_half_a_megabyte_is_linear_enough(unit: str, max_chars: int) -> None:
    source = unit * (500_000 // len(unit) + 1)
    started = time.perf_counter()
    chunks = chunk_text(source, max_chars)
    assert time.perf_counter() - started < 10  # generous: real figures belong in benchmarks
    assert len(chunks) >= len(source) // max_chars


@settings(max_examples=25, deadline=None)
@given(limits())
def test_golden_text_invariants(limit: tuple[int, int]) -> None:
    check_invariants(GOLDEN_SOURCE, *limit)
