"""A transcript as values, and what is made from it: the JSON document, plain text and WebVTT captions.

Pure, so the caption rules are tested without a model. The cue rules follow common timed-text practice
(the BBC's and Netflix's subtitle guidelines): at most two lines of at most 42 characters, each cue on
screen for 1 to 7 seconds, a new cue after a sentence or a pause in the speech, and an overlong cue cut
after a clause (a comma, a semicolon) rather than mid-phrase where the text allows it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

MAX_LINE = 42
MAX_LINES = 2
MIN_CUE_SECONDS = 1.0
MAX_CUE_SECONDS = 7.0
# A pause at least this long starts a new cue: the caption should not hang over silence.
PAUSE_SECONDS = 0.6
_SENTENCE_END = re.compile(r"[.?!…]['\")\]]*$")
_CLAUSE_END = re.compile(r"[,;:—–-]['\")\]]*$")
_TOKEN = re.compile(r"[^\W_]+")  # letters and digits: what both full-text tokenizers keep


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    text: str  # as the model wrote it: a leading space where a new word starts (" dog.", but "-fark")
    probability: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    language: str | None
    language_probability: float | None
    duration_seconds: float | None
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    model: str | None = None

    @property
    def words(self) -> list[Word]:
        return [word for segment in self.segments for word in segment.words]

    @property
    def text(self) -> str:
        return "\n".join(segment.text for segment in self.segments)

    @property
    def spoken_language(self) -> str | None:
        """The language, when a word was said."""
        return self.language if self.segments else None

    def to_document(self) -> dict[str, Any]:
        """The JSON output: every segment with its words (start, end, probability), in seconds."""
        return {
            "version": 1,
            "language": self.language,
            "languageProbability": _round(self.language_probability),
            "durationSeconds": _round(self.duration_seconds),
            "model": self.model,
            "segments": [
                {
                    "start": _round(segment.start),
                    "end": _round(segment.end),
                    "text": segment.text,
                    "words": [
                        {
                            "start": _round(w.start),
                            "end": _round(w.end),
                            "word": w.text,
                            "probability": _round(w.probability),
                        }
                        for w in segment.words
                    ],
                }
                for segment in self.segments
            ],
        }

    def search_index(self) -> list[dict[str, Any]]:
        """What the database keeps to place a search hit in time and quote it: each segment's words' starts."""
        return [
            {"start": _round(s.start), "text": s.text, "words": [[_round(w.start), w.text] for w in s.words]}
            for s in self.segments
        ]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    lines: tuple[str, ...]

    @classmethod
    def of(cls, words: Sequence[Word], limit: float | None) -> Cue:
        """The words on screen for 1 to 7 seconds from the first one's start, and not past `limit`."""
        start = words[0].start
        end = max(words[-1].end, start + MIN_CUE_SECONDS)
        if limit is not None:
            end = min(end, limit)
        return cls(start=start, end=min(end, start + MAX_CUE_SECONDS), lines=layout(_join(words)))


def build_cues(words: Sequence[Word], *, duration_seconds: float | None = None) -> list[Cue]:
    """Words → cues within the limits above. A single word longer than a line (a URL) gets a line of its own."""
    groups = _cue_words(words)
    # Each cue ends before the next one starts; the last, by the end of the audio when that is known.
    limits: list[float | None] = [group[0].start for group in groups[1:]]
    limits.append(max(duration_seconds, groups[-1][-1].end) if groups and duration_seconds else None)
    return [Cue.of(group, limit) for group, limit in zip(groups, limits, strict=False)]


def _cue_words(words: Sequence[Word]) -> list[list[Word]]:
    """The words in cues: a new cue where the words no longer fit, or after a sentence or before a pause."""
    groups: list[list[Word]] = []
    current: list[Word] = []
    for word, following in zip_longest(words, words[1:]):  # following: None for the last word
        if current and not _fits([*current, word]):
            keep, current = _split_at_clause(current)
            groups.append(keep)
        current.append(word)
        if following is not None and _ends_cue(current, following):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _join(words: Iterable[Word]) -> str:
    return "".join(word.text for word in words).strip()


def _fits(words: Sequence[Word]) -> bool:
    if words[-1].end - words[0].start > MAX_CUE_SECONDS:
        return False
    return len(words) == 1 or all(len(line) <= MAX_LINE for line in layout(_join(words)))


def _ends_cue(current: list[Word], following: Word) -> bool:
    """After a sentence or before a pause, if the cue can then stay up a second without meeting the next."""
    last = current[-1]
    if not (_SENTENCE_END.search(last.text) or following.start - last.end >= PAUSE_SECONDS):
        return False
    return following.start - current[0].start >= MIN_CUE_SECONDS


def _split_at_clause(words: list[Word]) -> tuple[list[Word], list[Word]]:
    """A full cue ends after its last clause boundary when that keeps a third of it or more; else where it is."""
    for cut in range(len(words) - 1, max(len(words) // 3, 1) - 1, -1):  # a cut before the first word is none
        if _CLAUSE_END.search(words[cut - 1].text) and words[cut - 1].end - words[0].start >= MIN_CUE_SECONDS:
            return words[:cut], words[cut:]
    return words, []


def layout(text: str) -> tuple[str, ...]:
    """One line when it fits, else two lines as even as possible, preferring a break after punctuation."""
    words = text.split(" ")
    if len(text) <= MAX_LINE or len(words) == 1:  # fits, or one overlong word
        return (text,)
    cut = min(range(1, len(words)), key=lambda cut: _break_score(words, cut))
    return (" ".join(words[:cut]), " ".join(words[cut:]))


def _break_score(words: list[str], cut: int) -> int:
    """How bad two lines broken before words[cut] are: an overlong line most, then uneven lengths; a break
    after punctuation scores better."""
    first, second = " ".join(words[:cut]), " ".join(words[cut:])
    overflow = max(0, len(first) - MAX_LINE) + max(0, len(second) - MAX_LINE)
    return overflow * 1000 + abs(len(first) - len(second)) - (6 if _CLAUSE_END.search(words[cut - 1]) else 0)


def webvtt(cues: Sequence[Cue]) -> str:
    """A WebVTT file, its times from the start of the audio. Its header maps cue time 0 to HLS media time 0;
    as the HLS SUBTITLES rendition's segment it is served with the map set to where the video starts
    (`with_timestamp_map`). Browsers ignore the line."""
    blocks = [f"WEBVTT\n{_timestamp_map(0.0)}"]
    for number, cue in enumerate(cues, start=1):
        text = "\n".join(_escape(line) for line in cue.lines)
        blocks.append(f"{number}\n{timestamp(cue.start)} --> {timestamp(cue.end)}\n{text}")
    return "\n\n".join(blocks) + "\n"


def with_timestamp_map(text: str, start_seconds: float) -> str:
    """The WebVTT with cue time 0 mapped to `start_seconds` of the HLS media: the X-TIMESTAMP-MAP header
    (RFC 8216 3.5; MPEGTS in 90 kHz units), which Safari needs to place a SUBTITLES rendition's cues."""
    header, _, rest = text.partition("\n\n")
    lines = [line for line in header.split("\n") if not line.startswith("X-TIMESTAMP-MAP=")]
    lines.insert(1, _timestamp_map(start_seconds))
    return "\n".join(lines) + ("\n\n" + rest if rest else "\n")


def _timestamp_map(start_seconds: float) -> str:
    return f"X-TIMESTAMP-MAP=MPEGTS:{max(0, round(start_seconds * 90000))},LOCAL:00:00:00.000"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def timestamp(seconds: float) -> str:
    millis = max(0, round(seconds * 1000))
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    return f"{hours:02d}:{minutes:02d}:{rest // 1000:02d}.{rest % 1000:03d}"


def tokens(text: str) -> list[str]:
    """Lower-case words as full-text search sees them (PostgreSQL's `simple` configuration, FTS5's unicode61)."""
    return [token.lower() for token in _TOKEN.findall(text)]


def phrase_time(index: Sequence[dict[str, Any]], phrase: str, *, context: int = 5) -> tuple[float, str] | None:
    """Where a phrase is first said, from `Transcript.search_index()`: the start of its first word, and the
    words around it (`context` either side, "…" where cut). None when its words are not said in that order
    (a match on the name alone)."""
    wanted = tokens(phrase)
    if not wanted:
        return None
    words = _index_words(index)
    said = [(token, position) for position, (_, text) in enumerate(words) for token in tokens(text)]
    at = _find_run([token for token, _ in said], wanted)
    if at is None:
        return None
    first, last = said[at][1], said[at + len(wanted) - 1][1]
    return words[first][0], _quote([text for _, text in words], first, last, context)


def _index_words(index: Sequence[dict[str, Any]]) -> list[tuple[float, str]]:
    """Every word of a search index with its start, in order."""
    return [(float(start), str(text)) for segment in index for start, text in segment.get("words") or []]


def _find_run(items: list[str], wanted: list[str]) -> int | None:
    """Where `wanted` first occurs in `items` as a run, if it does."""
    for at in range(len(items) - len(wanted) + 1):
        if items[at : at + len(wanted)] == wanted:
            return at
    return None


def _quote(texts: list[str], first: int, last: int, context: int) -> str:
    """Words `first` to `last` with `context` words either side, "…" where that cuts the text."""
    low, high = max(0, first - context), min(len(texts), last + 1 + context)
    snippet = "".join(texts[low:high]).strip()
    return ("… " if low else "") + snippet + (" …" if high < len(texts) else "")
