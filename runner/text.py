"""Split long texts into chunks a TTS provider accepts, cutting where a reader would pause.

How a paragraph is cut (this is the chunker's contract; bump CHUNKER_VERSION if it changes):

The text is split into paragraphs at blank lines and each paragraph is normalised (NFC, one
space for any run of whitespace), so every length below is the length of what will be sent.
Cutting walks a paragraph left to right. At a chunk start, the *window* is the next `budget`
characters, where budget is max_chars minus the speaker tag the chunk must carry (if any).
If the rest of the paragraph fits in the window, it is the last chunk. Otherwise the chunk ends
at the LATEST boundary of the BEST rank that lies inside the window:

  0. sentence end: a run of 。！？!?.… (so `?!`, `...`, `……` stay whole) plus the closing
     quotes or brackets right after it; also the point just before a `<|speaker:N|>` tag,
     since a change of speaker ends an utterance;
  1. clause mark: a run of ；;，,、：: plus closers;
  2. a space;
  3. a gap between two letters or digits, one of them CJK (CJK writes no spaces between words);
  4. hard cut at the end of the window, moved off a speaker tag and off combining marks.

So a sentence end anywhere in the window beats a clause mark at its very end, and a Latin word
is cut (rank 4) only when it alone overflows the window. Marks other than the fullwidth ones
(ASCII . , ; : ! ? and …) count only when followed by a space, a CJK character or a tag, or
when they follow a CJK character; a mark between two digits never counts: 3.14, 1,000, 10:30
and example.com are never cut. A period is not a sentence end after an abbreviation (`Dr.`,
`e.g.`, `U.S.`, `a.m.`, initials: see ABBREVIATIONS), nor before a word that starts with a
lowercase letter or a digit (`etc. and`, `No. 5`); after a title, an initial or before a number
the space is not cut either, nor the one in `10:30 a.m.`, except at rank 4.

Speaker tags: a chunk that starts inside speaker N's turn is prefixed with N's tag (counted in
max_chars; text before the first tag gets none); no cut falls inside a tag or right after it.
A space after a tag is dropped, and so is a tag that introduces no text (followed by another
tag or the paragraph end), though it still sets the speaker for what follows.

Finally a chunk shorter than min_chars (tag prefix not counted) is merged into the previous
chunk of its paragraph, else into the next one, when the union fits.

Ranks 0 and 1 are found once per paragraph (regex passes, sorted lists, a bisect per chunk);
ranks 2-4 are searched backwards from the window's end only when needed, so the work is linear
in the text. The sentence rules are a small, predictable subset of Unicode UAX #29.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left, bisect_right
from dataclasses import dataclass

__all__ = [
    "ABBREVIATIONS",
    "CHUNKER_VERSION",
    "Chunk",
    "chunk_text",
    "normalise",
    "split_paragraphs",
]

#: Goes into segment keys: bump it whenever chunk_text could return different chunks.
CHUNKER_VERSION = 1

#: Abbreviations whose period never ends a sentence and which stay with the word after them
#: (`Dr. Watson`, `Smith vs. Jones`, `e.g. tea`). Compared case-insensitively, without the final
#: period. Other periods that do not end a sentence are recognised by shape, not listed:
#: - dotted forms, each part one or two letters (U.S., a.m., p.m., Ph.D., U.S.A.): not an end,
#:   but the space after them may be cut (`at 10 a.m.` often ends a sentence);
#: - single capital initials (J. R. R. Tolkien): not an end, the space after is not cut;
#: - any period before a number (`No. 5`, `Fig. 3`): not an end, the space is not cut;
#: - any period before a lowercase word (`etc. and`, `approx. five`): not an end.
#: So `etc.` and `No.` end a sentence only when a capitalised word follows.
ABBREVIATIONS = frozenset(
    {"Mr", "Mrs", "Ms", "Dr", "Prof", "St", "Mt", "Rev", "Gen", "Col", "Capt", "Lt", "Sgt"}
    | {"vs", "cf", "e.g", "i.e"}
)
_ABBREVIATIONS_LOWER = frozenset(word.lower() for word in ABBREVIATIONS)

#: Smallest accepted max_chars: a speaker tag plus some text must fit in one chunk.
MIN_MAX_CHARS = 16


@dataclass(frozen=True)
class Chunk:
    """One provider request's worth of text."""

    #: Normalised chunk text, with the speaker tag prefixed where the text has tags.
    text: str
    #: 0-based index, within `split_paragraphs(text)`, of the paragraph the chunk comes from.
    paragraph: int


_CJK_CLASS = (
    "\u3005\u3007\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
    "\uff66-\uff9f\U00020000-\U0003134f"
)
_CJK = re.compile(f"[{_CJK_CLASS}]")
_CJK_MARKS = frozenset("。！？｡；，、：")
# Closing quotes and brackets; a straight quote closes only when no letter or digit follows it.
_CLOSERS = r"""(?:[”’」』）)】》〉〕〗\]}»›]|["'](?![^\W_]))*"""
_SENTENCE_RUN = re.compile(r"([。！？｡!?.…‼⁇⁈⁉]+)" + _CLOSERS)
_CLAUSE_RUN = re.compile(r"([；;，,、：:]+)" + _CLOSERS)
_TAG = re.compile(r"<\|speaker:[0-9]+\|>")
_EMPTY_TAGS = re.compile(r"(?:<\|speaker:[0-9]+\|> ?)+(?=<\|speaker:[0-9]+\|>|\Z)")
_SPACE_AFTER_TAG = re.compile(r"(<\|speaker:[0-9]+\|>) ")
_BLANK_LINE = re.compile(r"(?:\r\n?|\n)[^\S\r\n]*(?:\r\n?|\n)")
_WHITESPACE = re.compile(r"\s+")
# The word before a period: letters, maybe dotted (e.g, U.S), not glued to a digit or letter.
_WORD_BEFORE = re.compile(r"(?<![0-9A-Za-z.])[A-Za-z]+(?:\.[A-Za-z]+)*\Z")
_TIME_SPACE = re.compile(r"(?<=[0-9]) (?=[AaPp]\.[Mm]\.)")  # `10:30 a.m.` stays together


def split_paragraphs(text: str) -> list[str]:
    """Split at blank lines (empty or whitespace-only lines); return the paragraphs, stripped."""
    return [p.strip() for p in _BLANK_LINE.split(text) if p.strip()]


def normalise(text: str) -> str:
    """NFC, every whitespace run collapsed to one space, ends stripped."""
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", text)).strip()


def chunk_text(text: str, max_chars: int, min_chars: int = 20) -> list[Chunk]:
    """Split `text` into chunks of at most `max_chars` characters; see the module docstring.

    Raises ValueError if max_chars < MIN_MAX_CHARS, if min_chars is not within
    0..max_chars // 2, or if a speaker tag in the text leaves no room for text in max_chars.
    """
    if max_chars < MIN_MAX_CHARS:
        raise ValueError(f"max_chars={max_chars} is too small: use at least {MIN_MAX_CHARS}")
    if not 0 <= min_chars <= max_chars // 2:
        raise ValueError(
            f"min_chars={min_chars} must be between 0 and max_chars // 2 = {max_chars // 2}"
        )
    chunks: list[Chunk] = []
    speaker = ""  # the tag in force where the paragraph starts ("" before the first tag)
    for index, raw in enumerate(split_paragraphs(text)):
        paragraph = _Paragraph(normalise(raw), speaker, max_chars)
        spans = _merge_short(paragraph, _cut(paragraph, max_chars), max_chars, min_chars)
        for start, end in spans:
            body = paragraph.text[start:end].rstrip()
            chunks.append(Chunk(normalise(paragraph.prefix_at(start) + body), index))
        speaker = paragraph.speaker_after
    return chunks


def _cut(paragraph: _Paragraph, max_chars: int) -> list[tuple[int, int]]:
    text = paragraph.text
    spans: list[tuple[int, int]] = []
    start = 0
    while start < len(text):
        limit = start + max_chars - len(paragraph.prefix_at(start))
        end = len(text) if len(text) <= limit else paragraph.best_cut(start, limit)
        spans.append((start, end))
        start = end + 1 if text[end : end + 1] == " " else end
    return spans


def _merge_short(
    paragraph: _Paragraph, spans: list[tuple[int, int]], max_chars: int, min_chars: int
) -> list[tuple[int, int]]:
    # One pass: a short chunk joins its predecessor if the union fits; if it does not, the
    # short chunk stays last in `merged` and the next chunk is offered to it instead.
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged:
            prev_start, prev_end = merged[-1]
            short = end - start < min_chars or prev_end - prev_start < min_chars
            fits = len(paragraph.prefix_at(prev_start)) + end - prev_start <= max_chars
            if short and fits:
                merged[-1] = (prev_start, end)
                continue
        merged.append((start, end))
    return merged


class _Paragraph:
    """A normalised paragraph with its boundaries of rank 0 and 1 and its speaker tags."""

    def __init__(self, text: str, speaker: str, max_chars: int) -> None:
        tags = _TAG.findall(text)
        self.speaker_after = tags[-1] if tags else speaker
        for tag in tags:
            if len(tag) >= max_chars:
                raise ValueError(
                    f"speaker tag {tag} leaves no room for text in max_chars={max_chars}"
                )
        if tags:  # a tag that introduces no text only moves the speaker; a tag hugs its text
            text = normalise(_SPACE_AFTER_TAG.sub(r"\1", _EMPTY_TAGS.sub("", text)))
        self.text = text
        self.speaker_before = speaker
        self.tags = [(m.start(), m.end()) for m in _TAG.finditer(text)]
        self.tag_starts = [start for start, _ in self.tags]
        # Spaces that must not be cut: `10:30 a.m.`, and (found with the sentence ends) `Dr. X`.
        self.glued = {m.start() for m in _TIME_SPACE.finditer(text)}
        self.sentence_ends = self._sentence_ends()
        self.clause_ends = self._mark_ends(_CLAUSE_RUN)

    def prefix_at(self, start: int) -> str:
        """The tag a chunk starting at `start` must carry ("" if it starts with one or has none)."""
        i = bisect_left(self.tag_starts, start)
        if i < len(self.tags) and self.tag_starts[i] == start:
            return ""
        if i == 0:
            return self.speaker_before
        tag_start, tag_end = self.tags[i - 1]
        return self.text[tag_start:tag_end]

    def best_cut(self, start: int, limit: int) -> int:
        """End of the chunk starting at `start`: latest boundary of the best rank in the window."""
        for ends in (self.sentence_ends, self.clause_ends):
            i = bisect_right(ends, limit) - 1
            if i >= 0 and ends[i] > start:
                return ends[i]
        return (
            self._space_cut(start, limit)
            or self._cjk_cut(start, limit)
            or self._hard_cut(start, limit)
        )

    def _sentence_ends(self) -> list[int]:
        ends = self._mark_ends(_SENTENCE_RUN)
        for tag_start in self.tag_starts:  # a change of speaker
            if tag_start > 0:
                ends.append(tag_start - 1 if self.text[tag_start - 1] == " " else tag_start)
        return sorted(set(ends))

    def _mark_ends(self, run: re.Pattern[str]) -> list[int]:
        return [
            m.end() for m in run.finditer(self.text) if self._is_boundary(m.start(), m.end(), m[1])
        ]

    def _is_boundary(self, start: int, end: int, marks: str) -> bool:
        text = self.text
        before, after = text[start - 1 : start], text[end : end + 1]
        if not after or (before.isdigit() and after.isdigit()):
            return False  # the paragraph end needs no boundary; 3.14, 1,000, 10:30
        cjk_style = _CJK.match(before) is not None or any(c in _CJK_MARKS for c in marks)
        if marks == "." and not cjk_style and not self._period_ends_sentence(start, end):
            return False
        return (
            cjk_style
            or after == " "
            or _CJK.match(after) is not None
            or _TAG.match(text, end) is not None
        )

    def _period_ends_sentence(self, dot: int, end: int) -> bool:
        text = self.text
        word = _WORD_BEFORE.search(text, max(0, dot - 32), dot)
        token = word[0] if word else ""
        following = text[end + 1 : end + 2] if text[end : end + 1] == " " else ""
        if token.lower() in _ABBREVIATIONS_LOWER or (len(token) == 1 and token.isupper()):
            self.glued.add(end)  # `Dr. Watson`, `J. R. R. Tolkien` stay together
            return False
        if following.isdigit():
            self.glued.add(end)  # `No. 5`
            return False
        if "." in token and all(len(part) <= 2 for part in token.split(".")):
            return False  # U.S., a.m., Ph.D.
        return not following.islower()  # `etc. and more` is mid-sentence

    def _in_tag(self, end: int) -> bool:
        """Whether a cut at `end` would split a tag or leave one at the end of a chunk."""
        i = bisect_left(self.tag_starts, end) - 1
        return i >= 0 and self.tags[i][0] < end <= self.tags[i][1]

    def _space_cut(self, start: int, limit: int) -> int | None:
        end = self.text.rfind(" ", start + 1, limit + 1)
        while end > start and end in self.glued:
            end = self.text.rfind(" ", start + 1, end)
        return end if end > start else None

    def _cjk_cut(self, start: int, limit: int) -> int | None:
        text = self.text
        for end in range(limit, start, -1):
            left, right = text[end - 1], text[end]
            if left.isalnum() and right.isalnum() and (_CJK.match(left) or _CJK.match(right)):
                return end
        return None

    def _hard_cut(self, start: int, limit: int) -> int:
        # No tag starts inside the window (its start would be a rank-0 boundary), so only a tag
        # at `start` can be in reach, when backing off a run of combining marks that follows it.
        for end in range(limit, max(start, limit - 8), -1):
            if not _is_mark(self.text[end]) and not self._in_tag(end):
                return end  # not between a letter and its accents
        return limit


def _is_mark(char: str) -> bool:
    return unicodedata.category(char)[0] == "M" or char == "\u200d"
