"""Sprite sheets and the WebVTT storyboard, assembled from raw tiles streamed out of the proxies pass.

ffmpeg scales one frame per interval to the tile size and writes it as raw RGB to stdout; the sheets
are laid out here rather than by ffmpeg's tile filter because:
- the tile filter emits a sheet only when it is full, and ffmpeg 5.1 prints no -progress until every
  output has had a frame, so a 10×10 grid would hide the progress of the first 200 s of video;
- the exact tile count is known (the last sheet's empty cells are not mistaken for tiles), and a
  short video gets a sheet just big enough, decided after the fact rather than from an estimate.
Memory stays at one sheet's tiles (100 × 160×90 RGB ≈ 4 MB with the defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from mediaingest.exceptions import ProcessingError

SPRITE_NAME = "sprite_{index:03d}.jpg"
STORYBOARD_NAME = "storyboard.vtt"


@dataclass(frozen=True)
class SpriteGrid:
    interval_seconds: float
    tile_width: int
    tile_height: int
    columns: int  # at most; a lone short sheet gets fewer
    rows: int  # at most; the last sheet gets only the rows it fills

    @property
    def tile_bytes(self) -> int:
        return self.tile_width * self.tile_height * 3  # rgb24


@dataclass(frozen=True)
class SpriteSheet:
    index: int
    path: Path
    columns: int
    rows: int
    tiles: int
    width: int
    height: int


@dataclass(frozen=True)
class TilePlacement:
    sheet: str  # file name, as the VTT references it
    x: int
    y: int


class SpriteSheetWriter:
    """Receives rgb24 tiles in arbitrary chunks (a stdout_sink) and writes each sheet as it fills."""

    def __init__(self, out_dir: Path, grid: SpriteGrid, *, jpeg_quality: int = 75) -> None:
        self.out_dir = out_dir
        self.grid = grid
        self.jpeg_quality = jpeg_quality
        self.sheets: list[SpriteSheet] = []
        self.placements: list[TilePlacement] = []
        self._buffer = bytearray()
        self._pending: list[Image.Image] = []

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        size = self.grid.tile_bytes
        while len(self._buffer) >= size:
            tile = Image.frombytes("RGB", (self.grid.tile_width, self.grid.tile_height), bytes(self._buffer[:size]))
            del self._buffer[:size]
            self._pending.append(tile)
            if len(self._pending) == self.grid.columns * self.grid.rows:
                self._flush(self.grid.columns, self.grid.rows)

    def finish(self) -> list[SpriteSheet]:
        if self._buffer:
            raise ProcessingError(f"ffmpeg ended in the middle of a sprite tile ({len(self._buffer)} bytes)")
        if self._pending:
            count = len(self._pending)
            columns = self.grid.columns if self.sheets else min(self.grid.columns, count)
            self._flush(columns, math.ceil(count / columns))
        return self.sheets

    def _flush(self, columns: int, rows: int) -> None:
        index = len(self.sheets)
        path = self.out_dir / SPRITE_NAME.format(index=index)
        width, height = columns * self.grid.tile_width, rows * self.grid.tile_height
        sheet = Image.new("RGB", (width, height))
        for number, tile in enumerate(self._pending):
            row, column = divmod(number, columns)
            x, y = column * self.grid.tile_width, row * self.grid.tile_height
            sheet.paste(tile, (x, y))
            self.placements.append(TilePlacement(path.name, x, y))
        sheet.save(path, "JPEG", quality=self.jpeg_quality, optimize=True)
        self.sheets.append(SpriteSheet(index, path, columns, rows, len(self._pending), width, height))
        self._pending = []


def storyboard_vtt(placements: list[TilePlacement], grid: SpriteGrid, duration: float | None) -> str:
    """WebVTT thumbnails track: cue k covers [k·interval, (k+1)·interval), the last one until the end.

    Sheets are referenced by bare file name: the worker stores them next to the VTT, so the
    references resolve relative to wherever the VTT is served from.
    """
    lines = ["WEBVTT", ""]
    for number, place in enumerate(placements):
        start = number * grid.interval_seconds
        end = start + grid.interval_seconds
        if number == len(placements) - 1 and duration and duration > start:
            end = duration
        lines += [
            f"{vtt_timestamp(start)} --> {vtt_timestamp(end)}",
            f"{place.sheet}#xywh={place.x},{place.y},{grid.tile_width},{grid.tile_height}",
            "",
        ]
    return "\n".join(lines)


def vtt_timestamp(seconds: float) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"
