"""python -m bench [--quick] [--only pipeline|seek|upload|resume|transcript|library|batch] [--reps N] [--clients N]
[--batch-scale F]; `python -m bench batch [--batch-scale F]` is `--only batch`.

`make bench` runs the full set: about 15 minutes on 2 cores, 12.5 once the sources are cached (over
the 10 the issue asked for: the three approaches on the issue's own sources take 9.3 minutes alone),
plus the batch of 500 assets (bench/batch.py), itself the better part of an hour on 2 cores;
`make bench-quick` seconds-long sources, fewer repetitions and clients, a tenth of the batch.
A batch run alone (`make bench-batch`, at any scale) writes bench/results/batch.{json,md}.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

from bench import batch, library, pipeline, report, resume, seek, timeline, transcript, upload_load
from bench.sources import Source, ensure_sources
from bench.upload_load import MB, LoadCase

# Repetitions per source when --reps is not given. Full mode: one 60 s 1080p source costs ~3 minutes
# for the three approaches on 2 cores, so the long video cases run once and the short ones (WAV,
# JPEG: seconds each) five times; a long run averages scheduler noise over itself, a short one cannot.
FULL_REPS = {"video": 1, "audio": 5, "image": 5}
QUICK_REPS = {"video": 1, "audio": 2, "image": 2}


def _upload_cases(quick: bool, clients: int | None) -> list[LoadCase]:
    many = clients or (10 if quick else 50)
    big = (110 if quick else 200) * MB  # above the 100 MB multipart threshold either way
    # moto assembles a multipart upload in memory twice over (a bytearray, then bytes): 50 × 200 MB
    # completing at once would need ~20 GB on this shared machine, so its big-file case has fewer clients
    # (the service never holds S3 bytes, so its RSS is not what that case can show anyway).
    s3_big = min(many, 4 if quick else 10)
    moto_note = (
        f"S3 with big files: {s3_big} clients, not {many}: moto (a test double, in one Python process) "
        "builds each completed multipart object in memory twice; its MB/s measures moto, not S3."
    )
    # A middle size too: with 1 MB files few streams overlap, so the peak with big files also holds more
    # streams in flight at once; 20 MB → 200 MB shows whether the peak follows the file size.
    mid = (10 if quick else 20) * MB
    cases = [
        LoadCase("local", 1 * MB, many),
        LoadCase("local", mid, many),
        LoadCase("local", big, many),
    ]
    if not quick:  # quick: S3 at the big-file concurrency only (the full run has the 50-client case)
        cases.append(LoadCase("s3", 1 * MB, many))
    if s3_big != many:
        cases.append(LoadCase("s3", 1 * MB, s3_big, note="S3 1 MB at the big-file case's concurrency, for its RSS"))
    cases.append(LoadCase("s3", big, s3_big, note=moto_note))
    return cases


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short sources, fewer repetitions and clients")
    parts = ["pipeline", "seek", "timeline", "upload", "resume", "transcript", "library", "batch"]
    parser.add_argument("part", nargs="?", choices=parts, help="the same as --only PART")
    parser.add_argument("--only", choices=parts, help="run one part only")
    parser.add_argument("--reps", type=int, help="repetitions of every pipeline case (default: by media kind)")
    parser.add_argument("--clients", type=int, help="concurrent upload clients (default 50, quick 10)")
    parser.add_argument("--source", action="append", help="only sources whose name starts with this (repeatable)")
    parser.add_argument(
        "--batch-scale",
        type=float,
        help="the batch's counts × F (default 1: 300 stills, 100 clips, 100 voice notes; quick 0.1)",
    )
    args = parser.parse_args(argv)
    if args.part and args.only and args.part != args.only:
        parser.error("give the part once")
    args.only = args.only or args.part
    batch_scale = args.batch_scale or (0.1 if args.quick else 1.0)

    def log(line: str) -> None:
        print(line, flush=True)

    started = time.monotonic()
    mode = "quick" if args.quick else "full"
    results: dict[str, Any] = {"meta": report.meta(mode)}
    if args.only in (None, "pipeline", "seek", "timeline"):
        log("sources:")
        sources = ensure_sources(args.quick)
        if args.source:
            sources = [s for s in sources if any(s.name.startswith(prefix) for prefix in args.source)]
    if args.only in (None, "seek"):
        log("scrubbing (100 random frames of the lowest rung, before → scrubbing rung):")
        results["seek"] = seek.run(sources, log)
    if args.only in (None, "timeline"):
        log("timeline (frames on demand, filmstrips):")
        results["timeline"] = timeline.run(sources, log)
    if args.only in (None, "pipeline"):
        default_reps = QUICK_REPS if args.quick else FULL_REPS

        def reps(source: Source) -> int:
            return args.reps or default_reps[source.kind]

        log("pipeline (confirm → READY | one ffmpeg | one ffmpeg per output):")
        results["pipeline"] = pipeline.run(sources, reps=reps, log=log)
    if args.only in (None, "upload"):
        log("upload load:")
        results["upload"] = upload_load.run(_upload_cases(args.quick, args.clients), log)
    if args.only in (None, "resume"):
        log("resumed uploads (dropped at 40 % of the bytes, then run again):")
        size = (160 if args.quick else 480) * MB
        results["resume"] = resume.run(size=size, reps=3 if args.quick else 5, drop_at=0.4, log=log)
    if args.only in (None, "transcript"):
        results["transcript"] = transcript.run(args.quick, log)
    if args.only in (None, "library"):
        results["library"] = library.run(log, reps=50 if args.quick else 200)
        library.write(results["library"], results["meta"])  # also on its own, as `make bench-library` leaves it
    if args.only in (None, "batch"):
        results["batch"] = batch.run(batch_scale, log)
    results["meta"] |= {
        "load_after": round(os.getloadavg()[0], 2),
        "duration_s": round(time.monotonic() - started, 1),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    partial = bool(args.only or args.source or args.reps or args.clients or args.batch_scale)
    # The batch alone has a pair of its own (its scale is in it), so it replaces neither latest.* nor last-partial.*
    stem = "batch" if args.only == "batch" else None
    text, comparison, path = report.write(results, quick=args.quick, partial=partial, stem=stem)
    log("")
    log(text)
    if not comparison:
        log("(no previous run to compare against)")
    log(f"written: {path} and {path.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
