"""CMAF HLS from the proxies pass, published while ffmpeg is still writing it.

Each H.264 rung's encoder feeds two muxers through ffmpeg's tee: the faststart MP4 proxy and an HLS
media playlist of fMP4 segments (EVENT type: it grows, and ENDLIST closes it). Keyframes are forced
on the same 2-second grid in every encoded rung (every second on the scrubbing rung), so segments cut
at the first keyframe past each 2 s hold whole GOPs and line up across rungs.

`HlsPublisher.scan` runs between ffmpeg's progress reports: it uploads each rung's init segment and
every finished segment, and only then the playlist that lists them, so a stored playlist never
points at a missing segment, whatever moment the stage is killed at. ffmpeg writes EVENT playlists
to a temporary file and renames it, so a scan never reads half a playlist. The master playlist
lists the rungs whose playlists are stored, and is rewritten when one more appears.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from mediaingest.exceptions import ProcessingError
from mediaingest.pipeline.ffmpeg import FfmpegTools

HLS_DIR = "hls"
MASTER_NAME = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"
INIT_SEGMENT = "init.mp4"
PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
# The captions' media playlist: made when the master is served, not stored, since the transcript stage
# runs beside the proxies and may finish before or after them.
SUBTITLES_PLAYLIST = "captions/index.m3u8"
# Its one segment: the transcript stage's WebVTT, served by the API with its X-TIMESTAMP-MAP set to where the
# HLS video starts (known only once the proxies are published).
SUBTITLES_SEGMENT = "captions/captions.vtt"
_SUBTITLES_GROUP = "subs"
SEGMENT_TYPE = "video/mp4"
# ffprobe reads an init segment and a fragment's head in milliseconds; a stuck one must not hold a request.
_START_PROBE_SECONDS = 10.0
_EXTINF = re.compile(r"^#EXTINF:([\d.]+)")
_MAP = re.compile(r'^#EXT-X-MAP:(?:.*?URI="([^"]+)")?')


@dataclass(frozen=True)
class HlsRung:
    name: str  # "720p": the rung's folder under hls/
    width: int
    height: int
    bandwidth: int  # bits per second at peak, for the master playlist


@dataclass(frozen=True)
class MediaPlaylist:
    segments: list[tuple[str, float]]  # (file name, seconds), in order
    init: str | None
    ended: bool

    @property
    def seconds(self) -> float:
        return sum(duration for _, duration in self.segments)

    @property
    def files(self) -> list[str]:
        """The init segment, if any, then the media segments: the order they are uploaded in."""
        return [*([self.init] if self.init else []), *(name for name, _ in self.segments)]


def parse_media_playlist(text: str) -> MediaPlaylist:
    segments: list[tuple[str, float]] = []
    init: str | None = None
    pending: float | None = None
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        if match := _EXTINF.match(line):
            pending = float(match.group(1))
        elif match := _MAP.match(line):
            init = match.group(1)
        elif not line.startswith("#") and pending is not None:
            segments.append((line, pending))
            pending = None
    return MediaPlaylist(segments=segments, init=init, ended="#EXT-X-ENDLIST" in text)


def master_playlist(rungs: Sequence[HlsRung], frame_rate: str | None) -> str:
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    rate = f",FRAME-RATE={float(Fraction(frame_rate)):.3f}" if frame_rate else ""
    for rung in sorted(rungs, key=lambda r: r.bandwidth):
        lines.append(f"#EXT-X-STREAM-INF:BANDWIDTH={rung.bandwidth},RESOLUTION={rung.width}x{rung.height}{rate}")
        lines.append(f"{rung.name}/{MEDIA_PLAYLIST}")
    return "\n".join(lines) + "\n"


def with_subtitles(master: str, *, language: str, name: str, uri: str = SUBTITLES_PLAYLIST) -> str:
    """The master playlist with a WebVTT SUBTITLES rendition that every variant refers to."""
    media = (
        f'#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID="{_SUBTITLES_GROUP}",NAME="{name}",LANGUAGE="{language}",'
        f'DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI="{uri}"'
    )
    lines = []
    for line in master.splitlines():
        if line.startswith("#EXT-X-STREAM-INF:"):
            if media:
                lines.append(media)
                media = ""
            line = f'{line},SUBTITLES="{_SUBTITLES_GROUP}"'
        lines.append(line)
    return "\n".join(lines) + "\n"


def subtitles_playlist(vtt_url: str, duration_seconds: float) -> str:
    """One WebVTT file as the whole (finished) media playlist of the SUBTITLES rendition: what Apple's HLS
    rules (which Safari follows) ask of it: VOD with ENDLIST, the EXTINF rounded at most the target duration
    (a whole number of seconds: rounded up); the WebVTT itself carries X-TIMESTAMP-MAP
    (`captions.with_timestamp_map`)."""
    seconds = max(duration_seconds, 0.001)
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n"
        f"#EXT-X-TARGETDURATION:{math.ceil(seconds)}\n#EXT-X-MEDIA-SEQUENCE:0\n#EXT-X-PLAYLIST-TYPE:VOD\n"
        f"#EXTINF:{seconds:.3f},\n{vtt_url}\n#EXT-X-ENDLIST\n"
    )


def presentation_start(tools: FfmpegTools, init: bytes, fragment: bytes) -> float | None:
    """Seconds at which an fMP4 rung presents its first video frame, as ffprobe (and so an HLS reader)
    reads its init segment and the head of its first fragment: through the fragment's composition offsets
    and the track's edit list. ffmpeg shifts timestamps so that no decode time is negative, which puts the
    first frame late by x264's B-frame delay (2 frames) or AAC's priming (1024 samples): a WebVTT's
    X-TIMESTAMP-MAP must map cue 0 there. None when the bytes hold no video fragment (audio-only, or cut
    short)."""
    if not init or not fragment:
        return None
    with tempfile.NamedTemporaryFile(suffix=".mp4") as head:
        head.write(init + fragment)
        head.flush()
        try:
            described = tools.probe(
                head.name,
                extra_args=("-select_streams", "v:0", "-show_entries", "stream=start_time"),
                timeout=_START_PROBE_SECONDS,
            )
        except ProcessingError:
            return None
    return _start_time(described)


def _start_time(described: dict[str, Any]) -> float | None:
    """The first stream's start_time in ffprobe's JSON."""
    streams = described.get("streams") or [{}]
    try:
        return float(streams[0]["start_time"])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class HlsPublisher:
    """Uploads what ffmpeg has finished, in an order that never exposes a missing file."""

    out_dir: Path
    rungs: list[HlsRung]
    frame_rate: str | None
    publish: Callable[[Path, str], None]  # stores a file under a name relative to out_dir ("hls/720p/…")
    on_playable: Callable[[float], None] | None = None
    _stored: set[str] = field(default_factory=set)  # relative paths already published, unchanged since
    _playlists: dict[str, str] = field(default_factory=dict)  # rung → last playlist text published
    _listed: list[HlsRung] = field(default_factory=list)  # rungs in the last master published
    playable_seconds: float = 0.0

    @property
    def root(self) -> Path:
        return self.out_dir / HLS_DIR

    def rung_dir(self, rung: str) -> Path:
        return self.root / rung

    def prepare(self) -> None:
        """Empty rung folders for ffmpeg (a retried attempt starts from no segments at all)."""
        for rung in self.rungs:
            folder = self.rung_dir(rung.name)
            folder.mkdir(parents=True, exist_ok=True)
            for stale in folder.iterdir():
                stale.unlink()

    def scan(self) -> None:
        for rung in self.rungs:
            self._publish_rung(rung.name)
        self._publish_master()
        self._report_playable()

    def finish(self) -> MediaPlaylist:
        """The last scan once ffmpeg has exited; every rung must then be complete (ENDLIST). Returns the
        shortest rung's playlist."""
        self.scan()
        playlists = [self._complete_playlist(rung.name) for rung in self.rungs]
        return min(playlists, key=lambda playlist: playlist.seconds)

    def _complete_playlist(self, rung: str) -> MediaPlaylist:
        playlist = parse_media_playlist(self._playlists.get(rung, ""))
        if not playlist.ended or not playlist.segments:
            raise ProcessingError(f"ffmpeg finished but the {rung} HLS playlist is not complete")
        return playlist

    def _publish_master(self) -> None:
        """Lists the rungs whose playlists are stored, once one more is."""
        stored = [rung for rung in self.rungs if rung.name in self._playlists]
        if stored and stored != self._listed:
            master = self.root / MASTER_NAME
            master.write_text(master_playlist(stored, self.frame_rate), encoding="utf-8")
            self._upload(master)
            self._listed = stored

    def _report_playable(self) -> None:
        seconds = max((parse_media_playlist(text).seconds for text in self._playlists.values()), default=0.0)
        if seconds > self.playable_seconds:
            self.playable_seconds = seconds
            if self.on_playable is not None:
                self.on_playable(seconds)

    def _publish_rung(self, rung: str) -> None:
        playlist_path = self.rung_dir(rung) / MEDIA_PLAYLIST
        try:
            text = playlist_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        if text == self._playlists.get(rung):
            return
        playlist = parse_media_playlist(text)
        if not playlist.segments:
            return
        for name in playlist.files:
            self._upload_once(self.rung_dir(rung) / name)
        self._upload(playlist_path, text)
        self._playlists[rung] = text

    def _upload_once(self, path: Path) -> None:
        # Finished segments never change: ffmpeg lists a segment only once it has closed it.
        if self._relative(path) not in self._stored:
            self._upload(path)

    def _upload(self, path: Path, snapshot: str | None = None) -> None:
        name = self._relative(path)
        if snapshot is None:
            self.publish(path, name)
        else:
            # The playlist as parsed, not as it may be by now: it must list only what was uploaded.
            frozen = path.with_name(f".{path.name}.published")
            frozen.write_text(snapshot, encoding="utf-8")
            try:
                self.publish(frozen, name)
            finally:
                frozen.unlink()
        self._stored.add(name)

    def _relative(self, path: Path) -> str:
        return path.relative_to(self.out_dir).as_posix()
