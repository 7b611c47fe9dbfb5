"""Running ffmpeg and ffprobe: command building, progress, cancellation and error translation.

This module is the boundary where ffmpeg's exit codes become our error tree:

    exit 0                                   → success
    killed by a signal, or exit 255          → TransientProcessingError   (OOM killer, SIGTERM: retry)
    "No space left on device" and the like   → TransientProcessingError
    ffmpeg rejected our own command          → PermanentProcessingError   (a bug here, not the media)
    any other non-zero exit                  → MediaUnreadableError       (carries ffmpeg's last stderr lines)
    our `cancel` event was set               → StageCancelledError
    our timeout elapsed                      → TransientProcessingError
    out of memory under our address-space cap → MediaTooLargeError         (the same input fails the same way)

Media is never read into Python memory: ffmpeg reads and writes the files itself, and the one stage
that consumes decoded samples (waveform peaks) receives them in chunks through `stdout_sink`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO

from mediaingest.exceptions import (
    MediaTooLargeError,
    MediaUnreadableError,
    PermanentProcessingError,
    ProcessingError,
    TransientProcessingError,
)
from mediaingest.pipeline.types import ProgressCallback

STDERR_TAIL_LINES = 20
_PATH_PREFIX = re.compile(r"^file:.*?: ")
_READ_SIZE = 64 * 1024

# Failures of the machine, not of the media: worth another attempt.
_TRANSIENT_STDERR = re.compile(
    r"No space left on device|Cannot allocate memory|Resource temporarily unavailable|"
    r"Too many open files|received signal",
    re.IGNORECASE,
)
# ffmpeg refusing the command line we built: permanent, but not the uploader's fault.
_COMMAND_STDERR = re.compile(
    r"Unrecognized option|Option not found|No such filter|Error parsing|Invalid stream specifier|"
    r"Unknown encoder|Error splitting the argument list",
    re.IGNORECASE,
)


class StageCancelledError(ProcessingError):
    """The caller set the cancel event (the asset was deleted); ffmpeg was killed and its output is junk."""

    code = "processing_cancelled"


@dataclass(frozen=True)
class FfmpegTools:
    """Where the binaries are (Settings.ffmpeg_path / ffprobe_path), and the memory each may take.

    `memory_limit_bytes` caps each ffmpeg/ffprobe process's address space (RLIMIT_AS, set by util-linux's
    `prlimit` as it execs the tool, so nothing runs between fork and exec in our threaded process). A
    media bomb then fails inside its own process, with a clear error, instead of taking the machine.
    """

    ffmpeg: str = "ffmpeg"
    ffprobe: str = "ffprobe"
    memory_limit_bytes: int | None = None
    # Decoder, filter and encoder threads of each run; None lets ffmpeg count the machine's cores, which in
    # a container are the node's, not the pod's CPU limit (x264 would start 3× more threads, and memory).
    threads: int | None = None

    def run(self, command: FfmpegCommand, **kwargs: Any) -> FfmpegRun:
        """run_ffmpeg(command.argv(self.ffmpeg), **kwargs), under this memory limit and thread count."""
        return run_ffmpeg(
            command.argv(self.ffmpeg, threads=self.threads), memory_limit_bytes=self.memory_limit_bytes, **kwargs
        )

    def probe(self, path: Path | str, **kwargs: Any) -> dict[str, Any]:
        """ffprobe_json with this binary, under this memory limit."""
        return ffprobe_json(path, ffprobe=self.ffprobe, memory_limit_bytes=self.memory_limit_bytes, **kwargs)

    def probe_lines(self, path: Path | str, **kwargs: Any) -> Iterator[str]:
        """ffprobe_lines with this binary, under this memory limit."""
        return ffprobe_lines(path, ffprobe=self.ffprobe, memory_limit_bytes=self.memory_limit_bytes, **kwargs)


def _limited(argv: list[str], memory_limit_bytes: int | None) -> list[str]:
    if not memory_limit_bytes:
        return argv
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        raise PermanentProcessingError("cannot cap ffmpeg's memory: prlimit (util-linux) is not installed")
    return [prlimit, f"--as={memory_limit_bytes}", "--", *argv]


# What a tool capped by RLIMIT_AS says when an allocation fails: a message, or an abort/crash in a
# library that does not check malloc's answer.
_OUT_OF_MEMORY_STDERR = re.compile(
    r"Cannot allocate memory|out of memory|std::bad_alloc|malloc|failed to map segment", re.IGNORECASE
)
_OUT_OF_MEMORY_SIGNALS = frozenset({signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS})


def _out_of_memory(returncode: int, tail: list[str]) -> bool:
    if returncode < 0 and -returncode in _OUT_OF_MEMORY_SIGNALS:
        return True
    return returncode != 0 and bool(_OUT_OF_MEMORY_STDERR.search("\n".join(tail)))


def _check_memory(label: str, returncode: int, tail: list[str], memory_limit_bytes: int | None) -> None:
    """MediaTooLargeError when the tool, run under our memory cap, failed for want of memory."""
    if memory_limit_bytes and _out_of_memory(returncode, tail):
        raise _memory_error(label, memory_limit_bytes, tail)


def _memory_error(label: str, memory_limit_bytes: int, tail: list[str]) -> MediaTooLargeError:
    return MediaTooLargeError(
        f"{label} needs more memory than the stage limit of {memory_limit_bytes // 2**20} MiB: "
        "the media is too large to process (STAGE_MEMORY_LIMIT_MB)",
        details={"stderr": tail},
    )


# --- command building ---------------------------------------------------------------------------

_LEVEL1 = str.maketrans({"\\": "\\\\", "'": "\\'", ":": "\\:"})
_LEVEL2 = str.maketrans({c: "\\" + c for c in "\\'[],;"})


def filter_spec(name: str, *args: object, **kwargs: object) -> str:
    """One filter, e.g. filter_spec("scale", 1280, 720, flags="lanczos") → "scale=1280:720:flags=lanczos".

    Values are escaped for both levels of ffmpeg's filter-graph syntax, so an expression such as
    "min(320,iw)" needs no hand quoting.
    """
    parts = [_escape(value) for value in args]
    parts += [f"{key}={_escape(value)}" for key, value in kwargs.items()]
    return f"{name}={':'.join(parts)}" if parts else name


def _escape(value: object) -> str:
    if isinstance(value, bool):
        value = int(value)
    elif isinstance(value, float):
        value = f"{value:.6g}"
    return str(value).translate(_LEVEL1).translate(_LEVEL2)


@dataclass
class FilterGraph:
    """A -filter_complex built chain by chain: [in]f1,f2[out];…"""

    chains: list[str] = field(default_factory=list)

    def chain(self, inputs: Sequence[str], filters: Sequence[str], outputs: Sequence[str]) -> None:
        pads_in = "".join(f"[{label}]" for label in inputs)
        pads_out = "".join(f"[{label}]" for label in outputs)
        self.chains.append(f"{pads_in}{','.join(filters)}{pads_out}")

    def render(self) -> str:
        return ";".join(self.chains)

    def options(self) -> list[str]:
        """-filter_complex with the graph; nothing for a graph without chains."""
        return ["-filter_complex", self.render()] if self.chains else []


@dataclass
class FfmpegInput:
    path: Path | str  # a Path is a file; a str is passed verbatim (e.g. a lavfi graph with -f lavfi)
    options: list[str] = field(default_factory=list)  # placed before -i (e.g. -ss for a fast seek)


@dataclass
class FfmpegOutput:
    path: Path | str  # a Path is a file; a str is passed verbatim (e.g. "pipe:1")
    options: list[str] = field(default_factory=list)  # -map, codecs, -f …, placed before the path


@dataclass
class FfmpegCommand:
    """One ffmpeg invocation. Stages build these as values, so tests can inspect them without running."""

    inputs: list[FfmpegInput]
    outputs: list[FfmpegOutput]
    filter_graph: FilterGraph | None = None
    global_options: list[str] = field(default_factory=list)

    def argv(self, ffmpeg: str, *, threads: int | None = None) -> list[str]:
        """The command line; `threads` bounds every decoder, the filter graph and every encoder."""
        limit = _thread_limit("-threads", threads)
        args = [ffmpeg, "-y", *self.global_options, *_thread_limit("-filter_complex_threads", threads)]
        for item in self.inputs:
            args += [*limit, *item.options, "-i", _url(item.path)]
        if self.filter_graph is not None:
            args += self.filter_graph.options()
        for out in self.outputs:
            args += [*limit, *out.options, _url(out.path)]
        return args


def _thread_limit(option: str, threads: int | None) -> list[str]:
    return [option, str(threads)] if threads else []


def _url(path: Path | str) -> str:
    """A Path is a local file; a str goes to ffmpeg verbatim ("pipe:1", a lavfi graph)."""
    if isinstance(path, Path):
        # "file:" stops ffmpeg reading "a:b.mp4" as protocol "a", or "-x.mp4" as an option.
        return f"file:{path}"
    return path


# --- running ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FfmpegDeadline:
    """How long a run may take: `base_seconds`, plus `per_media_second` for each second of the media's
    length: the length its header claims, or what ffmpeg has reported decoding (-progress out_time)
    once that is more. Slow but advancing work on long media goes on; a stall, or a run far past what
    its media justifies, ends as a TransientProcessingError."""

    base_seconds: float
    per_media_second: float = 0.0
    claimed_seconds: float = 0.0

    def seconds(self, decoded_seconds: float) -> float:
        return self.base_seconds + self.per_media_second * max(self.claimed_seconds, decoded_seconds)


@dataclass(frozen=True)
class FfmpegRun:
    returncode: int
    stderr_tail: list[str]  # ffmpeg's complaints even on success (e.g. decode errors it skipped)


def run_ffmpeg(
    args: Sequence[str],
    *,
    duration_seconds: float | None,
    on_progress: ProgressCallback | None,
    cancel: threading.Event | None = None,
    timeout: float | FfmpegDeadline | None = None,
    stdout_sink: Callable[[bytes], None] | None = None,
    label: str = "ffmpeg",
    progress_interval: float = 0.25,
    memory_limit_bytes: int | None = None,
) -> FfmpegRun:
    """Run `args` (argv, ffmpeg binary first) and report progress as a fraction of `duration_seconds`.

    Progress comes from `-progress` on a dedicated pipe rather than stdout, so stdout stays free for
    data (`stdout_sink` receives it in chunks). Everything happens on the calling thread: the
    callback, which may touch a database session, is never called from another thread.

    ffmpeg 5.1 prints no progress at all until every output has been initialised by its first frame,
    so an output that gets its only frame at the end (showspectrumpic, a tile filter) silences
    -progress for the whole run. Commands are built to avoid that, or measure progress from the data
    they receive on stdout instead.
    """
    interval = max(progress_interval, 0.05)
    started = time.monotonic()
    proc, progress_r = _start_ffmpeg(args, interval, memory_limit_bytes, with_stdout=stdout_sink is not None)
    reader = _OutputReader(ProgressThrottle(on_progress, label, interval), duration_seconds, stdout_sink)
    deadline = FfmpegDeadline(timeout) if isinstance(timeout, int | float) else timeout

    def stop_reason() -> str | None:
        if cancel is not None and cancel.is_set():
            return "cancelled"
        if deadline is not None and time.monotonic() - started > deadline.seconds(reader.decoded.seconds):
            return "timeout"
        return None

    stopped, returncode = reader.run(proc, progress_r, stop_reason)
    tail = reader.stderr_tail()
    elapsed = time.monotonic() - started
    if stopped == "cancelled":
        raise StageCancelledError(f"{label} cancelled")
    if stopped == "timeout":
        raise TransientProcessingError(f"{label} timed out after {elapsed:.0f} s", details={"stderr": tail})
    _check_memory(label, returncode, tail, memory_limit_bytes)
    if returncode != 0:
        raise _translate_failure(label, returncode, tail)
    reader.throttle.finish()
    return FfmpegRun(returncode=returncode, stderr_tail=tail)


def _start_ffmpeg(
    args: Sequence[str], interval: float, memory_limit_bytes: int | None, *, with_stdout: bool
) -> tuple[subprocess.Popen[bytes], int]:
    """ffmpeg started quiet but for errors, its progress on a pipe of its own; returns the process and the
    pipe's reading end."""
    progress_r, progress_w = os.pipe()
    argv = [
        args[0],
        "-hide_banner",
        "-nostdin",
        "-nostats",
        "-loglevel",
        "error",
        "-stats_period",
        f"{interval:.3f}",
        "-progress",
        f"pipe:{progress_w}",
        *args[1:],
    ]
    try:
        proc = subprocess.Popen(
            _limited(argv, memory_limit_bytes),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if with_stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            pass_fds=(progress_w,),
        )
    except OSError as exc:
        os.close(progress_r)
        raise PermanentProcessingError(f"cannot start ffmpeg: {exc.strerror}") from exc
    finally:
        os.close(progress_w)
    return proc, progress_r


class _OutputReader:
    """Reads a running ffmpeg's three pipes on the calling thread: progress lines to the throttle, stderr's
    last lines kept, stdout's chunks to the sink."""

    def __init__(
        self,
        throttle: ProgressThrottle,
        duration_seconds: float | None,
        stdout_sink: Callable[[bytes], None] | None,
    ) -> None:
        self.throttle = throttle
        self.duration_seconds = duration_seconds
        self.stdout_sink = stdout_sink
        self.decoded = _Decoded()
        self._tail: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._buffers: dict[str, bytes] = {"progress": b"", "stderr": b""}

    def run(
        self, proc: subprocess.Popen[bytes], progress_r: int, stop_reason: Callable[[], str | None]
    ) -> tuple[str | None, int]:
        """Reads until every pipe closes or `stop_reason` gives one (then ffmpeg is killed); returns that
        reason and the exit code."""
        stopped: str | None = None
        with selectors.DefaultSelector() as selector, os.fdopen(progress_r, "rb", buffering=0) as progress:
            self._register(selector, proc, progress)
            try:
                while selector.get_map() and (stopped := stop_reason()) is None:
                    for key, _ in selector.select(timeout=0.2):
                        self._read(selector, key)
            except BaseException:
                _kill(proc)
                raise
            finally:
                if stopped is not None:
                    _kill(proc)
                returncode = _reap(proc)
                _close_pipes(proc)
        return stopped, returncode

    def _register(self, selector: selectors.BaseSelector, proc: subprocess.Popen[bytes], progress: BinaryIO) -> None:
        """The pipes to read, each with what takes its chunks: progress and stderr, and stdout when it has a
        sink."""
        selector.register(progress, selectors.EVENT_READ, self._on_progress)
        assert proc.stderr is not None
        selector.register(proc.stderr, selectors.EVENT_READ, self._on_stderr)
        if self.stdout_sink is not None:
            assert proc.stdout is not None
            selector.register(proc.stdout, selectors.EVENT_READ, self.stdout_sink)

    def _read(self, selector: selectors.BaseSelector, key: selectors.SelectorKey) -> None:
        chunk = os.read(key.fd, _READ_SIZE)
        if chunk:
            key.data(chunk)
        else:
            selector.unregister(key.fileobj)

    def _on_progress(self, chunk: bytes) -> None:
        _feed_progress(self.throttle, self.duration_seconds, self._lines("progress", chunk), self.decoded)

    def _on_stderr(self, chunk: bytes) -> None:
        self._tail.extend(line[:500] for line in self._lines("stderr", chunk) if line.strip())

    def _lines(self, pipe: str, chunk: bytes) -> list[str]:
        """The pipe's lines completed by `chunk`; an unfinished last line waits for the next chunk."""
        lines, rest = _split_lines(self._buffers[pipe] + chunk)
        self._buffers[pipe] = rest[-4096:]  # a line without end must not grow forever
        return lines

    def stderr_tail(self) -> list[str]:
        if self._buffers["stderr"].strip():
            self._tail.append(self._buffers["stderr"].decode(errors="replace")[:500])
        return list(self._tail)


def _split_lines(data: bytes) -> tuple[list[str], bytes]:
    *complete, rest = data.split(b"\n")
    return [line.decode(errors="replace").rstrip("\r") for line in complete], rest


class _ToolsPeak:
    """The largest peak resident size of the tools this process has reaped since `reset()`: what one stage
    attempt's ffmpeg and ffprobe runs took at most (a warm stage process runs many attempts, and the kernel's
    RUSAGE_CHILDREN keeps only its lifetime's largest)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._bytes = 0

    def reset(self) -> None:
        with self._lock:
            self._bytes = 0

    def note(self, peak_bytes: int) -> None:
        with self._lock:
            self._bytes = max(self._bytes, peak_bytes)

    @property
    def bytes(self) -> int:
        return self._bytes


TOOLS_PEAK = _ToolsPeak()


def _reap(proc: subprocess.Popen[bytes]) -> int:
    """`proc.wait()`, reading the tool's own peak resident size as the kernel reaps it (`wait4`). A tool
    already reaped (killed on a stop: `poll` reaps) is not counted."""
    if proc.returncode is None:
        with contextlib.suppress(ChildProcessError):
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            TOOLS_PEAK.note(usage.ru_maxrss * 1024)  # Linux reports KiB
    return proc.wait()


def _close_pipes(proc: subprocess.Popen[bytes]) -> None:
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


def _kill(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()


def _translate_failure(label: str, returncode: int, tail: list[str]) -> ProcessingError:
    details: dict[str, Any] = {"returncode": returncode, "stderr": tail}
    reason = _reason(tail)
    stderr = "\n".join(tail)
    if returncode < 0:
        name = _signal_name(-returncode)
        return TransientProcessingError(f"{label} was killed by {name}", details=details)
    # ffmpeg exits 255 after catching SIGINT/SIGTERM ("Exiting normally, received signal 15").
    if returncode == 255 or _TRANSIENT_STDERR.search(stderr):
        return TransientProcessingError(f"{label} was interrupted: {reason}", details=details)
    if _COMMAND_STDERR.search(stderr):
        return PermanentProcessingError(f"{label} rejected its command: {reason}", details=details)
    return MediaUnreadableError(f"{label} cannot process the media: {reason}", details=details)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


class ProgressThrottle:
    """Throttled, strictly increasing progress fractions that end at exactly 1.0.

    Below 1.0 until `finish()`: only a successful end may claim completion.
    """

    def __init__(self, callback: ProgressCallback | None, label: str, interval: float = 0.25) -> None:
        self.callback = callback
        self.label = label
        self.interval = interval
        self.last_fraction = 0.0
        self.last_report = 0.0

    def update(self, fraction: float) -> None:
        if self.callback is None:
            return
        fraction = min(fraction, 0.99)
        now = time.monotonic()
        if fraction > self.last_fraction and now - self.last_report >= self.interval:
            self.last_fraction, self.last_report = fraction, now
            self.callback(fraction, f"{self.label} {fraction:.0%}")

    def finish(self) -> None:
        if self.callback is not None:
            self.callback(1.0, f"{self.label} done")


@dataclass
class _Decoded:
    seconds: float = 0.0  # the furthest out_time ffmpeg reported


def _feed_progress(throttle: ProgressThrottle, duration: float | None, lines: Iterable[str], decoded: _Decoded) -> None:
    """-progress blocks: out_time_us against the expected duration."""
    for line in lines:
        key, _, value = line.partition("=")
        if key == "out_time_us" and value.strip().isdigit():
            decoded.seconds = max(decoded.seconds, int(value) / 1_000_000)
            if duration and duration > 0:
                throttle.update(decoded.seconds / duration)


def require_output(path: Path) -> None:
    """ffmpeg can exit 0 without writing an output (a seek past the end, a branch that got no frame)."""
    if not path.is_file() or path.stat().st_size == 0:
        raise ProcessingError(f"ffmpeg finished but wrote no {path.name}")


# --- ffprobe ------------------------------------------------------------------------------------


def ffprobe_json(
    path: Path | str,
    *,
    ffprobe: str = "ffprobe",
    extra_args: Sequence[str] = ("-show_format", "-show_streams"),
    timeout: float = 120.0,
    memory_limit_bytes: int | None = None,
) -> dict[str, Any]:
    """ffprobe's JSON for `path`; MediaUnreadableError with ffprobe's own reason if it cannot read it."""
    argv = [ffprobe, "-hide_banner", "-v", "error", "-print_format", "json", *extra_args, _url(Path(path))]
    with _running_ffprobe(argv, timeout=timeout, memory_limit_bytes=memory_limit_bytes) as stdout:
        output = stdout.read()
    try:
        data = json.loads(output)
    except ValueError as exc:
        raise MediaUnreadableError("ffprobe returned no usable description of the media") from exc
    return data if isinstance(data, dict) else {}


def ffprobe_lines(
    path: Path | str,
    *,
    ffprobe: str = "ffprobe",
    args: Sequence[str],
    timeout: float | Callable[[], float],
    memory_limit_bytes: int | None = None,
) -> Iterator[str]:
    """ffprobe's output line by line as it reads (a packet list of a ten-hour file is never held whole);
    failures as in ffprobe_json, raised once the output ends. `timeout` may be a function, asked again
    as the read goes on: a deadline that follows a duration learnt meanwhile."""
    argv = [ffprobe, "-hide_banner", "-v", "error", *args, _url(Path(path))]
    with _running_ffprobe(argv, timeout=timeout, memory_limit_bytes=memory_limit_bytes) as stdout:
        for line in stdout:
            yield line.decode(errors="replace").strip()


@contextmanager
def _running_ffprobe(
    argv: list[str], *, timeout: float | Callable[[], float], memory_limit_bytes: int | None
) -> Iterator[IO[bytes]]:
    """ffprobe running, its stdout to read; on leaving, it is reaped (its peak counted) and its failure —
    a timeout, a kill, an exit code — raised, unless the reader's own exception is on its way."""
    with tempfile.TemporaryFile() as stderr:
        try:
            proc = subprocess.Popen(
                _limited(argv, memory_limit_bytes), stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL
            )
        except OSError as exc:
            raise PermanentProcessingError(f"cannot start ffprobe: {exc.strerror}") from exc
        timed_out, done = threading.Event(), threading.Event()
        started = time.monotonic()

        def limit() -> float:
            return timeout() if callable(timeout) else timeout

        def watch() -> None:
            while not done.wait(max(0.01, min(1.0, started + limit() - time.monotonic()))):
                if time.monotonic() - started >= limit():
                    timed_out.set()
                    _kill(proc)
                    return

        watcher = threading.Thread(target=watch, name="ffprobe-deadline", daemon=True)
        watcher.start()
        try:
            assert proc.stdout is not None
            yield proc.stdout
            returncode = _reap(proc)
        finally:
            done.set()
            _kill(proc)
            _close_pipes(proc)
        if timed_out.is_set():
            raise TransientProcessingError(f"ffprobe timed out after {limit():.0f} s")
        stderr.seek(0)
        _check_ffprobe_exit(returncode, stderr.read(), memory_limit_bytes)


def _check_ffprobe_exit(returncode: int, stderr_bytes: bytes, memory_limit_bytes: int | None) -> None:
    stderr = stderr_bytes.decode(errors="replace").strip().splitlines()[-STDERR_TAIL_LINES:]
    _check_memory("ffprobe", returncode, stderr, memory_limit_bytes)
    if returncode != 0:
        if returncode < 0:
            raise TransientProcessingError(
                f"ffprobe was killed by {_signal_name(-returncode)}", details={"stderr": stderr}
            )
        raise MediaUnreadableError(
            f"ffprobe cannot read the media: {_reason(stderr)}", details={"stderr": stderr, "returncode": returncode}
        )


def _reason(tail: Sequence[str]) -> str:
    """The most telling stderr line, without the temp path (it means nothing to a client)."""
    lines = [line for line in tail if line.strip() not in ("", "Conversion failed!")]
    if not lines:
        return "no error output"
    return _PATH_PREFIX.sub("", lines[-1]).strip()
