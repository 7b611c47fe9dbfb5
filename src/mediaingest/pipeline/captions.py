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


def build_cues(words: Sequence[Word], *, duration_seconds: float | None = None) -> list[Cue]:
    """Words → cues within the limits above. A single word longer than a line (a URL) gets a line of its own."""
    groups: list[list[Word]] = []
    current: list[Word] = []
    for index, word in enumerate(words):
        if current and not _fits([*current, word]):
            keep, carry = _split_at_clause(current)
            groups.append(keep)
            current = carry
        current.append(word)
        following = words[index + 1] if index + 1 < len(words) else None
        if following is not None and _ends_cue(current, following):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    cues: list[Cue] = []
    for position, group in enumerate(groups):
        start = group[0].start
        limit = groups[position + 1][0].start if position + 1 < len(groups) else None
        if limit is None and duration_seconds:
            limit = max(duration_seconds, group[-1].end)
        end = max(group[-1].end, start + MIN_CUE_SECONDS)
        if limit is not None:
            end = min(end, limit)
        cues.append(Cue(start=start, end=min(end, start + MAX_CUE_SECONDS), lines=layout(_join(group))))
    return cues


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
    for cut in range(len(words) - 1, len(words) // 3 - 1, -1):
        if (
            cut > 0
            and _CLAUSE_END.search(words[cut - 1].text)
            and words[cut - 1].end - words[0].start >= MIN_CUE_SECONDS
        ):
            return words[:cut], words[cut:]
    return words, []


def layout(text: str) -> tuple[str, ...]:
    """One line when it fits, else two lines as even as possible, preferring a break after punctuation."""
    if len(text) <= MAX_LINE:
        return (text,)
    words = text.split(" ")
    best: tuple[float, int] | None = None
    for cut in range(1, len(words)):
        first, second = " ".join(words[:cut]), " ".join(words[cut:])
        overflow = max(0, len(first) - MAX_LINE) + max(0, len(second) - MAX_LINE)
        score = overflow * 1000 + abs(len(first) - len(second)) - (6 if _CLAUSE_END.search(words[cut - 1]) else 0)
        if best is None or score < best[0]:
            best = (score, cut)
    if best is None:  # one overlong word
        return (text,)
    return (" ".join(words[: best[1]]), " ".join(words[best[1] :]))


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
    words = [(float(start), str(text)) for segment in index for start, text in segment.get("words") or []]
    said = [(token, position) for position, (_, text) in enumerate(words) for token in tokens(text)]
    for at in range(len(said) - len(wanted) + 1):
        if all(said[at + offset][0] == token for offset, token in enumerate(wanted)):
            first, last = said[at][1], said[at + len(wanted) - 1][1]
            low, high = max(0, first - context), min(len(words), last + 1 + context)
            snippet = "".join(text for _, text in words[low:high]).strip()
            return words[first][0], ("… " if low else "") + snippet + (" …" if high < len(words) else "")
    return None
