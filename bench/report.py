"""bench/results/latest.json and latest.md, the targets, and the comparison with the previous run."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

# The targets (ratios measured side by side in the same run).
MAX_OVER_FLOOR = 1.15
MIN_BATCH_RATE_OF_FLOOR = 0.9  # the batch's assets/min at least this share of the floor's (issue 27)
MIN_NAIVE_OVER = {"video/mpeg": 1.4, "video/mp4-1080p": 2.0}
RSS_FLAT_TOLERANCE = 1.15  # peak with the biggest files at most 15 % above the next size down (see targets)


def meta(mode: str) -> dict[str, Any]:
    """Where and what was measured: the commit (and whether src/ had uncommitted changes), the machine."""

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=RESULTS.parent.parent, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = run("git", "rev-parse", "--short", "HEAD")
    # The service runs from this working tree: uncommitted changes under src/ are part of what was measured.
    dirty = [line[3:] for line in run("git", "status", "--porcelain", "--", "src").splitlines()]
    ffmpeg = run("ffmpeg", "-hide_banner", "-version").split("\n")[0].split(" ")[2:3]
    return {
        "mode": mode,
        "commit": commit + ("+uncommitted" if dirty else ""),
        "uncommitted_src": dirty,
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "ffmpeg": ffmpeg[0] if ffmpeg else "?",
        "load_before": round(os.getloadavg()[0], 2),
    }


def _naive_target(source: dict[str, Any]) -> float | None:
    if source["source"].startswith("mpeg2_"):
        return MIN_NAIVE_OVER["video/mpeg"]
    if source["source"].startswith("h264_1080p"):
        return MIN_NAIVE_OVER["video/mp4-1080p"]
    return None


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    checks: list[dict[str, Any]] = []
    for query in results.get("library", {}).get("queries", []):  # bench/library.py judged each against its target
        checks.append(
            {
                "target": f"library: {query['query']} p95 ≤ {query['target_p95_ms']:g} ms",
                "measured": query["p95_ms"],
                "met": query["met"],
            }
        )
    for source in results.get("pipeline", {}).get("sources", []):
        over = source["mediaingest_over_floor"]
        checks.append(
            {
                "target": f"{source['source']}: mediaingest/floor ≤ {MAX_OVER_FLOOR}",
                "measured": over,
                "met": over is not None and over <= MAX_OVER_FLOOR,
            }
        )
        minimum = _naive_target(source)
        if minimum is not None:
            naive = source["naive_over_mediaingest"]
            checks.append(
                {
                    "target": f"{source['source']}: naive/mediaingest ≥ {minimum}",
                    "measured": naive,
                    "met": naive is not None and naive >= minimum,
                }
            )
    uploads = results.get("upload", [])
    for case in uploads:
        checks.append(
            {
                "target": f"upload {case['backend']} {case['clients']}×{case['file_mb']:g} MB: no errors",
                "measured": f"{case['ok']} ok, {case['errors']} errors",
                "met": case["errors"] == 0 and case["ok"] == case["clients"],
            }
        )
    resume = results.get("resume")
    if resume:
        checks.append(
            {
                "target": "a resumed upload sends at most the missing parts plus one",
                "measured": f"at most {resume['extra_parts_worst']} extra over {resume['reps']} runs "
                f"(time resumed/whole {resume['resumed_over_whole_time_median']} "
                f"with {resume['missing_share_median']:.0%} of the parts missing)",
                "met": resume["within_bound"],
            }
        )
    spoken = results.get("transcript")
    if spoken:
        stage, service = spoken["stage"], spoken["service"]
        checks.append(
            {
                "target": f"transcript: ≤ {spoken['target_cpu_per_media_second']} CPU-s per media second",
                "measured": f"{stage['cpu_per_media_second']} ({stage['cpu_s']} CPU-s for {stage['media_seconds']} s)",
                "met": stage["met"],
            }
        )
        checks.append(
            {
                "target": "transcript: first playable unchanged (TRANSCRIBE on at most 10 % later than off)",
                "measured": f"{service['on']['first_playable']} / {service['off']['first_playable']} s "
                f"(×{service['first_playable_on_over_off']})",
                "met": service["first_playable_on_over_off"] <= 1.10,
            }
        )
    batch = results.get("batch")
    if batch:
        overall = batch["overall"]
        mi = overall["mediaingest"]
        checks.append(
            {
                "target": f"batch: assets/min ≥ {MIN_BATCH_RATE_OF_FLOOR} × the floor's",
                "measured": f"{mi['assets_per_min']} / {overall['floor']['assets_per_min']} "
                f"(×{overall['assets_per_min_mi_over_floor']}; CPU-s per asset "
                f"×{overall['cpu_per_asset_mi_over_floor']} the floor's)",
                "met": (overall["assets_per_min_mi_over_floor"] or 0) >= MIN_BATCH_RATE_OF_FLOOR,
            }
        )
        # Both sides are CPU-bound at the same parallelism, so on an idle machine assets/min go as the inverse of
        # CPU-s per asset; on a shared one the wall ratio follows whichever phase met more of others' load.
        limit = round(1 / MIN_BATCH_RATE_OF_FLOOR, 3)
        checks.append(
            {
                "target": f"batch: CPU-s per asset ≤ {limit} × the floor's (the assets/min target, load-independent)",
                "measured": f"{mi['cpu_per_asset']} / {overall['floor']['cpu_per_asset']} "
                f"(×{overall['cpu_per_asset_mi_over_floor']})",
                "met": (overall["cpu_per_asset_mi_over_floor"] or float("inf")) <= limit,
            }
        )
        checks.append(
            {
                "target": "batch: every asset READY",
                "measured": f"{mi['ready']} READY, {mi['failed']} FAILED, {mi['upload_error_count']} upload errors "
                f"of {overall['count']}",
                "met": mi["ready"] == overall["count"],
            }
        )
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for case in uploads:
        if case["service_peak_rss_mib"]:
            groups.setdefault((case["backend"], case["clients"]), []).append(case)
    for (backend, clients), cases in groups.items():
        if len(cases) < 2:
            continue
        cases.sort(key=lambda c: c["file_mb"])
        smallest, biggest = cases[0], cases[-1]
        # Against the largest smaller size of at least 10 MB when there is one: with 1 MB files few
        # streams are in flight at once, so that peak also measures concurrency, not size.
        reference = next((c for c in reversed(cases[:-1]) if c["file_mb"] >= 10), smallest)
        ratio = round(biggest["service_peak_rss_mib"] / reference["service_peak_rss_mib"], 3)
        per_client = (biggest["service_peak_rss_mib"] - smallest["service_peak_rss_mib"]) / clients
        sizes = " / ".join(f"{c['file_mb']:g} MB: {c['service_peak_rss_mib']}" for c in cases)
        checks.append(
            {
                "target": (
                    f"service peak RSS flat in file size ({backend}, {clients} clients: "
                    f"{reference['file_mb']:g} → {biggest['file_mb']:g} MB within ×{RSS_FLAT_TOLERANCE})"
                ),
                "measured": f"{sizes} MiB (×{ratio}; {per_client:+.1f} MiB per client from the smallest)",
                "met": ratio <= RSS_FLAT_TOLERANCE,
            }
        )
    return checks


def _s(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def markdown(results: dict[str, Any], comparison: list[str]) -> str:
    meta = results["meta"]
    lines = [
        f"# mediaingest benchmarks ({meta['mode']})",
        "",
        f"{meta['finished_at']} · commit {meta['commit']} · {meta['cpus']} CPUs · ffmpeg {meta['ffmpeg']} · "
        f"load average {meta['load_before']} before, {meta['load_after']} after · {meta['duration_s']:.0f} s in all",
        "",
    ]
    if meta.get("uncommitted_src"):
        lines += [f"Measured with uncommitted changes to: {', '.join(meta['uncommitted_src'])}.", ""]
    if meta["mode"] == "quick":
        lines += [
            "Quick run: seconds-long sources, where mediaingest's fixed per-asset costs (probe, job hand-offs, "
            "storage copies; about half a second) weigh far more than in the full run, which is what the "
            "targets are meant for.",
            "",
        ]
    pipeline = results.get("pipeline")
    if pipeline:
        service = pipeline["service"]
        lines += [
            "## Ingestion: confirm → READY, against ffmpeg's floor and the naive ladder",
            "",
            f"Service: `{service['command']}` (worker concurrency {service['worker_concurrency']}, idle polling "
            f"{service['worker_poll_interval_seconds']} s), rungs {service['proxy_heights']}, x264 {service['x264']}. "
            "Medians of the repetitions; realtime = media seconds per wall second.",
            "",
            "| source | reps | mediaingest s | floor s | naive s | realtime (mi) | mi/floor | naive/mi "
            "| 1st thumbnail s (mi / floor / naive) | 1st playable s (mi / floor / naive) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
        ]
        for s in pipeline["sources"]:
            mi, fl, nv = s["mediaingest"], s["floor"], s["naive"]
            lines.append(
                f"| {s['source']} | {len(mi['runs'])} | {_s(mi['wall'])} | {_s(fl['wall'])} | {_s(nv['wall'])} "
                f"| {_s(mi['realtime'])} | {_x(s['mediaingest_over_floor'])} | {_x(s['naive_over_mediaingest'])} "
                f"| {_s(mi['first_thumbnail'])} / {_s(fl['first_thumbnail'])} / {_s(nv['first_thumbnail'])} "
                f"| {_s(mi['first_playable'])} / {_s(fl['first_playable'])} / {_s(nv['first_playable'])} |"
            )
        lines += [
            "",
            "CPU seconds (the service's process tree for mediaingest: API, worker and every ffmpeg it ran; the "
            "ffmpeg processes for floor and naive), and the load everything else put on the machine meanwhile "
            "(others' tests share it): ratios of CPU seconds do not move with that load, wall-time ratios do.",
            "",
            "| source | CPU s (mi / floor / naive) | mi/floor CPU | naive/mi CPU "
            "| others' load, cores (mi / floor / naive) |",
            "|---|---|---:|---:|---|",
        ]
        for s in pipeline["sources"]:
            mi, fl, nv = s["mediaingest"], s["floor"], s["naive"]
            lines.append(
                f"| {s['source']} | {_s(mi['cpu'])} / {_s(fl['cpu'])} / {_s(nv['cpu'])} "
                f"| {_x(s['cpu_mediaingest_over_floor'])} | {_x(s['cpu_naive_over_mediaingest'])} "
                f"| {_s(mi['other_load'])} / {_s(fl['other_load'])} / {_s(nv['other_load'])} |"
            )
        lines += [
            "",
            "Where mediaingest's time goes (last repetition; seconds from the confirm request; idle = no job of "
            "the asset running):",
            "",
            "| source | confirm request | " + " | ".join(_JOB_NAMES.values()) + " | idle |",
            "|---|---:|" + "---:|" * len(_JOB_NAMES) + "---:|",
        ]
        for s in pipeline["sources"]:
            run = s["mediaingest"]["runs"][-1]["detail"]
            jobs = {job["type"]: job for job in run["jobs"]}
            cells = [_job_cell(jobs.get(job_type)) for job_type in _JOB_NAMES]
            lines.append(f"| {s['source']} | {_s(run['confirm_request'])} | {' | '.join(cells)} | {_s(run['idle'])} |")
        videos = [s for s in pipeline["sources"] if s["kind"] == "video"]
        if videos:
            lines += [
                "",
                "Playable while ingesting (last repetition, seconds from the confirm request): the first HLS "
                "segment of any rung, then each rung's playlist closed (every segment published).",
                "",
                "| source | first playable | each rung complete |",
                "|---|---:|---|",
            ]
            for s in videos:
                run = s["mediaingest"]["runs"][-1]
                rungs = run["detail"].get("rungs_complete") or {}
                cells = ", ".join(f"{rung} {seconds:.2f}" for rung, seconds in rungs.items()) or "–"
                lines.append(f"| {s['source']} | {_s(run['first_playable'])} | {cells} |")
        lines.append("")
    seeks = results.get("seek")
    if seeks:
        lines += [
            "## Scrubbing: landing on 100 random frames of the lowest rung",
            "",
            "The same rung encoded as before (2 s GOPs, B-frames) and as the scrubbing rung (a closed GOP every "
            "second, no B-frames). Frames decoded to show the target come from the keyframe index (no noise); "
            "the seek time is one ffmpeg process per frame (median), process start included.",
            "",
            "| source | rung | seek ms (before / scrub) | before/scrub | frames decoded mean (before / scrub) "
            "| max | rung MB (before / scrub) |",
            "|---|---|---|---:|---|---|---|",
        ]
        for row in seeks:
            lines.append(
                f"| {row['source']} | {row['rung']} | {row['before_median_ms']} / {row['scrub_median_ms']} "
                f"| {_x(row['seek_ratio'])} | {row['before_decoded_mean']} / {row['scrub_decoded_mean']} "
                f"| {row['before_decoded_max']} / {row['scrub_decoded_max']} "
                f"| {row['before_bytes'] / 1e6:.2f} / {row['scrub_bytes'] / 1e6:.2f} |"
            )
        lines.append("")
    pictures = results.get("timeline")
    if pictures:
        lines += [
            "## Timeline: frames on demand and filmstrips (TimelineService, local backend)",
            "",
            "Frames at 40 random times from the scrubbing rung (640 wide), first made then served again from "
            "storage; the floor is ffmpeg starting and writing one frame of a null source; the naive way is one "
            "ffmpeg input seek into the 1080p source per frame. Filmstrip: 100 tiles 180 high over the whole video "
            "(decoded in one run), and one tile per sprite interval 90 high, cut from the sprite sheets. Milliseconds.",
            "",
            "| source | frame p50 / p95 | cached p50 / p95 | ffmpeg floor | naive frame | filmstrip 100 (cached) "
            "| naive 100 | from sprites (tiles) | clip (s): smart cut / whole encode |",
            "|---|---|---|---:|---:|---|---:|---:|---|",
        ]
        for row in pictures:
            lines.append(
                f"| {row['source']} | {row['uncached_p50_ms']} / {row['uncached_p95_ms']} "
                f"| {row['cached_p50_ms']} / {row['cached_p95_ms']} | {row['ffmpeg_floor_p50_ms']} "
                f"| {row['naive_source_p50_ms']} | {row['filmstrip_100_ms']} ({row['filmstrip_100_cached_ms']}) "
                f"| {row['naive_filmstrip_100_ms']:.0f} | {row['filmstrip_sprites_ms']} ({row['sprites_count']}) "
                f"| {row.get('clip_seconds', '–')}: {row.get('clip_ms', '–')} / {row.get('clip_full_encode_ms', '–')} |"
            )
        lines.append("")
    uploads = results.get("upload")
    if uploads:
        lines += [
            "## Upload load: upload URL → PUT → confirm, concurrent clients",
            "",
            "Service: `mediaingest serve` (no embedded worker), SQLite; S3 = moto server on loopback. "
            "Latencies in seconds; RSS of the service process (VmHWM = peak).",
            "",
            "| backend | clients × file | multipart | ok / errors | uploads/s | requests/s | MB/s "
            "| upload-url p50 / p99 | upload-url req/s | confirm p50 / p99 | confirm req/s "
            "| service RSS before → peak MiB |",
            "|---|---|---|---|---:|---:|---:|---|---:|---|---:|---|",
        ]
        for u in uploads:
            lines.append(
                f"| {u['backend']} | {u['clients']} × {u['file_mb']:g} MB | {'yes' if u['multipart'] else 'no'} "
                f"| {u['ok']} / {u['errors']} | {u['uploads_per_s']} | {u['requests_per_s']} | {u['mb_per_s']} "
                f"| {_s(u['upload_url_p50'], 3)} / {_s(u['upload_url_p99'], 3)} | {u['upload_url_rate']} "
                f"| {_s(u['confirm_p50'], 3)} / {_s(u['confirm_p99'], 3)} | {u['confirm_rate']} "
                f"| {u['service_rss_before_mib']} → {u['service_peak_rss_mib']} |"
            )
        notes = sorted({u["note"] for u in uploads if u["note"]})
        lines += [""] + [f"- {note}" for note in notes] + ([""] if notes else [])
    resume = results.get("resume")
    if resume:
        lines += [
            "## Resumed uploads: the connection drops, the same command runs again",
            "",
            f"{resume['size_mb']} MB, 16 MB parts, local backend, the real client; part PUTs counted on the wire.",
            "",
            "| parts | stored when dropped | missing | resumed run sent | resumed / whole time |",
            "|---:|---:|---:|---:|---:|",
        ]
        for row in resume["rows"]:
            lines.append(
                f"| {row['parts']} | {row['stored_at_interruption']} | {row['missing']} | {row['resumed_puts']} "
                f"| {row['resumed_s']} / {row['whole_s']} s |"
            )
        lines.append("")
    spoken = results.get("transcript")
    if spoken:
        stage, service = spoken["stage"], spoken["service"]
        lines += [
            "## Transcript stage (default model, tiny.en int8)",
            "",
            f"{stage['source']}: {stage['result']}.",
            "",
            "| media s | CPU-s | CPU-s per media s | wall s | × real time | model load (once per process) "
            "| audio visuals CPU-s | decode alone CPU-s | transcript / audio visuals |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
            f"| {stage['media_seconds']} | {stage['cpu_s']} | {stage['cpu_per_media_second']} | {stage['wall_s']} "
            f"| {stage['realtime']} | {stage['model_load_cpu_s']} CPU-s, {stage['model_load_wall_s']} s "
            f"| {stage['audio_visuals_cpu_s']} | {stage['decode_cpu_s']} | {stage['transcript_over_audio_visuals']}× |",
            "",
            f"The service on {service['source']} ({service['reps']} runs each, alternated), confirm → …:",
            "",
            "| TRANSCRIBE | first playable s | READY s | CPU-s |",
            "|---|---:|---:|---:|",
            *(
                f"| {variant} | {service[variant]['first_playable']} | {service[variant]['wall']} "
                f"| {service[variant]['cpu']} |"
                for variant in ("on", "off")
            ),
            "",
        ]
    if results.get("batch"):
        lines += _batch_lines(results["batch"])
    lines += ["## Targets", ""]
    lines += [
        f"- {'met' if c['met'] else '**MISSED**'}: {c['target']} (measured {c['measured']})" for c in results["targets"]
    ]
    if comparison:
        lines += ["", "## Against the previous run", "", *[f"- {line}" for line in comparison]]
    return "\n".join(lines) + "\n"


def _batch_lines(batch: dict[str, Any]) -> list[str]:
    counts = batch["counts"]
    lines = [
        "## Batch: many small assets at once, against the floor",
        "",
        f"{counts['image']} stills (JPEG, HEIC, PNG, 12–48 MP), {counts['video']} phone clips (3–15 s, H.264/HEVC, "
        f"landscape, portrait and rotated, 30/60 fps) and {counts['audio']} voice notes (5–60 s, AAC/Opus), "
        f"scale {batch['scale']:g}, one kind after another. mediaingest: `{batch['service']}`, "
        f"{batch['clients']} clients uploading (upload-url → PUT → confirm) from the first request to the last READY; "
        f"CPU of the service's process tree, which also receives and hashes the uploads. Floor: pipeline.py's "
        f"floor for each asset (one ffmpeg, the same outputs), {batch['worker_concurrency']} at once as the "
        "worker runs stages. TRANSCRIBE=off: the floor is ffmpeg's media work and a transcript is Whisper's, "
        "which the floor cannot do (bench/transcript.py measures that stage). Confirm → READY includes the "
        "wait behind the rest of the batch. The machine is shared: a wall ratio follows how much of others' load "
        "each phase met (last column); the CPU ratio does not, and since both sides are CPU-bound at the same "
        "parallelism, its inverse is what the assets/min ratio would be on an idle machine.",
        "",
        "| kind | assets | GB | assets/min (mi / floor) | mi/floor assets/min | CPU-s per asset (mi / floor) "
        "| mi/floor CPU | confirm→READY p50 / p95 s | READY / FAILED | others' load, cores (mi / floor) |",
        "|---|---:|---:|---|---:|---|---:|---|---|---|",
    ]
    for row in [*batch["kinds"], batch["overall"]]:
        mi, floor = row["mediaingest"], row["floor"]
        lines.append(
            f"| {row['kind']} | {row['count']} | {row['bytes'] / 1e9:.2f} | {mi['assets_per_min']} / "
            f"{floor['assets_per_min']} | {_x(row['assets_per_min_mi_over_floor'])} | {_s(mi['cpu_per_asset'])} / "
            f"{_s(floor['cpu_per_asset'])} | {_x(row['cpu_per_asset_mi_over_floor'])} | "
            f"{_s(mi['confirm_to_ready_p50'])} / {_s(mi['confirm_to_ready_p95'])} | {mi['ready']} / {mi['failed']} "
            f"| {_s(mi['other_load'])} / {_s(floor['other_load'])} |"
        )
    uploaded = ", ".join(f"{row['kind']} {row['mediaingest']['uploads_done_s']:.1f} s" for row in batch["kinds"])
    lines += ["", f"The last upload of each kind was confirmed after: {uploaded} (the rest is processing)."]
    failures = [
        f"{name}: {reason}" for row in batch["kinds"] for name, reason in row["mediaingest"]["failures"].items()
    ]
    return [*lines, "", *[f"- FAILED {failure}" for failure in failures], *([""] if failures else [])]


_JOB_NAMES = {
    "METADATA_EXTRACTION": "probe",
    "PROXY_GENERATION": "proxies",
    "THUMBNAIL_GENERATION": "thumbnails",
    "AUDIO_ANALYSIS": "audio visuals",
    "TRANSCRIPTION": "transcript",
}


def _job_cell(job: dict[str, Any] | None) -> str:
    if job is None or job["started"] is None or job["finished"] is None:
        return "–"
    return f"{job['started']:.2f}→{job['finished']:.2f}"


def _delta(old: float | None, new: float | None, unit: str = "") -> str:
    if old is None or new is None:
        return f"{old} → {new}"
    change = f" ({(new - old) / old:+.0%})" if old else ""
    return f"{old:g}{unit} → {new:g}{unit}{change}"


def compare(previous: dict[str, Any], current: dict[str, Any]) -> list[str]:
    lines = []
    if previous.get("meta", {}).get("mode") != current["meta"]["mode"]:
        lines.append(f"(previous run was {previous.get('meta', {}).get('mode')}, this one {current['meta']['mode']})")
    old_sources = {s["source"]: s for s in previous.get("pipeline", {}).get("sources", [])}
    for source in current.get("pipeline", {}).get("sources", []):
        old = old_sources.get(source["source"])
        if old is None:
            continue
        wall = _delta(old["mediaingest"]["wall"], source["mediaingest"]["wall"], " s")
        lines.append(
            f"{source['source']}: mediaingest {wall}, "
            f"mi/floor {_delta(old['mediaingest_over_floor'], source['mediaingest_over_floor'])}, "
            f"naive/mi {_delta(old['naive_over_mediaingest'], source['naive_over_mediaingest'])}"
        )
    old_batch, new_batch = previous.get("batch"), current.get("batch")
    if old_batch and new_batch and old_batch["scale"] == new_batch["scale"]:
        old, new = old_batch["overall"], new_batch["overall"]
        lines.append(
            f"batch: assets/min {_delta(old['mediaingest']['assets_per_min'], new['mediaingest']['assets_per_min'])}, "
            f"mi/floor {_delta(old['assets_per_min_mi_over_floor'], new['assets_per_min_mi_over_floor'])}, "
            f"CPU-s per asset {_delta(old['mediaingest']['cpu_per_asset'], new['mediaingest']['cpu_per_asset'])}"
        )
    old_uploads = {(u["backend"], u["clients"], u["file_mb"]): u for u in previous.get("upload", [])}
    for upload in current.get("upload", []):
        old = old_uploads.get((upload["backend"], upload["clients"], upload["file_mb"]))
        if old is None:
            continue
        lines.append(
            f"upload {upload['backend']} {upload['clients']}×{upload['file_mb']:g} MB: "
            f"MB/s {_delta(old['mb_per_s'], upload['mb_per_s'])}, "
            f"confirm p99 {_delta(old['confirm_p99'], upload['confirm_p99'], ' s')}, "
            f"errors {old['errors']} → {upload['errors']}, "
            f"peak RSS {_delta(old['service_peak_rss_mib'], upload['service_peak_rss_mib'], ' MiB')}"
        )
    return lines


def result_paths(quick: bool, partial: bool = False, stem: str | None = None) -> tuple[Path, Path]:
    """latest.{json,md} for `make bench`; a quick run has its own pair, so it never replaces the full one,
    and a partial run (--only, --source, --reps, --clients) writes last-partial.* and replaces neither;
    `stem` names a pair of a part's own (batch.*)."""
    stem = stem or ("last-partial" if partial else "latest-quick" if quick else "latest")
    return RESULTS / f"{stem}.json", RESULTS / f"{stem}.md"


def write(
    results: dict[str, Any], *, quick: bool, partial: bool = False, stem: str | None = None
) -> tuple[str, list[str], Path]:
    """Writes the JSON and the Markdown; returns the Markdown, the comparison with the last run and its path.

    The comparison is always against the last complete run of the same mode."""
    latest_json, _ = result_paths(quick, stem=stem)
    results["targets"] = targets(results)
    comparison: list[str] = []
    if latest_json.is_file():
        try:
            comparison = compare(json.loads(latest_json.read_text()), results) or [
                f"(nothing in {latest_json.name} to compare with)"
            ]
        except (ValueError, KeyError, TypeError) as exc:
            comparison = [f"(previous latest.json not comparable: {type(exc).__name__}: {exc})"]
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = markdown(results, comparison)
    out_json, out_md = result_paths(quick, partial, stem)
    # Written under temporary names first: an interrupted run never leaves half a file behind.
    for path, content in ((out_json, json.dumps(results, indent=2) + "\n"), (out_md, text)):
        partial = path.with_suffix(path.suffix + ".tmp")
        partial.write_text(content, encoding="utf-8")
        partial.replace(path)
    return text, comparison, out_md
