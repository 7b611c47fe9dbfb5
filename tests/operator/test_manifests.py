"""Every manifest against the official Kubernetes schemas (kubernetes-validate, strict), and the
chart linted and rendered by a real helm with default and non-default values."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from fixtures.chart import CHART_DIR, DATABASE_URL, by_kind, env_of, render, run_helm
from mediaingest.models.enums import JobPriority, MediaType, Stage
from mediaingest.operator.jobs import build_stage_job
from mediaingest.operator.model import AssetSpec
from mediaingest.operator.settings import OperatorSettings
from mediaingest.pipeline.registry import stage_names

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "mediaasset.yaml"
CHART_CRD_PATH = CHART_DIR / "files" / "crds" / "mediaasset.yaml"
# Kinds the official schemas do not cover; checked by hand below.
THIRD_PARTY = {"ScaledObject", "ServiceMonitor"}
PEERING_SCHEMA = {
    **yaml.safe_load((REPO / "crds" / "kopfpeering.yaml").read_text())["spec"]["versions"][0]["schema"][
        "openAPIV3Schema"
    ],
    "required": ["apiVersion", "kind", "metadata"],
}

CUSTOM_VALUES = {
    "fullnameOverride": "media",
    "image": {"repository": "registry.example/media/mediaingest", "tag": "2.0.0", "pullPolicy": "Always"},
    "imagePullSecrets": ["regcred"],
    "crd": {"install": True, "keep": False},
    "extraConfig": {"PROXY_HEIGHTS": "[360, 720]"},
    "secret": {"existingSecret": "media-credentials"},
    "api": {"autoscaling": {"enabled": True}, "nodeSelector": {"pool": "web"}, "migrations": False},
    "operator": {"maxRunningJobs": 50, "maxRunningJobsPerTenant": 3, "maxAttempts": 6, "reconcileIntervalSeconds": 2},
    "jobs": {
        "ttlSecondsAfterFinished": 600,
        "nodeSelector": {"pool": "transcode"},
        "tolerations": [{"key": "transcode", "operator": "Exists", "effect": "NoSchedule"}],
        "priorityClassNames": {"URGENT": "media-urgent"},
        "stages": {
            "proxies": {
                "requests": {"cpu": "6", "memory": "8Gi", "ephemeral-storage": "50Gi"},
                "limits": {"cpu": "8", "memory": "12Gi", "ephemeral-storage": "55Gi"},
                "scratchSizeLimit": "50Gi",
                "activeDeadlineSeconds": 21600,
            }
        },
    },
    "keda": {
        "enabled": True,
        "triggers": [
            {
                "type": "prometheus",
                "metadata": {
                    "serverAddress": "http://prometheus:9090",
                    "threshold": "5",
                    "query": 'sum(mediaingest_operator_stage_assets{state="pending"})',
                },
            }
        ],
    },
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "networkPolicy": {"enabled": True, "extraStageEgress": [{"ports": [{"protocol": "TCP", "port": 9000}]}]},
    "serviceAccount": {"jobs": {"annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/stages"}}},
}


# --- the CRD ---------------------------------------------------------------------------------------


def test_crd_is_valid_and_the_chart_carries_an_identical_copy(kube_validate) -> None:
    crd = load_crd()
    kube_validate(crd)
    assert CHART_CRD_PATH.read_bytes() == CRD_PATH.read_bytes(), "run `make crd-sync`"
    peering = REPO / "crds" / "kopfpeering.yaml"
    kube_validate(yaml.safe_load(peering.read_text()))
    assert (CHART_DIR / "files" / "crds" / "kopfpeering.yaml").read_bytes() == peering.read_bytes(), "make crd-sync"
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    assert "ma" in crd["spec"]["names"]["shortNames"]
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert (
        list(columns)[:4] == ["Type", "Phase", "Stage", "Progress"] and columns["Age"] == ".metadata.creationTimestamp"
    )
    schema = version["schema"]["openAPIV3Schema"]
    for path in columns.values():
        node = schema
        for part in path.strip(".").split("."):
            if part != "creationTimestamp":
                node = node["properties"][part]
    assert set(schema["properties"]["spec"]["properties"]["stages"]["items"]["enum"]) == set(stage_names())


def test_schema_validators_are_not_vacuous(validate_status, validate_resource, kube_validate) -> None:
    with pytest.raises(AssertionError, match="Additional properties"):
        validate_status({"phase": "Running", "kopf": {"progress": {}}})  # would be pruned by the API server
    with pytest.raises(AssertionError, match="is not one of"):
        validate_status({"phase": "Done"})
    with pytest.raises(AssertionError, match="date-time"):
        validate_status({"stages": {"probe": {"phase": "Running", "attempts": 1, "startedAt": "yesterday"}}})
    with pytest.raises(AssertionError, match="assetId"):
        validate_resource(
            {
                "spec": {
                    "assetId": "not/a/label",
                    "owner": "o",
                    "mediaType": "VIDEO",
                    "source": {"bucket": "b", "key": "k"},
                    "stages": ["probe"],
                }
            }
        )
    job = build_stage_job(
        asset=_asset(),
        asset_name="asset-a",
        namespace="ns",
        stage=Stage("probe"),
        attempt=1,
        settings=OperatorSettings(),
    )
    job["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    with pytest.raises(AssertionError, match="bogus"):
        kube_validate(job)


def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def _asset() -> AssetSpec:
    return AssetSpec(
        asset_id="a1",
        owner="o",
        media_type=MediaType.VIDEO,
        bucket="b",
        key="k",
        size=1,
        priority=JobPriority.NORMAL,
        stages=tuple(stage_names()),
    )


def test_dispatcher_manifest_matches_the_crd(validate_resource) -> None:
    from mediaingest.operator.dispatcher import build_media_asset

    body = build_media_asset(
        namespace="media",
        asset_id="0b5b4a3e-1111-2222-3333-444455556666",
        owner_id="auth0|abc",
        media_type="IMAGE",
        bucket="incoming",
        key="u/x.png",
        size=9,
        priority="LOW",
        stages=[Stage("probe"), Stage("thumbnails")],
    )
    validate_resource(body)
    assert body["metadata"]["name"] == "asset-0b5b4a3e-1111-2222-3333-444455556666"
    assert body["spec"]["stages"] == ["probe", "thumbnails"]


# --- the chart -------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, CUSTOM_VALUES], ids=["defaults", "custom"])
def test_chart_lints_and_renders_valid_manifests(
    helm: Path, tmp_path: Path, kube_validate, values, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["lint", "--strict", str(CHART_DIR)]
    if values is not None:
        (tmp_path / "lint.yaml").write_text(yaml.safe_dump(values))
        args += ["--values", str(tmp_path / "lint.yaml")]
    lint = run_helm(helm, *args)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    docs = render(helm, tmp_path, values)
    for doc in docs:
        if doc["kind"] == "KopfPeering":  # against its CRD's schema, which the chart installs beside ours
            jsonschema.validate(doc, PEERING_SCHEMA)
        elif doc["kind"] not in THIRD_PARTY:
            kube_validate(doc)
    kinds = sorted(doc["kind"] for doc in docs)
    assert {
        "ConfigMap",
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "Service",
        "ServiceAccount",
    } <= set(kinds)

    (operator,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    # Peering keeps one operator working, so an update may overlap old and new.
    assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"]["type"] == "RollingUpdate"
    (peering,) = by_kind(docs, "KopfPeering")
    assert (
        env_of(operator["spec"]["template"]["spec"]["containers"][0])["OPERATOR_PEERING_NAME"]
        == (peering["metadata"]["name"])
    )
    assert {crd["metadata"]["name"] for crd in by_kind(docs, "CustomResourceDefinition")} == {
        "mediaassets.mediaingest.io",
        "kopfpeerings.kopf.dev",
    }
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["python", "-m", "mediaingest.operator"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # The operator's environment, as rendered, is what OperatorSettings reads: check it parses into
    # the values given, and that the Jobs built from it are valid.
    for name, value in env_of(container).items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    for stage in stage_names():
        kube_validate(
            build_stage_job(
                asset=_asset(),
                asset_name="asset-a",
                namespace="media",
                stage=stage,
                attempt=1,
                settings=settings,
            )
        )
    chosen = values or yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    assert settings.max_running_jobs == chosen["operator"].get("maxRunningJobs", 20)
    assert settings.stages["proxies"].scratch_size_limit == chosen["jobs"]["stages"]["proxies"]["scratchSizeLimit"]
    # Stage Jobs run the stage image (image.stage), in the release's version unless pinned.
    stage_repository = chosen["image"].get("stage", {}).get("repository", "mediaingest-stage")
    assert settings.worker_image.startswith(f"{stage_repository}:"), settings.worker_image
    # Stage pods report to the release's API Service, in its namespace; they get none of its Secret.
    (api_service,) = [d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-api")]
    port = api_service["spec"]["ports"][0]["port"]
    assert settings.stage_api_url == f"http://{api_service['metadata']['name']}.media.svc:{port}"
    elsewhere = render(helm, tmp_path, {"api": {"enabled": False}, "jobs": {"apiUrl": "https://media.example"}})
    [operator_elsewhere] = [d for d in by_kind(elsewhere, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    assert env_of(operator_elsewhere["spec"]["template"]["spec"]["containers"][0])["OPERATOR_STAGE_API_URL"] == (
        "https://media.example"
    )

    (crd,) = [d for d in by_kind(docs, "CustomResourceDefinition") if d["spec"]["group"] == "mediaingest.io"]
    source = load_crd()
    assert crd["spec"] == source["spec"]  # the chart renders the same CRD
    keep = (values or {}).get("crd", {}).get("keep", True)
    assert (crd["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep") == keep


def _release_secrets(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in by_kind(docs, "Secret") if "helm.sh/hook" not in d["metadata"].get("annotations", {})]


def test_defaults_have_hpa_and_secret_and_no_optional_extras(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path)
    assert len(by_kind(docs, "HorizontalPodAutoscaler")) == 1
    # The release's Secret, and the migration hook's own (deleted once the hook Job succeeds).
    [release_secret] = _release_secrets(docs)
    # Playback URLs are signed by whichever API replica answers: one generated key for all of them.
    assert len(release_secret["stringData"]["URL_SIGNING_SECRET"]) == 48
    given = render(helm, tmp_path, {"secret": {"values": {"URL_SIGNING_SECRET": "k" * 40}}})
    [given_secret] = _release_secrets(given)
    assert given_secret["stringData"]["URL_SIGNING_SECRET"] == "k" * 40
    assert not by_kind(docs, "ScaledObject") and not by_kind(docs, "ServiceMonitor")
    roles = {role["metadata"]["name"]: role["rules"] for role in by_kind(docs, "Role")}
    operator_rules = roles["media-release-mediaingest-operator"]
    granted = {
        (group, resource, verb)
        for rule in operator_rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    for needed in [
        ("mediaingest.io", "mediaassets", "watch"),
        ("mediaingest.io", "mediaassets", "patch"),
        ("mediaingest.io", "mediaassets", "delete"),  # retention
        ("mediaingest.io", "mediaassets/status", "patch"),
        ("batch", "jobs", "create"),
        ("batch", "jobs", "watch"),
        ("", "pods", "list"),
        ("", "events", "create"),
    ]:
        assert needed in granted, needed
    api_rules = roles["media-release-mediaingest-api"]
    assert api_rules == [{"apiGroups": ["mediaingest.io"], "resources": ["mediaassets"], "verbs": ["create", "delete"]}]
    (job_account,) = [a for a in by_kind(docs, "ServiceAccount") if a["metadata"]["name"].endswith("-stage-job")]
    assert job_account["automountServiceAccountToken"] is False


def test_custom_values_swap_hpa_for_keda_and_add_a_service_monitor(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, CUSTOM_VALUES)
    assert not by_kind(docs, "HorizontalPodAutoscaler") and not by_kind(docs, "Secret")
    (scaled,) = by_kind(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "media-api"
    assert scaled["spec"]["triggers"] == CUSTOM_VALUES["keda"]["triggers"]
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    services = {port["name"] for service in by_kind(docs, "Service") for port in service["spec"]["ports"]}
    assert ports <= services
    (config,) = by_kind(docs, "ConfigMap")
    assert config["data"]["EXECUTOR"] == "kubernetes" and config["data"]["PROXY_HEIGHTS"] == "[360, 720]"
    (api,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "media-api"]
    pod = api["spec"]["template"]["spec"]
    assert "initContainers" not in pod and pod["nodeSelector"] == {"pool": "web"}
    assert {"secretRef": {"name": "media-credentials"}} in pod["containers"][0]["envFrom"]


def test_crd_can_be_left_out(helm: Path, tmp_path: Path) -> None:
    assert not by_kind(render(helm, tmp_path, {"crd": {"install": False}}), "CustomResourceDefinition")


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"operator": {"maxRunningJobs": 0}}, "maxRunningJobs"),
        ({"jobs": {"stages": {"transcode": {}}}}, "transcode"),
        ({"jobs": {"priorityClassNames": {"SOON": "x"}}}, "SOON"),
        ({"image": {"pullPolicy": "Sometimes"}}, "pullPolicy"),
        ({"jobs": {"stages": {"probe": {"requests": {"cpu": "lots"}}}}}, "cpu"),
        ({"jobs": {"ttlSecondsAfterFinished": 0}}, "ttlSecondsAfterFinished"),  # results must be read first
        ({"api": {"enabled": False}}, "jobs.apiUrl"),  # stage pods would have no one to report to
        ({"jobs": {"apiUrl": "api:8000"}}, "apiUrl"),
    ],
)
def test_values_schema_refuses_bad_values(helm: Path, tmp_path: Path, values: dict[str, Any], complaint: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(values))
    result = run_helm(helm, "template", "x", str(CHART_DIR), "--values", str(path))
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_the_chart_runs_a_worker_for_deliveries_and_sweeps_but_never_stages(helm: Path, tmp_path: Path) -> None:
    """Stages are the operator's Jobs; webhooks and the sweep are tasks that need a runner in the cluster."""
    deployments = {d["metadata"]["name"]: d for d in by_kind(render(helm, tmp_path), "Deployment")}
    worker = deployments["media-release-mediaingest-worker"]
    [container] = worker["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["mediaingest", "worker"] and command[command.index("--queues") + 1] == "default"
    api = deployments["media-release-mediaingest-api"]["spec"]["template"]["spec"]["containers"][0]
    assert container["envFrom"] == api["envFrom"]  # the same database and storage as the API
    names = {
        d["metadata"]["name"] for d in by_kind(render(helm, tmp_path, {"worker": {"enabled": False}}), "Deployment")
    }
    assert "media-release-mediaingest-worker" not in names


def test_make_e2e_kind_runs_the_cluster_tests_with_the_projects_python() -> None:
    """The Makefile's `PYTHON ?= python3` (which makes the virtualenv) must not leak into the e2e run,
    whose tests need the virtualenv's dependencies."""
    root = Path(__file__).resolve().parents[2]
    planned = subprocess.run(["make", "-n", "e2e-kind"], cwd=root, capture_output=True, text=True, check=True).stdout
    [pytest_line] = [line for line in planned.splitlines() if "-m pytest" in line]
    assert ".venv/bin/python -m pytest -m cluster" in pytest_line


def test_numeric_and_string_quantities_reach_the_operator_as_it_reads_them(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--set jobs.stages.proxies.requests.cpu=2` is a number in values; the operator reads it from the
    rendered Deployment's OPERATOR_STAGES and must take it, as the schema did."""
    from mediaingest.operator.settings import QUANTITY_PATTERN, OperatorSettings

    args = ["template", "media-release", str(CHART_DIR), "--namespace", "media",
            "--set", "jobs.stages.proxies.requests.cpu=2", "--set", "jobs.stages.probe.limits.cpu=1.5",
            "--set-string", "jobs.stages.thumbnails.requests.memory=768Mi"]  # fmt: skip
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stderr
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    [operator] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    env = env_of(operator["spec"]["template"]["spec"]["containers"][0])
    monkeypatch.setenv("OPERATOR_STAGES", env["OPERATOR_STAGES"])
    stages = OperatorSettings().stages
    assert stages["proxies"].requests["cpu"] == "2"
    assert stages["probe"].limits["cpu"] == "1.5"
    assert stages["thumbnails"].requests["memory"] == "768Mi"
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())
    proxies = schema["properties"]["jobs"]["properties"]["stages"]["properties"]["proxies"]["properties"]
    assert proxies["requests"]["additionalProperties"]["pattern"] == QUANTITY_PATTERN  # one definition


def test_the_operator_refuses_what_the_schema_refuses() -> None:
    from pydantic import ValidationError

    from mediaingest.operator.settings import StageConfig

    for bad in ("two", "2 cores", True, "-1"):
        with pytest.raises(ValidationError):
            StageConfig(requests={"cpu": bad}, limits={}, scratch_size_limit="1Gi", active_deadline_seconds=60)


@pytest.mark.parametrize("run_as_user", [None, 1000650000])
def test_stage_jobs_take_annotations_affinity_extra_env_and_the_platforms_user(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube_validate, run_as_user: int | None
) -> None:
    """Karpenter/cluster-autoscaler annotations by default; OpenShift's restricted-v2 assigns the user
    itself (runAsUser null), or takes one from its range."""

    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["media"]}]}]}}}  # fmt: skip
    values = {"jobs": {"runAsUser": run_as_user, "affinity": affinity,
                       "extraEnv": [{"name": "FFREPORT", "value": "level=32"}]}}  # fmt: skip
    [operator] = [d for d in by_kind(render(helm, tmp_path, values), "Deployment") if d["metadata"]["name"].endswith(
        "-operator")]  # fmt: skip
    for name, value in env_of(operator["spec"]["template"]["spec"]["containers"][0]).items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    assert settings.run_as_user == run_as_user
    asset = AssetSpec(asset_id="a1", owner="u1", media_type=MediaType.VIDEO, bucket="b", key="k", size=1,
                      priority=JobPriority.NORMAL, stages=(Stage("probe"),))  # fmt: skip
    job = build_stage_job(asset=asset, asset_name="ma-a1", namespace="media", stage=Stage("probe"), attempt=1,
                          settings=settings)  # fmt: skip
    kube_validate(job)
    template = job["spec"]["template"]
    assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert template["spec"]["affinity"] == affinity
    assert {"name": "FFREPORT", "value": "level=32"} in template["spec"]["containers"][0]["env"]
    security = template["spec"]["securityContext"]
    assert security.get("runAsUser") == run_as_user and security["runAsNonRoot"] is True


def test_installing_without_a_database_fails_clearly(helm: Path) -> None:
    result = run_helm(helm, "template", "x", str(CHART_DIR), database=False)
    assert result.returncode != 0
    assert "set secret.values.DATABASE_URL" in result.stderr and "SQLite" in result.stderr
    existing = run_helm(helm, "template", "x", str(CHART_DIR), "--set", "secret.existingSecret=creds", database=False)
    assert existing.returncode == 0, existing.stderr


def test_migrations_run_once_as_a_hook_job_not_in_every_api_pod(helm: Path, tmp_path: Path, kube_validate) -> None:
    docs = render(helm, tmp_path)
    [job] = [d for d in by_kind(docs, "Job") if d["metadata"]["name"].endswith("-migrate")]
    kube_validate(job)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mediaingest", "db", "upgrade"]
    secret_name = container["env"][0]["valueFrom"]["secretKeyRef"]["name"]
    [hook_secret] = [d for d in by_kind(docs, "Secret") if d["metadata"]["name"] == secret_name]
    assert hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"] == "-5"  # before the Job
    assert hook_secret["stringData"]["DATABASE_URL"] == DATABASE_URL
    [api] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api")]
    assert "initContainers" not in api["spec"]["template"]["spec"]
    # An existing Secret is used as it is: no hook Secret of ours.
    custom = render(helm, tmp_path, {"secret": {"existingSecret": "creds"}, "api": {"migrations": True}})
    [job] = [d for d in by_kind(custom, "Job") if d["metadata"]["name"].endswith("-migrate")]
    assert job["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"]["name"] == "creds"
    assert not [d for d in by_kind(custom, "Secret") if d["metadata"]["name"].endswith("-migrate")]


def test_the_api_has_a_disruption_budget_and_spreads_over_nodes(helm: Path, tmp_path: Path, kube_validate) -> None:
    docs = render(helm, tmp_path)
    [budget] = by_kind(docs, "PodDisruptionBudget")
    kube_validate(budget)
    assert budget["spec"]["maxUnavailable"] == 1
    [api] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api")]
    [spread] = api["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname" and spread["whenUnsatisfiable"] == "ScheduleAnyway"
    assert spread["labelSelector"]["matchLabels"] == budget["spec"]["selector"]["matchLabels"]


def test_each_release_handles_only_its_own_media_assets(helm: Path, tmp_path: Path) -> None:
    """Two releases in one namespace: the API labels its MediaAssets with its release, the operator's
    handlers and indices filter on it, and its Jobs carry it too."""
    from mediaingest.operator import naming
    from mediaingest.operator.dispatcher import build_media_asset
    from mediaingest.operator.main import build_registry

    docs = render(helm, tmp_path, {"operator": {"priorityClassName": "media-control"}})
    [config] = by_kind(docs, "ConfigMap")
    assert config["data"]["K8S_RELEASE"] == "media-release"
    [operator] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    assert operator["spec"]["template"]["spec"]["priorityClassName"] == "media-control"

    manifest = build_media_asset(namespace="media", asset_id="a1", owner_id="u1", media_type=MediaType.VIDEO,
                                 bucket="b", key="k", size=1, priority=JobPriority.NORMAL, stages=[Stage("probe")],
                                 release="media-release")  # fmt: skip
    assert manifest["metadata"]["labels"][naming.LABEL_RELEASE] == "media-release"
    settings = OperatorSettings(_env_file=None, K8S_RELEASE="media-release")  # type: ignore[call-arg]
    registry = build_registry(settings)
    handlers = [*registry._indexing.get_all_handlers(), *registry._spawning.get_all_handlers()]
    assert handlers and all((h.labels or {}).get(naming.LABEL_RELEASE) == "media-release" for h in handlers)
    asset = AssetSpec(asset_id="a1", owner="u1", media_type=MediaType.VIDEO, bucket="b", key="k", size=1,
                      priority=JobPriority.NORMAL, stages=(Stage("probe"),))  # fmt: skip
    job = build_stage_job(asset=asset, asset_name="ma-a1", namespace="media", stage=Stage("probe"), attempt=1,
                          settings=settings)  # fmt: skip
    assert job["metadata"]["labels"][naming.LABEL_RELEASE] == "media-release"
    # Without a release (outside the chart) the operator takes every MediaAsset, as before.
    unscoped = build_registry(OperatorSettings(_env_file=None))  # type: ignore[call-arg]
    assert not any(h.labels for h in unscoped._spawning.get_all_handlers())


def test_the_kueue_queue_reaches_the_operator(helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(helm, tmp_path, {"jobs": {"kueue": {"queueName": "media-stages"}}})
    [operator] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    for name, value in env_of(operator["spec"]["template"]["spec"]["containers"][0]).items():
        monkeypatch.setenv(name, value)
    assert OperatorSettings().kueue_queue_name == "media-stages"
    monkeypatch.setenv("OPERATOR_KUEUE_QUEUE_NAME", "")  # the default: no Kueue
    assert OperatorSettings().kueue_queue_name is None


def test_stage_pods_are_fenced_and_each_component_can_assume_its_own_cloud_role(
    helm: Path, tmp_path: Path, kube_validate
) -> None:
    """networkPolicy.enabled: the pods that run ffmpeg on uploads take no ingress and reach only DNS, the
    API and HTTPS; serviceAccount.*.annotations: IRSA or Workload Identity instead of static keys."""
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mediaingest-stages"}
    workload_identity = {"iam.gke.io/gcp-service-account": "api@p.iam"}
    accounts_values = {"jobs": {"annotations": role}, "api": {"annotations": workload_identity}}
    docs = render(helm, tmp_path, {"networkPolicy": {"enabled": True}, "serviceAccount": accounts_values})
    policies = {p["metadata"]["name"]: p for p in by_kind(docs, "NetworkPolicy")}
    for policy in policies.values():
        kube_validate(policy)
    stage = policies["media-release-mediaingest-stage-jobs"]["spec"]
    assert stage["ingress"] == [] and set(stage["policyTypes"]) == {"Ingress", "Egress"}
    ports = sorted(port["port"] for rule in stage["egress"] for port in rule["ports"])
    assert ports == [53, 53, 443, 8000]  # DNS, storage, and the API — never the database
    [to_api] = [rule for rule in stage["egress"] if "to" in rule]
    [api] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api")]
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    assert to_api["to"][0]["podSelector"]["matchLabels"].items() <= api_labels.items()
    asset = AssetSpec(asset_id="a1", owner="u1", media_type=MediaType.VIDEO, bucket="b", key="k", size=1,
                      priority=JobPriority.NORMAL, stages=(Stage("probe"),))  # fmt: skip
    job = build_stage_job(asset=asset, asset_name="ma-a1", namespace="media", stage=Stage("probe"), attempt=1,
                          settings=OperatorSettings(_env_file=None))  # type: ignore[call-arg]  # fmt: skip
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert stage["podSelector"]["matchLabels"].items() <= pod_labels.items()  # the policy selects stage pods
    accounts = {a["metadata"]["name"]: a for a in by_kind(docs, "ServiceAccount")}
    assert accounts["media-release-mediaingest-stage-job"]["metadata"]["annotations"] == role
    assert accounts["media-release-mediaingest-api"]["metadata"]["annotations"] == workload_identity
    assert "annotations" not in accounts["media-release-mediaingest-operator"]["metadata"]
    assert not by_kind(render(helm, tmp_path), "NetworkPolicy")  # off by default
