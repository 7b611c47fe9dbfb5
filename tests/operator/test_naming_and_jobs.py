"""Deterministic names and the pure Job builder, validated against the official Kubernetes schemas."""

from __future__ import annotations

import re

import pytest

from mediaingest.models.enums import JobPriority, MediaType, Stage
from mediaingest.operator import naming
from mediaingest.operator.jobs import PERMANENT_EXIT_CODE, build_stage_job, build_token_secret, observe_job
from mediaingest.operator.model import AssetSpec, JobState
from mediaingest.operator.settings import OperatorSettings, StageConfig
from mediaingest.pipeline.registry import stage_names
from mediaingest.stage_reports import tokens

DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")


def test_asset_resource_name_is_deterministic_and_a_dns_label() -> None:
    asset_id = "0b5b4a3e-1111-2222-3333-444455556666"
    assert naming.asset_resource_name(asset_id) == f"asset-{asset_id}"
    assert naming.asset_resource_name(asset_id) == naming.asset_resource_name(asset_id)
    for odd in ("ABC_def", "x" * 80, "--weird..id--"):
        name = naming.asset_resource_name(odd)
        assert DNS_LABEL.match(name) and len(name) <= 63, name
    assert naming.asset_resource_name("ABC_def") != naming.asset_resource_name("abc-def")


@pytest.mark.parametrize("stage", stage_names())
@pytest.mark.parametrize("attempt", [1, 9, 123])
def test_job_names_fit_63_characters_and_stay_distinct(stage: Stage, attempt: int) -> None:
    for asset_name in ("asset-0b5b4a3e-1111-2222-3333-444455556666", "asset-" + "a" * 57):
        name = naming.job_name(asset_name, stage, attempt)
        assert len(name) <= 63 and DNS_LABEL.match(name), name
        assert name.endswith(f"-{naming.stage_slug(stage)}-{attempt}")
        assert name != naming.job_name(asset_name, stage, attempt + 1)
    long_a, long_b = "asset-" + "a" * 57, "asset-" + "a" * 56 + "b"
    assert naming.job_name(long_a, stage, attempt) != naming.job_name(long_b, stage, attempt)


@pytest.mark.parametrize("owner", ["user-1", "auth0|5f1c2b", "someone@example.com", "x" * 100, "|||"])
def test_label_values_are_valid_and_distinct(owner: str) -> None:
    value = naming.label_value(owner)
    assert len(value) <= 63 and LABEL_VALUE.match(value), value
    assert naming.label_value(owner + "!") != value


def test_stage_job_for_every_stage_is_a_valid_hardened_job(
    asset_factory, operator_settings: OperatorSettings, kube_validate
) -> None:
    asset = asset_factory(owner="auth0|tenant-7")
    for stage in stage_names():
        job = build_stage_job(
            asset=asset,
            asset_name=naming.asset_resource_name(asset.asset_id),
            namespace="media",
            stage=stage,
            attempt=2,
            settings=operator_settings,
        )
        kube_validate(job)
        spec = job["spec"]
        pod = spec["template"]["spec"]
        (container,) = pod["containers"]
        config = operator_settings.stages[stage]
        assert job["metadata"]["name"] == naming.job_name(naming.asset_resource_name(asset.asset_id), stage, 2)
        assert spec["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
        assert spec["activeDeadlineSeconds"] == config.active_deadline_seconds
        assert spec["ttlSecondsAfterFinished"] == operator_settings.ttl_seconds_after_finished
        assert container["command"] + container["args"] == [
            "mediaingest",
            "run-stage",
            "--asset",
            asset.asset_id,
            "--stage",
            stage,
            "--attempt",
            "2",
        ]
        assert container["image"] == "registry.example/mediaingest:1.2.3"
        assert container["resources"] == {"requests": config.requests, "limits": config.limits}
        assert "ephemeral-storage" in container["resources"]["requests"]
        assert pod["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": config.scratch_size_limit}}]
        assert {"name": "WORK_DIR", "value": "/scratch"} in container["env"]
        # run-stage writes a failure's reason where Kubernetes reads the termination message.
        path = container["terminationMessagePath"]
        assert {"name": "TERMINATION_MESSAGE_PATH", "value": path} in container["env"]
        # The release's settings and the attempt's token; no Secret, so no database or storage credentials.
        assert container["envFrom"] == [{"configMapRef": {"name": "mediaingest"}}]
        assert {"name": "STAGE_API_URL", "value": operator_settings.stage_api_url} in container["env"]
        # The token from the attempt's own Secret (named like the Job), readable by the pod only.
        [token] = [item for item in container["env"] if item["name"] == "STAGE_TOKEN"]
        assert token == {
            "name": "STAGE_TOKEN",
            "valueFrom": {"secretKeyRef": {"name": job["metadata"]["name"], "key": "STAGE_TOKEN"}},
        }
        secret = build_token_secret(asset=asset, asset_name=naming.asset_resource_name(asset.asset_id),
                                    namespace="media", stage=stage, attempt=2, settings=operator_settings)  # fmt: skip
        kube_validate(secret)
        assert secret["metadata"]["name"] == job["metadata"]["name"] and secret["type"] == "Opaque"
        claims = tokens.verify(operator_settings.stage_token_secret(), secret["stringData"]["STAGE_TOKEN"])
        assert (claims.asset_id, claims.owner_id, claims.stage, claims.attempt) == (
            asset.asset_id,
            asset.owner,
            stage,
            2,
        )
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] and security["runAsNonRoot"]
        assert security["capabilities"] == {"drop": ["ALL"]} and not security["allowPrivilegeEscalation"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False
        fail_job = spec["podFailurePolicy"]["rules"][0]
        assert fail_job["action"] == "FailJob" and fail_job["onExitCodes"]["values"] == [PERMANENT_EXIT_CODE]
        labels = job["metadata"]["labels"]
        assert labels[naming.LABEL_STAGE] == stage and labels[naming.LABEL_ATTEMPT] == "2"
        assert labels[naming.LABEL_TENANT] == naming.label_value("auth0|tenant-7")
        assert all(len(value) <= 63 and LABEL_VALUE.match(value) for value in labels.values())
        assert spec["template"]["metadata"]["labels"] == labels


def test_stage_job_options_from_settings(asset_factory, kube_validate) -> None:
    settings = OperatorSettings(
        stages={"proxies": {"requests": {"cpu": "8", "memory": "16Gi"}, "activeDeadlineSeconds": 42}},
        job_service_account="media-jobs",
        image_pull_secrets=["regcred"],
        node_selector={"pool": "transcode"},
        tolerations=[{"key": "transcode", "operator": "Exists", "effect": "NoSchedule"}],
        priority_class_names={"URGENT": "media-urgent"},
        job_config_map_name="cfg",
    )
    asset = asset_factory(priority=JobPriority.URGENT)
    job = build_stage_job(
        asset=asset,
        asset_name="asset-x",
        namespace="ns",
        stage=Stage("proxies"),
        attempt=1,
        settings=settings,
    )
    kube_validate(job)
    pod = job["spec"]["template"]["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 42
    assert pod["containers"][0]["resources"]["requests"] == {"cpu": "8", "memory": "16Gi"}
    # Keys not given keep the stage's defaults.
    assert pod["volumes"][0]["emptyDir"]["sizeLimit"] == "20Gi"
    assert pod["serviceAccountName"] == "media-jobs" and pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"pool": "transcode"} and pod["priorityClassName"] == "media-urgent"
    assert pod["containers"][0]["envFrom"] == [{"configMapRef": {"name": "cfg"}}]
    assert isinstance(settings.stages[Stage("probe")], StageConfig)


def _job(conditions=None, **status):
    return {
        "metadata": {
            "name": "asset-a-probe-1",
            "labels": {naming.LABEL_STAGE: "probe", naming.LABEL_ATTEMPT: "1", naming.LABEL_TENANT: "t"},
        },
        "status": {**status, **({"conditions": conditions} if conditions else {})},
    }


def test_observe_job_reads_state_from_conditions() -> None:
    running = observe_job(_job(active=1, startTime="2030-01-01T00:00:00Z"))
    assert running is not None and running.state == JobState.ACTIVE and running.started_at == "2030-01-01T00:00:00Z"
    done = observe_job(
        _job(
            [{"type": "Complete", "status": "True", "lastTransitionTime": "2030-01-01T00:01:00Z"}],
            succeeded=1,
            completionTime="2030-01-01T00:01:00Z",
        )
    )
    assert done is not None and done.state == JobState.SUCCEEDED and done.finished_at == "2030-01-01T00:01:00Z"
    failed = observe_job(
        _job(
            [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "PodFailurePolicy",
                    "message": "exit code 3",
                    "lastTransitionTime": "2030-01-01T00:02:00Z",
                }
            ],
            failed=1,
        )
    )
    assert failed is not None and failed.state == JobState.FAILED
    assert (failed.reason, failed.message, failed.finished_at) == (
        "PodFailurePolicy",
        "exit code 3",
        "2030-01-01T00:02:00Z",
    )
    # A FailureTarget condition alone (pods still terminating) is not the end yet.
    terminating = observe_job(_job([{"type": "FailureTarget", "status": "True"}], active=1))
    assert terminating is not None and terminating.state == JobState.ACTIVE
    assert observe_job({"metadata": {"name": "foreign", "labels": {}}}) is None


def test_asset_spec_round_trip_and_rejects_bad_specs() -> None:
    asset = AssetSpec(
        asset_id="a1",
        owner="o",
        media_type=MediaType.AUDIO,
        bucket="b",
        key="k",
        size=3,
        priority=JobPriority.HIGH,
        stages=(Stage("probe"), Stage("audio_visuals")),
    )
    assert AssetSpec.from_spec(asset.to_spec()) == asset
    for broken in (
        {**asset.to_spec(), "stages": []},
        {**asset.to_spec(), "stages": ["probe", "probe"]},
        {**asset.to_spec(), "mediaType": "HOLOGRAM"},
        {"assetId": "a1"},
    ):
        with pytest.raises(ValueError, match="invalid MediaAsset spec"):
            AssetSpec.from_spec(broken)
