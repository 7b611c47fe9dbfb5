"""Clips: a range of a video made into an asset of its own, linked to its parent and deleted with it.

`POST /api/assets/{id}/clips` answers at once: the clip's row (its bytes still to come, the range's size
reserved against the quota) and a playlist of the parent's HLS that plays the range now, accurate to a
segment, with the exact in and out stated so a player trims to them. The `clips.render` task then cuts
the clip frame-exactly from the parent's source (`pipeline.smartcut`), stores it where an upload of the
clip would be, and hands the clip to ingestion through the same dispatch as a confirmed upload: type,
metadata, proxies, poster and webhooks all come from the normal pipeline.
"""

from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.orm import Session

from mediaingest.assets import repository
from mediaingest.assets.hls_access import hls_url
from mediaingest.assets.lifecycle import mark_failed
from mediaingest.assets.media_types import printable_name, sanitize_filename
from mediaingest.assets.metadata import metadata_of
from mediaingest.assets.service import AssetService
from mediaingest.assets.storage_keys import upload_key
from mediaingest.assets.timeline import timeline_of
from mediaingest.config import Settings
from mediaingest.db import new_id, session_scope, utcnow
from mediaingest.dispatch import build_dispatcher, placement
from mediaingest.exceptions import NotFoundError, ValidationFailedError
from mediaingest.models import MediaAsset, Task
from mediaingest.models.enums import AssetProcessingStatus, MediaType, UploadStatus
from mediaingest.pipeline.options import PipelineOptions
from mediaingest.pipeline.registry import stage_names
from mediaingest.pipeline.smartcut import clip_frames, render_clip, start_timecode
from mediaingest.pipeline.timing import rate_text
from mediaingest.pipeline.types import MediaMetadata
from mediaingest.retry import RetryDecision
from mediaingest.runtime import Runtime
from mediaingest.storage.base import ObjectInfo
from mediaingest.tasks import queue
from mediaingest.tasks.registry import DEFAULT_QUEUE, STAGES_QUEUE, TaskCancelled, TaskRun, TaskSpec
from mediaingest.users.auth import Principal

log = structlog.stdlib.get_logger(__name__)

RENDER_CLIP = "clips.render"
CLIP_PLAYLIST = "clip.m3u8"  # served by the HLS route, on the parent's signed URL, with inFrame and outFrame
# A clip's row waits for its bytes like an upload does; the render gets this long before the sweep expires it.
_RENDER_WINDOW = timedelta(hours=6)


@dataclass(frozen=True)
class ClipRange:
    in_frame: int
    out_frame: int  # exclusive
    rate: Fraction
    in_timecode: str | None
    parent_frames: int

    @property
    def in_seconds(self) -> float:
        return float(self.in_frame / self.rate)

    @property
    def out_seconds(self) -> float:
        return float(self.out_frame / self.rate)

    def default_name(self, parent_name: str) -> str:
        """The clip's name when it is given none: the parent's, and where the clip starts."""
        return f"{Path(parent_name).stem} clip {self.in_timecode or f'{self.in_seconds:.3f}s'}.mp4"

    def as_json(self) -> dict[str, Any]:
        return {
            "inFrame": self.in_frame,
            "outFrame": self.out_frame,
            "frameRate": rate_text(self.rate),
            "inTimecode": self.in_timecode,
        }


def clip_range(parent: MediaAsset, *, start: float, end: float) -> ClipRange:
    """[start, end) of the parent in whole frames of its timeline; 422 for a range outside the picture."""
    timeline = timeline_of(parent)
    if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end <= timeline.seconds + 1e-6):
        raise ValidationFailedError(
            f"start and end must be seconds with 0 ≤ start < end ≤ {timeline.seconds:.3f}, the picture's length",
            details={"start": start, "end": end, "durationSeconds": timeline.seconds},
        )
    in_frame, out_frame = clip_frames(start, end, timeline.rate)
    out_frame = min(out_frame, timeline.frames)
    if out_frame <= in_frame:
        raise ValidationFailedError("the clip must hold at least one frame", details={"start": start, "end": end})
    shifted = start_timecode(timeline.timecode, in_frame, timeline.rate)
    return ClipRange(in_frame, out_frame, timeline.rate, shifted, timeline.frames)


def create_clip(
    session: Session, assets: AssetService, principal: Principal, parent_id: str, *, start: float, end: float,
    name: str | None,
) -> tuple[MediaAsset, ClipRange]:  # fmt: skip
    """The clip's row (waiting for its bytes) and its render task, in the caller's transaction."""
    parent = repository.get_owned(session, asset_id=parent_id, owner_id=principal.user_id, with_details=True)
    if parent is None:
        raise NotFoundError("asset not found")
    span = clip_range(parent, start=start, end=end)
    # Reserved like an upload's declared size: the parent's bytes per frame, times the clip's frames.
    estimate = max(1, parent.file_size * (span.out_frame - span.in_frame) // span.parent_frames)
    repository.lock_user(session, principal.user_id)
    assets.check_quota(session, principal, requested=estimate)
    now = utcnow()
    clip_id = new_id()
    label = name or span.default_name(parent.name)
    file_name = sanitize_filename(label if label.lower().endswith(".mp4") else f"{label}.mp4", mime_type="video/mp4")
    clip = MediaAsset(
        id=clip_id,
        owner_id=parent.owner_id,
        project_id=parent.project_id,
        name=file_name,
        original_name=printable_name(label),
        type=MediaType.VIDEO,
        file_size=estimate,
        mime_type="video/mp4",
        upload_status=UploadStatus.PENDING,
        processing_status=AssetProcessingStatus.PENDING,
        priority=parent.priority,
        storage_bucket=assets.settings.bucket_incoming,
        storage_key=upload_key(user_id=parent.owner_id, asset_id=clip_id, extension="mp4", at=now),
        upload_expires_at=now + _RENDER_WINDOW,
        created_at=now,
        parent_id=parent.id,
        clip=span.as_json(),
    )
    session.add(clip)
    session.flush()
    queue.defer(
        session,
        name=RENDER_CLIP,
        queue=render_queue(assets.settings),
        payload={"clipId": clip.id},
        dedupe_key=f"clip:{clip.id}",
        priority=parent.priority.rank,
        max_attempts=assets.settings.job_max_attempts,
        tenant=parent.owner_id,
    )
    log.info("clip.created", asset_id=clip.id, parent_id=parent.id, frames=span.out_frame - span.in_frame)
    return clip, span


def render_queue(settings: Settings) -> str:
    """`stages` wherever workers run media work (one machine; Kubernetes with a stage placed on workers);
    else `default`, the one queue every worker runs when all stages are Kubernetes Jobs (a cut is seconds
    of work: boundary GOPs and a copy), rather than a task no one would ever claim."""
    if any(placement(settings, stage) == "worker" for stage in stage_names()):
        return STAGES_QUEUE
    return DEFAULT_QUEUE


_HEADER_TAGS = ("#EXT-X-VERSION", "#EXT-X-TARGETDURATION", "#EXT-X-MAP")  # what a range playlist keeps


@dataclass(frozen=True)
class _MediaSegment:
    start: float  # from the playlist's start
    duration: float
    uri: str

    def overlaps(self, start: float, end: float) -> bool:
        return self.start + self.duration > start + 1e-6 and self.start < end - 1e-6


def range_playlist(media_playlist: str, span: ClipRange, sign: Any) -> tuple[str, float, float]:
    """The segments of one of the parent's media playlists that hold [in, out), every reference signed by
    `sign(name)`; and where in and out fall from the playlist's start (what a player trims to)."""
    lines = [line.strip() for line in media_playlist.splitlines()]
    inside = [segment for segment in _media_segments(lines) if segment.overlaps(span.in_seconds, span.out_seconds)]
    kept = [entry for segment in inside for entry in (f"#EXTINF:{segment.duration:.6f},", sign(segment.uri))]
    start = inside[0].start if inside else 0.0
    offset_in, offset_out = span.in_seconds - start, span.out_seconds - start
    text = ["#EXTM3U", *_header(lines, sign), "#EXT-X-PLAYLIST-TYPE:VOD"]
    text += [f"#EXT-X-START:TIME-OFFSET={offset_in:.6f},PRECISE=YES", *kept, "#EXT-X-ENDLIST"]
    return "\n".join(text) + "\n", round(offset_in, 6), round(offset_out, 6)


def _media_segments(lines: list[str]) -> list[_MediaSegment]:
    """A media playlist's segments (an #EXTINF line, then the segment's URI), each with where it starts."""
    segments: list[_MediaSegment] = []
    position = 0.0
    duration: float | None = None
    for line in lines:
        if line.startswith("#EXTINF:"):
            duration = float(line.split(":", 1)[1].split(",", 1)[0])
        elif line and not line.startswith("#") and duration is not None:
            segments.append(_MediaSegment(position, duration, line))
            position += duration
            duration = None
    return segments


def _header(lines: list[str], sign: Any) -> list[str]:
    """The header tags a range playlist keeps, the initialization segment's URI signed."""
    return [_signed_map(line, sign) for line in lines if line.startswith(_HEADER_TAGS)]


def _signed_map(line: str, sign: Any) -> str:
    if not line.startswith("#EXT-X-MAP:"):
        return line
    uri = line.split('URI="', 1)[1].split('"', 1)[0]
    return line.replace(uri, sign(uri))


def clip_hls_url(parent_id: str, span: ClipRange, assets: AssetService) -> str:
    """The parent's asset-scoped signed HLS URL, for the range playlist route."""
    base = hls_url(parent_id, assets.settings, name=CLIP_PLAYLIST)
    return f"{base}&inFrame={span.in_frame}&outFrame={span.out_frame}"


# --- the render task ------------------------------------------------------------------------------------


def render(ctx: Runtime, run: TaskRun) -> None:
    """Cuts the clip from its parent's source, stores it as the clip's upload, and starts its ingestion."""
    clip_id = str(run.payload["clipId"])
    structlog.contextvars.bind_contextvars(asset_id=clip_id)
    job = _render_job(ctx, clip_id)
    source, target, span = job.source, job.target, job.span
    with tempfile.TemporaryDirectory(prefix="mediaingest-clip-") as folder:
        work = Path(folder)
        local = work / "source"
        ctx.storage.download_file(source[0], source[1], local, etag=source[2])
        rendered = render_clip(
            local, job.metadata, in_frame=int(span["inFrame"]), out_frame=int(span["outFrame"]),
            work_dir=work / "cut", options=PipelineOptions.from_settings(ctx.settings), cancel=run.cancel,
        )  # fmt: skip
        info = ctx.storage.upload_file(target[0], target[1], rendered.path, content_type="video/mp4")
    _confirm_upload(ctx, clip_id, target, info)
    log.info("clip.rendered", asset_id=clip_id, copied=rendered.copied, frames=rendered.plan.frames)


@dataclass(frozen=True)
class _RenderJob:
    metadata: MediaMetadata  # the parent's
    source: tuple[str, str, str | None]  # the parent's bucket, key and etag
    target: tuple[str, str]  # where the clip's upload goes
    span: dict[str, Any]  # the clip's range (`ClipRange.as_json`)


def _render_job(ctx: Runtime, clip_id: str) -> _RenderJob:
    """What the render needs, read in a transaction of its own (none is held while it cuts)."""
    with session_scope(ctx.session_factory) as session:
        clip = session.get(MediaAsset, clip_id)
        if clip is None or clip.parent_id is None or clip.clip is None:
            raise TaskCancelled("the clip was deleted")
        parent = repository.get_owned(session, asset_id=clip.parent_id, owner_id=clip.owner_id, with_details=True)
        if parent is None:
            raise TaskCancelled("the clip's parent was deleted")
        metadata = metadata_of(parent)
        source = (parent.storage_bucket, parent.storage_key, parent.etag)
        target = (clip.storage_bucket, clip.storage_key)
        span = dict(clip.clip)
    assert metadata is not None
    return _RenderJob(metadata, source, target, span)


def _confirm_upload(ctx: Runtime, clip_id: str, target: tuple[str, str], info: ObjectInfo) -> None:
    """The stored clip recorded as the clip's upload, and its ingestion started as a confirmed upload's is."""
    with session_scope(ctx.session_factory) as session:
        clip = repository.get_for_update(session, clip_id)
        if clip is None or clip.upload_status != UploadStatus.PENDING:
            # Deleted (or expired) while it rendered: its bytes must not outlive it.
            ctx.storage.delete(*target)
            raise TaskCancelled("the clip was deleted while it rendered")
        clip.file_size = info.size
        clip.etag = info.etag.strip('"').lower()
        clip.checksum = info.sha256
        clip.upload_status = UploadStatus.UPLOADED
        clip.uploaded_at = utcnow()
        session.flush()
        build_dispatcher(ctx.settings).dispatch(session, clip)  # the same start as a confirmed upload


def _record_failure(session: Session, task: Task, message: str, decision: RetryDecision) -> None:
    """Retries are the task's; the clip shows as failed only when no attempt is left."""
    if decision.retry:
        return
    clip = session.get(MediaAsset, str(task.payload.get("clipId")))
    if clip is not None:
        clip.upload_status = UploadStatus.FAILED
        mark_failed(session, clip, reason=f"the clip could not be cut: {message}")


CLIP_RENDER_TASK = TaskSpec(name=RENDER_CLIP, queue=STAGES_QUEUE, function=render, on_failure=_record_failure)
# (The spec's queue is its usual one; `render_queue` picks where each task is deferred.)
