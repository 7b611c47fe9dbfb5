"""The transcript stage on speech made by espeak-ng: what is said, when, and the captions made from it.

The model is the packaged default (tiny.en), loaded once per test session (`load_model` keeps it), with
the Hugging Face hub switched off: the default must work with no network.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import webvtt

from fixtures.media import ffmpeg
from fixtures.speech import Speech, music_only, silence
from mediaingest.exceptions import PermanentProcessingError
from mediaingest.models.enums import MediaType, ProxyType, Stage
from mediaingest.pipeline import run_stage_function
from mediaingest.pipeline.captions import (
    MAX_CUE_SECONDS,
    MAX_LINE,
    MAX_LINES,
    MIN_CUE_SECONDS,
    Word,
    build_cues,
    phrase_time,
    tokens,
)
from mediaingest.pipeline.captions import (
    webvtt as to_webvtt,
)
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.stages.transcript import SAMPLE_RATE, SoundOnsets, default_model_path
from mediaingest.pipeline.types import StageResult

pytestmark = pytest.mark.usefixtures("offline_hub")


@pytest.fixture(scope="session")
def offline_hub() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="session")
def transcribed(speech: Speech, tmp_path_factory: pytest.TempPathFactory, offline_hub: None) -> StageResult:
    """The whole stage, once, on 22 sentences (about 70 s of speech)."""
    out = tmp_path_factory.mktemp("transcript")
    return run_stage_function(Stage("transcript"), speech.path, MediaType.AUDIO, None, out, options=PipelineOptions())


def output(result: StageResult, kind: ProxyType) -> Path:
    return next(o.path for o in result.outputs if o.kind == kind)


def word_error_rate(reference: list[str], hypothesis: list[str]) -> tuple[float, list[tuple[int, int]]]:
    """Levenshtein distance over words / reference length, and the (reference, hypothesis) index pairs
    the alignment matched exactly."""
    rows, cols = len(reference) + 1, len(hypothesis) + 1
    cost = [[0] * cols for _ in range(rows)]
    for i in range(rows):
        cost[i][0] = i
    for j in range(cols):
        cost[0][j] = j
    for i in range(1, rows):
        for j in range(1, cols):
            same = reference[i - 1] == hypothesis[j - 1]
            cost[i][j] = min(cost[i - 1][j] + 1, cost[i][j - 1] + 1, cost[i - 1][j - 1] + (0 if same else 1))
    matched, i, j = [], rows - 1, cols - 1
    while i > 0 and j > 0:
        same = reference[i - 1] == hypothesis[j - 1]
        if cost[i][j] == cost[i - 1][j - 1] + (0 if same else 1):
            if same:
                matched.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif cost[i][j] == cost[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return cost[-1][-1] / len(reference), matched[::-1]


# Whisper writes numbers as digits; the reference spells them. Only the first word has a start to check.
_SPELLED = {"7": ["seven"], "100": ["one", "hundred"]}


def normalized_words(document: dict[str, Any]) -> list[tuple[str, float | None]]:
    """Every word the model heard, as search sees words, with its start."""
    said = []
    for segment in document["segments"]:
        for word in segment["words"]:
            for token in tokens(word["word"]):
                spelled = _SPELLED.get(token, [token])
                said += [(spelled[0], word["start"]), *((more, None) for more in spelled[1:])]
    return said


@pytest.mark.slow
def test_what_is_said_is_transcribed_with_the_default_model(transcribed: StageResult, speech: Speech) -> None:
    document = json.loads(output(transcribed, ProxyType.TRANSCRIPT).read_text())
    assert document["language"] == "en" and document["model"] == "tiny.en"
    heard = [token for token, _ in normalized_words(document)]
    reference = [word.text for word in speech.words]
    wer, _ = word_error_rate(reference, heard)
    print(f"WER {wer:.3f} over {len(speech.sentences)} sentences, {len(reference)} words")
    assert len(speech.sentences) >= 20
    assert wer <= 0.30
    # Every word carries its times and probability; the plain text is the segments' text.
    words = [w for segment in document["segments"] for w in segment["words"]]
    assert all(0 <= w["start"] <= w["end"] <= speech.duration + 0.5 and 0 <= w["probability"] <= 1 for w in words)
    text = output(transcribed, ProxyType.TRANSCRIPT_TEXT).read_text()
    assert text.splitlines() == [segment["text"] for segment in document["segments"]]
    assert transcribed.measurements["transcript_language"] == "en"
    assert "bread from the market" in transcribed.measurements["transcript_text"].lower()


@pytest.mark.slow
def test_each_word_starts_where_it_was_placed(transcribed: StageResult, speech: Speech) -> None:
    document = json.loads(output(transcribed, ProxyType.TRANSCRIPT).read_text())
    heard = normalized_words(document)
    _, matched = word_error_rate([w.text for w in speech.words], [token for token, _ in heard])
    offsets = [heard[h][1] - speech.words[r].start for r, h in matched if heard[h][1] is not None]
    print(f"{len(offsets)} matched words; start offsets: mean {sum(offsets) / len(offsets):+.3f} s, "
          f"worst {max(offsets, key=abs):+.3f} s")  # fmt: skip
    assert len(matched) >= 0.7 * len(speech.words)
    # Every word the model heard right starts where it was placed (tiny.en alone puts 11 of 139 0.3-0.7 s off;
    # the stage moves them onto the sound's onsets).
    late = [(speech.words[r].text, round(heard[h][1] - speech.words[r].start, 2)) for r, h in matched
            if heard[h][1] is not None and abs(heard[h][1] - speech.words[r].start) > 0.3]  # fmt: skip
    assert late == []
    assert sorted(abs(offset) for offset in offsets)[len(offsets) // 2] <= 0.1


@pytest.mark.slow
def test_the_captions_are_valid_webvtt_within_the_limits(transcribed: StageResult, speech: Speech) -> None:
    path = output(transcribed, ProxyType.CAPTIONS)
    text = path.read_text()
    cues = webvtt.from_buffer(io.StringIO(text)).captions  # a WebVTT parser's reading
    assert len(cues) == next(o for o in transcribed.outputs if o.kind == ProxyType.CAPTIONS).details["cues"]
    previous_end = 0.0
    for cue in cues:
        lines = cue.text.split("\n")
        assert 1 <= len(lines) <= MAX_LINES and all(0 < len(line) <= MAX_LINE for line in lines), lines
        start, end = _seconds(cue.start), _seconds(cue.end)
        assert start >= previous_end - 1e-6, "cues overlap"
        assert MIN_CUE_SECONDS - 1e-6 <= end - start <= MAX_CUE_SECONDS + 1e-6, (cue.start, cue.end, cue.text)
        previous_end = end
    # A sentence never runs on into the next cue's first line after a pause: each sentence starts a cue.
    firsts = {cue.text.split()[0].strip(".,").lower() for cue in cues}
    starts = {sentence.split()[0].lower() for sentence in speech.sentences}
    assert len(starts & firsts) >= 0.8 * len(starts)


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize("make", [music_only, silence], ids=["music", "silence"])
def test_speechless_audio_gets_an_empty_transcript_and_no_captions(
    make: Any, tmp_path: Path, options: PipelineOptions
) -> None:
    source = make(tmp_path / "sound.wav")
    result = run_stage_function(Stage("transcript"), source, MediaType.AUDIO, None, tmp_path / "out", options=options)
    assert [o.kind for o in result.outputs] == [ProxyType.TRANSCRIPT]
    document = json.loads(result.outputs[0].path.read_text())
    assert (document["segments"], document["language"]) == ([], None)
    assert result.measurements == {"transcript_language": None, "transcript_text": None, "transcript_segments": None}
    assert result.message == "transcript: no speech"


def test_transcribe_off_makes_nothing(short_speech: Speech, tmp_path: Path, options: PipelineOptions) -> None:
    off = PipelineOptions(tools=options.tools, transcribe=False)
    result = run_stage_function(Stage("transcript"), short_speech.path, MediaType.AUDIO, None, tmp_path, options=off)
    assert (result.outputs, result.message) == ([], "transcription is off (TRANSCRIBE=off)")


def test_without_the_transcribe_extra_the_stage_makes_nothing_unless_asked_to(
    short_speech: Speech, tmp_path: Path, options: PipelineOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The slim stage image has no faster-whisper: unset, the stage is a quick no-op; TRANSCRIBE=on there is a
    configuration mistake, and says so instead of failing on an import."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "faster_whisper" else real_find_spec(name, *a)
    )
    unset = PipelineOptions(tools=options.tools, transcribe=None)
    result = run_stage_function(Stage("transcript"), short_speech.path, MediaType.AUDIO, None, tmp_path, options=unset)
    assert (result.outputs, result.message) == ([], "transcription is not installed here (the `transcribe` extra)")
    on = PipelineOptions(tools=options.tools, transcribe=True)
    with pytest.raises(PermanentProcessingError, match="the `transcribe` extra"):
        run_stage_function(Stage("transcript"), short_speech.path, MediaType.AUDIO, None, tmp_path, options=on)


def test_the_packaged_model_is_the_pinned_one() -> None:
    folder = default_model_path()  # checks model.bin's digest
    assert {p.name for p in folder.iterdir()} >= {"model.bin", "config.json", "tokenizer.json", "vocabulary.txt"}


def test_word_starts_move_onto_the_sound_they_belong_to_in_order() -> None:
    """Whisper's typical slips, on sound whose onsets are known: a run of words late, a word it left out
    (its onset goes to nobody), the first word after a pause a word late, a start inside the silence."""
    import numpy as np

    bursts = [(0.5, 0.8), (0.92, 1.3), (1.42, 1.8), (2.7, 2.95), (3.07, 3.5), (3.62, 4.0), (5.0, 5.4), (5.52, 5.9),
              (7.0, 7.3)]  # fmt: skip
    samples = np.zeros(8 * SAMPLE_RATE, dtype=np.float32)
    noise = np.random.default_rng(7).uniform(-0.3, 0.3, len(samples)).astype(np.float32)
    for start, end in bursts:
        span = slice(round(start * SAMPLE_RATE), round(end * SAMPLE_RATE))
        samples[span] = noise[span]
    onsets = SoundOnsets(samples)
    heard = [
        [(" one", 0.62, 0.92), (" two", 1.0, 1.42), (" three.", 1.8, 2.0)],  # late, then a whole word late
        [(" River", 3.12, 3.5), (" flows.", 3.5, 4.0)],  # "the" at 2.7 left out
        [(" Please", 5.45, 5.6), (" open.", 5.6, 6.0)],  # the first word after a pause a word late
        [(" A", 6.4, 7.3)],  # starting in the silence before its sound
    ]
    placed = [
        onsets.place([Word(start=start, end=end, text=text, probability=0.9) for text, start, end in segment])
        for segment in heard
    ]
    starts = [[round(word.start, 2) for word in segment] for segment in placed]
    assert starts == [[0.5, 0.92, 1.42], [3.07, 3.62], [5.0, 5.52], [7.0]]
    assert all(word.end >= word.start for segment in placed for word in segment)
    # Music under the voice leaves no quiet stretch: Whisper's times are kept.
    loud = SoundOnsets(samples + np.float32(0.2))
    assert [w.start for w in loud.place([Word(start=0.62, end=0.92, text=" one", probability=0.9)])] == [0.62]


# --- the caption rules, on words whose times are set by hand ---------------------------------------


def _words(text: str, *, start: float = 0.0, each: float = 0.3, pauses: dict[int, float] | None = None) -> list[Word]:
    words, at = [], start
    for index, token in enumerate(text.split()):
        at += (pauses or {}).get(index, 0.0)
        words.append(Word(start=at, end=at + each - 0.05, text=f" {token}", probability=0.9))
        at += each
    return words


def test_long_speech_is_cut_into_cues_of_two_lines_of_42_characters_at_most() -> None:
    text = " ".join(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta,"] * 12)
    cues = build_cues(_words(text, each=0.25))
    for cue in cues:
        assert len(cue.lines) <= MAX_LINES and all(len(line) <= MAX_LINE for line in cue.lines)
        assert MIN_CUE_SECONDS <= cue.end - cue.start <= MAX_CUE_SECONDS
    assert " ".join(" ".join(cue.lines) for cue in cues) == text


def test_a_full_cue_ends_after_a_clause_not_mid_phrase() -> None:
    text = "when the rain stopped at last, we walked down to the harbour to see the boats come in"
    cues = build_cues(_words(text))
    assert cues[0].lines[-1].endswith("at last,")


def test_a_pause_and_a_sentence_end_start_a_new_cue_and_short_cues_last_a_second() -> None:
    cues = build_cues(_words("Hello there. Good morning everyone and welcome back", each=0.5, pauses={5: 1.5}))
    assert [" ".join(cue.lines) for cue in cues] == ["Hello there.", "Good morning everyone", "and welcome back"]
    assert cues[0].end - cues[0].start == pytest.approx(MIN_CUE_SECONDS)
    # Words too close to the next to stay a second on their own are kept with them.
    close = build_cues(_words("Yes. I think so.", each=0.2))
    assert [" ".join(cue.lines) for cue in close] == ["Yes. I think so."]


def test_the_webvtt_escapes_markup_and_carries_the_hls_timestamp_map() -> None:
    text = to_webvtt(build_cues(_words("a < b & c --> d")))
    assert text == (
        "WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n\n1\n00:00:00.000 --> 00:00:02.050\n"
        "a &lt; b &amp; c --&gt; d\n"
    )


def test_a_phrase_is_placed_at_its_first_word() -> None:
    index = [
        {"start": 0.0, "text": "Good morning.", "words": [[0.0, " Good"], [0.4, " morning."]]},
        {"start": 3.0, "text": "The round-fark jumps.",
         "words": [[3.0, " The"], [3.2, " round"], [3.5, "-fark"], [4.0, " jumps."]]},
    ]  # fmt: skip
    assert phrase_time(index, "Fark JUMPS") == (3.5, "Good morning. The round-fark jumps.")
    assert phrase_time(index, "morning the", context=1) == (0.4, "Good morning. The round …")
    assert phrase_time(index, "jumps morning") is None and phrase_time(index, "!!") is None
    assert tokens("Ünïcode_words, 42!") == ["ünïcode", "words", "42"]  # what both full-text tokenizers keep


def test_the_settings_choose_the_model_and_the_language() -> None:
    from pydantic import ValidationError

    from mediaingest.config import Settings

    settings = Settings(_env_file=None, TRANSCRIBE="off", TRANSCRIBE_MODEL="/models/small", TRANSCRIBE_LANGUAGE="de")  # type: ignore[call-arg]
    options = PipelineOptions.from_settings(settings)
    assert (options.transcribe, options.transcribe_model, options.transcribe_language) == (False, "/models/small", "de")
    with pytest.raises(ValidationError, match="TRANSCRIBE_LANGUAGE"):
        Settings(_env_file=None, TRANSCRIBE_LANGUAGE="English")  # type: ignore[call-arg]


def test_a_model_that_cannot_be_loaded_fails_for_good_with_its_name() -> None:
    from mediaingest.exceptions import PermanentProcessingError
    from mediaingest.pipeline.stages.transcript import load_model

    # Not a folder, and not in the (offline) hub's cache: no download is tried.
    with pytest.raises(PermanentProcessingError, match="cannot load the transcription model 'no-such-model'"):
        load_model("no-such-model")


def test_the_hls_master_gains_a_subtitles_rendition_every_variant_names() -> None:
    from mediaingest.assets.hls_access import rewrite_media
    from mediaingest.pipeline.hls import HlsRung, master_playlist, subtitles_playlist, with_subtitles

    master = master_playlist([HlsRung("360p", 640, 360, 900_000), HlsRung("720p", 1280, 720, 3_000_000)], "30/1")
    served = with_subtitles(master, language="en", name="Captions (en)")
    lines = served.splitlines()
    media = next(index for index, line in enumerate(lines) if line.startswith("#EXT-X-MEDIA:"))
    assert lines[media] == (
        '#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="subs",NAME="Captions (en)",LANGUAGE="en",'
        'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="captions/index.m3u8"'
    )
    variants = [line for line in lines if line.startswith("#EXT-X-STREAM-INF:")]
    assert len(variants) == 2 and all(line.endswith(',SUBTITLES="subs"') for line in variants)
    assert media < lines.index(variants[0])  # declared before the variants that name its group
    # Signing the master as it is served covers the rendition's URI too.
    signed = rewrite_media(served, lambda name: f"https://api/{name}?sig=1")
    assert 'URI="https://api/captions/index.m3u8?sig=1"' in signed
    playlist = subtitles_playlist("https://store/captions.vtt?sig=2", 12.4)
    assert playlist.splitlines() == [
        "#EXTM3U", "#EXT-X-VERSION:3", "#EXT-X-TARGETDURATION:13", "#EXT-X-MEDIA-SEQUENCE:0",
        "#EXT-X-PLAYLIST-TYPE:VOD", "#EXTINF:12.400,", "https://store/captions.vtt?sig=2", "#EXT-X-ENDLIST",
    ]  # fmt: skip


@pytest.mark.parametrize("video", [["-bf", "3"], ["-bf", "0"]], ids=["b-frames", "no-b-frames"])
def test_the_fmp4_video_start_is_read_as_an_hls_reader_reads_it(video: list[str], tmp_path: Path) -> None:
    """Where a rung presents its first frame (the captions' X-TIMESTAMP-MAP): x264's B-frame delay or AAC's
    priming moves it after 0, through the fragment's composition offsets or the init segment's edit list."""
    import subprocess

    from mediaingest.pipeline.ffmpeg import FfmpegTools
    from mediaingest.pipeline.hls import presentation_start

    ffmpeg(
        "-f", "lavfi", "-i", "testsrc2=size=128x72:rate=30:duration=3", "-f", "lavfi", "-i", "sine=duration=3",
        "-c:v", "libx264", "-preset", "veryfast", *video, "-c:a", "aac", "-ar", "48000",
        "-f", "hls", "-hls_time", "2", "-hls_segment_type", "fmp4", "-hls_playlist_type", "vod",
        "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", str(tmp_path / "seg_%05d.m4s"),
        str(tmp_path / "index.m3u8"),
    )  # fmt: skip
    probed = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "stream=start_time", "-of", "json",
         str(tmp_path / "index.m3u8")], capture_output=True, check=True, text=True, timeout=60,
    )  # fmt: skip
    expected = float(json.loads(probed.stdout)["streams"][0]["start_time"])
    init, first = (tmp_path / "init.mp4").read_bytes(), (tmp_path / "seg_00000.m4s").read_bytes()
    start = presentation_start(FfmpegTools(), init, first[: 256 * 1024])  # the head the API reads
    assert start is not None and start > 0 and start == pytest.approx(expected, abs=0.002)
    assert presentation_start(FfmpegTools(), init, b"") is None
    assert presentation_start(FfmpegTools(), b"not an mp4", first) is None
