"""Every manifest against the official Kubernetes schemas (kubernetes-validate, strict), and the
chart linted and rendered by a real helm with default and non-default values."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fixtures.chart import (
    CHART_DIR,
    CUSTOM_VALUES,
    DATABASE_URL,
    KEDA,
    OPENSHIFT,
    PROMETHEUS_OPERATOR,
    URL_SIGNING_SECRET,
    VALUE_SETS,
    by_kind,
    env_of,
    render,
    run_helm,
)
from mediaingest.config import Settings
from mediaingest.models.enums import JobPriority, MediaType, Stage
from mediaingest.operator.jobs import StageAttempt, build_stage_job
from mediaingest.operator.settings import OperatorSettings
from mediaingest.pipeline.registry import stage_names

REPO = Path(__file__).resolve().parents[2]
CRD_PATH = REPO / "crds" / "mediaasset.yaml"
# In the chart's crds/ folder: Helm applies it before rendering any template (and never upgrades it).
CHART_CRD_PATH = CHART_DIR / "crds" / "mediaasset.yaml"
# Kinds the official schemas do not cover; checked by hand below.
THIRD_PARTY = {"ScaledObject", "ServiceMonitor", "PrometheusRule", "TriggerAuthentication"}

# --- the CRD ---------------------------------------------------------------------------------------


def test_crd_is_valid_and_the_chart_carries_an_identical_copy(kube_validate) -> None:
    crd = load_crd()
    kube_validate(crd)
    assert CHART_CRD_PATH.read_bytes() == CRD_PATH.read_bytes(), "run `make crd-sync`"
    assert not (CHART_DIR / "files" / "crds" / "mediaasset.yaml").exists()  # one copy, where Helm installs it
    (version,) = crd["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    assert "ma" in crd["spec"]["names"]["shortNames"]
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    # What a person scans for first; owner, asset id and message with -o wide.
    assert list(columns)[:7] == ["Type", "Phase", "Ready", "Stage", "Progress", "Took", "Age"]
    assert columns["Age"] == ".metadata.creationTimestamp"
    wide = [column["name"] for column in version["additionalPrinterColumns"] if column.get("priority") == 1]
    assert wide == ["Owner", "Asset", "Message"]
    schema = version["schema"]["openAPIV3Schema"]
    for path in columns.values():
        node = schema
        for part in re.sub(r"\[.*?\]", "", path).strip(".").split("."):  # a filter picks list items
            if part != "creationTimestamp":
                node = node["properties"][part] if "properties" in node else node["items"]["properties"][part]
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
    job = build_stage_job(_attempt(Stage("probe")), namespace="ns", settings=OperatorSettings())
    job["spec"]["template"]["spec"]["containers"][0]["bogus"] = True
    with pytest.raises(AssertionError, match="bogus"):
        kube_validate(job)


def load_crd() -> dict[str, Any]:
    return yaml.safe_load(CRD_PATH.read_text())


def _attempt(stage: Stage, *, priority: JobPriority = JobPriority.NORMAL, attempt: int = 1) -> StageAttempt:
    return StageAttempt(task_id="t1", asset_id="a1", owner_id="o", media_type="VIDEO", priority=priority,
                        stage=stage, attempt=attempt)  # fmt: skip


def _media_asset(asset_id: str, owner_id: str, media_type: MediaType, priority: JobPriority) -> dict[str, Any]:
    from mediaingest.models import MediaAsset
    from mediaingest.operator.projection import build_media_asset

    asset = MediaAsset(id=asset_id, owner_id=owner_id, type=media_type, storage_bucket="incoming",
                       storage_key="u/x.png", file_size=9, priority=priority)  # fmt: skip
    return build_media_asset(asset, namespace="media", release="media-release", settings=Settings())


def test_the_media_asset_manifest_matches_the_crd(validate_resource) -> None:
    body = _media_asset("0b5b4a3e-1111-2222-3333-444455556666", "auth0|abc", MediaType.IMAGE, JobPriority.LOW)
    validate_resource(body)
    assert body["metadata"]["name"] == "asset-0b5b4a3e-1111-2222-3333-444455556666"
    assert body["spec"]["stages"] == ["probe", "thumbnails"]


# --- the chart -------------------------------------------------------------------------------------


@pytest.mark.parametrize("value_set", list(VALUE_SETS))
def test_chart_lints_and_renders_valid_manifests(
    helm: Path, tmp_path: Path, kube_validate, value_set: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    values, api_versions = VALUE_SETS[value_set]
    args = ["lint", "--strict", str(CHART_DIR)]
    if values is not None:
        (tmp_path / "lint.yaml").write_text(yaml.safe_dump(values))
        args += ["--values", str(tmp_path / "lint.yaml")]
    lint = run_helm(helm, *args)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert "[WARNING]" not in lint.stdout and "[ERROR]" not in lint.stdout, lint.stdout

    docs = render(helm, tmp_path, values, api_versions=api_versions, include_crds=True)
    for doc in docs:
        if doc["kind"] not in THIRD_PARTY:
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
    # One operator per release, never two at once: an update stops the old one before the new one starts.
    assert operator["spec"]["replicas"] == 1 and operator["spec"]["strategy"] == {"type": "Recreate"}
    assert operator["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["httpGet"]["path"] == "/healthz"
    # crds/ first (--include-crds puts them where `helm install` applies them), then the templates.
    assert docs[0]["kind"] == "CustomResourceDefinition" and docs[0]["metadata"]["name"] == "mediaassets.mediaingest.io"
    assert [crd["metadata"]["name"] for crd in by_kind(docs, "CustomResourceDefinition")] == [
        "mediaassets.mediaingest.io"
    ]
    (container,) = operator["spec"]["template"]["spec"]["containers"]
    assert container["command"][:3] == ["python", "-m", "mediaingest.operator"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    # The operator's environment, as rendered, is what OperatorSettings reads: check it parses into
    # the values given, and that the Jobs built from it are valid.
    for name, value in env_of(container).items():
        monkeypatch.setenv(name, value)
    settings = OperatorSettings()
    for stage in stage_names():
        kube_validate(build_stage_job(_attempt(stage), namespace="media", settings=settings))
    chosen = merged_values(values)
    assert settings.max_running_jobs == chosen["operator"]["maxRunningJobs"]
    assert settings.stages["proxies"].scratch_size_limit == chosen["jobs"]["stages"]["proxies"]["scratchSizeLimit"]
    # OpenShift's restricted-v2 assigns the stage pods' user too, with nothing set by hand.
    assert settings.run_as_user == (None if OPENSHIFT[0] in api_versions else chosen["jobs"]["runAsUser"])
    # Stage Jobs run the stage image (image.stage), in the release's version unless pinned.
    assert settings.worker_image.startswith(f"{chosen['image']['stage']['repository']}:"), settings.worker_image
    # Stage pods report to the release's internal API Service, in its namespace; they get none of its Secret.
    (internal,) = [d for d in by_kind(docs, "Service") if d["metadata"]["name"].endswith("-api-internal")]
    [port] = internal["spec"]["ports"]
    assert settings.stage_api_url == f"http://{internal['metadata']['name']}.media.svc:{port['port']}"
    [api] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api")]
    api_env = env_of(api["spec"]["template"]["spec"]["containers"][0])
    assert api_env["INTERNAL_PORT"] == str(port["port"]) and "METRICS_PORT" in api_env
    elsewhere = render(helm, tmp_path, {"api": {"enabled": False}, "jobs": {"apiUrl": "https://media.example"}})
    [operator_elsewhere] = [d for d in by_kind(elsewhere, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    assert env_of(operator_elsewhere["spec"]["template"]["spec"]["containers"][0])["OPERATOR_STAGE_API_URL"] == (
        "https://media.example"
    )

    (crd,) = [d for d in by_kind(docs, "CustomResourceDefinition") if d["spec"]["group"] == "mediaingest.io"]
    assert crd == load_crd()  # the chart installs the repository's CRD as it is


def merged_values(values: dict[str, Any] | None) -> dict[str, Any]:
    """values.yaml with these values over it, as helm merges them."""

    def merge(base: Any, over: Any) -> Any:
        if isinstance(base, dict) and isinstance(over, dict):
            return {**base, **{key: merge(base.get(key), value) for key, value in over.items()}}
        return over

    return merge(yaml.safe_load((CHART_DIR / "values.yaml").read_text()), values or {})  # type: ignore[no-any-return]


def config_value(docs: list[dict[str, Any]], name: str) -> str:
    [config] = by_kind(docs, "ConfigMap")
    return str(config["data"][name])


def _release_secrets(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in by_kind(docs, "Secret") if "helm.sh/hook" not in d["metadata"].get("annotations", {})]


def test_defaults_have_hpa_and_secret_and_no_optional_extras(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path)
    assert len(by_kind(docs, "HorizontalPodAutoscaler")) == 1
    # The release's Secret, and the migration hook's own (deleted once the hook Job succeeds).
    [release_secret] = _release_secrets(docs)
    # Playback URLs and stage tokens are signed by whichever replica answers: the one key given.
    assert release_secret["stringData"]["URL_SIGNING_SECRET"] == URL_SIGNING_SECRET
    # Optional kinds stay out even where their CRDs exist, until their values ask for them.
    everything = render(helm, tmp_path, api_versions=PROMETHEUS_OPERATOR + KEDA)
    for kind in ("ScaledObject", "ServiceMonitor", "PrometheusRule"):
        assert not by_kind(everything, kind), kind
    assert not [d for d in by_kind(everything, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    roles = {role["metadata"]["name"]: role["rules"] for role in by_kind(docs, "Role")}
    operator_rules = roles["media-release-mediaingest-operator"]
    granted = {
        (group, resource, verb)
        for rule in operator_rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    # No Secrets (stage credentials are projected by the kubelet), no Events, no peering objects.
    assert granted == {
        ("mediaingest.io", "mediaassets", verb) for verb in ("list", "watch", "create", "patch", "delete")
    } | {
        ("mediaingest.io", "mediaassets/status", "patch"),
        *(("batch", "jobs", verb) for verb in ("list", "watch", "create", "delete")),
        ("", "pods", "list"),
    }
    # The API needs no Role: it reviews stage pods' tokens (system:auth-delegator), nothing more.
    assert "media-release-mediaingest-api" not in roles
    [review] = by_kind(docs, "ClusterRoleBinding")
    assert review["roleRef"]["name"] == "system:auth-delegator"
    assert review["metadata"]["name"].startswith("media-")  # named after its namespace and release
    assert [(s["name"], s["namespace"]) for s in review["subjects"]] == [("media-release-mediaingest-api", "media")]
    (job_account,) = [a for a in by_kind(docs, "ServiceAccount") if a["metadata"]["name"].endswith("-stage-job")]
    assert job_account["automountServiceAccountToken"] is False
    assert config_value(docs, "STAGE_SERVICE_ACCOUNT") == job_account["metadata"]["name"]


def test_custom_values_swap_hpa_for_keda_and_add_a_service_monitor(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, CUSTOM_VALUES, api_versions=PROMETHEUS_OPERATOR + KEDA)
    assert not by_kind(docs, "HorizontalPodAutoscaler") and not by_kind(docs, "Secret")
    (scaled,) = by_kind(docs, "ScaledObject")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    assert scaled["spec"]["scaleTargetRef"]["name"] == "media-api"
    assert scaled["spec"]["triggers"] == CUSTOM_VALUES["keda"]["triggers"]
    (monitor,) = by_kind(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    # Every component that serves /metrics has a Service the monitor selects, with a port it scrapes.
    ports = {endpoint["port"] for endpoint in monitor["spec"]["endpoints"]}
    selected = [
        service
        for service in by_kind(docs, "Service")
        if monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    ]
    scraped = {
        service["spec"]["selector"]["app.kubernetes.io/component"]
        for service in selected
        if {port["name"] for port in service["spec"]["ports"]} & ports
    }
    assert scraped == {"api", "worker", "operator"}
    [worker_service] = [s for s in selected if s["spec"]["selector"]["app.kubernetes.io/component"] == "worker"]
    [worker] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "media-worker"]
    worker_ports = {p["name"]: p["containerPort"] for p in worker["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert worker_service["spec"]["ports"] == [
        {"name": "metrics", "port": worker_ports["metrics"], "targetPort": "metrics"}
    ]
    assert worker_service["spec"]["selector"].items() <= worker["spec"]["template"]["metadata"]["labels"].items()
    (config,) = by_kind(docs, "ConfigMap")
    assert config["data"]["EXECUTOR"] == "kubernetes" and config["data"]["PROXY_HEIGHTS"] == "[360, 720]"
    (api,) = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "media-api"]
    pod = api["spec"]["template"]["spec"]
    assert "initContainers" not in pod and pod["nodeSelector"] == {"pool": "web"}
    assert {"secretRef": {"name": "media-credentials"}} in pod["containers"][0]["envFrom"]


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
        ({"networkPolicy": {"deniedCIDRs": ["169.254.169.254"]}}, "deniedCIDRs"),  # an address, not a CIDR
        ({"networkPolicy": {"dns": {"ports": []}}}, "dns/ports"),  # no name resolution at all
        ({"prometheusRule": {"failureRatio": 2}}, "failureRatio"),
        ({"crd": {"install": False}}, "crd"),  # gone: the CRD is in crds/ (helm install --skip-crds)
    ],
)
def test_values_schema_refuses_bad_values(helm: Path, tmp_path: Path, values: dict[str, Any], complaint: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(values))
    result = run_helm(helm, "template", "x", str(CHART_DIR), "--values", str(path))
    assert result.returncode != 0 and complaint in result.stderr, result.stderr


def test_the_chart_runs_a_worker_for_deliveries_and_sweeps_and_stages_only_where_placed(
    helm: Path, tmp_path: Path, kube_validate, monkeypatch: pytest.MonkeyPatch
) -> None:
    """By default every stage is a Job and the worker runs the default queue (webhooks, the sweep); the
    scale profile places the light stages on workers, which KEDA scales on the queue's stage tasks."""
    from mediaingest.config import Settings
    from mediaingest.dispatch import stage_queue

    deployments = {d["metadata"]["name"]: d for d in by_kind(render(helm, tmp_path), "Deployment")}
    worker = deployments["media-release-mediaingest-worker"]
    [container] = worker["spec"]["template"]["spec"]["containers"]
    command = container["command"]
    assert command[:2] == ["mediaingest", "worker"] and command[command.index("--queues") + 1] == "default"
    scale = yaml.safe_load((CHART_DIR / "values-scale.yaml").read_text())
    docs = render(helm, tmp_path, scale)
    [scaled] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-worker")]
    [stage_worker] = scaled["spec"]["template"]["spec"]["containers"]
    assert stage_worker["command"][stage_worker["command"].index("--queues") + 1] == "default,stages"
    assert "replicas" not in scaled["spec"]  # KEDA owns it
    kube_validate(scaled)
    [scaler] = by_kind(docs, "ScaledObject")
    [trigger] = scaler["spec"]["triggers"]
    assert trigger["type"] == "postgresql" and "queue = 'stages'" in trigger["metadata"]["query"]
    assert trigger["metadata"]["targetQueryValue"] == str(scale["worker"]["stageConcurrency"])
    # The API and the operator read the placement from the same ConfigMap: the light stages go to workers.
    [config] = by_kind(docs, "ConfigMap")
    for name, value in config["data"].items():
        monkeypatch.setenv(name, value)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    placed = {stage: stage_queue(settings, stage) for stage in stage_names()}
    assert placed == {
        "probe": "stages", "proxies": "stage-jobs", "thumbnails": "stages", "audio_visuals": "stages",
        "transcript": "stage-jobs",  # a Job of its own, with the model's memory
    }  # fmt: skip
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
    job = build_stage_job(_attempt(Stage("probe")), namespace="media", settings=settings)
    kube_validate(job)
    template = job["spec"]["template"]
    assert template["metadata"]["annotations"]["karpenter.sh/do-not-disrupt"] == "true"
    assert template["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert template["spec"]["affinity"] == affinity
    assert {"name": "FFREPORT", "value": "level=32"} in template["spec"]["containers"][0]["env"]
    security = template["spec"]["securityContext"]
    assert security.get("runAsUser") == run_as_user and security["runAsNonRoot"] is True


def test_installing_without_a_database_or_a_signing_key_fails_clearly(helm: Path) -> None:
    result = run_helm(helm, "template", "x", str(CHART_DIR), secrets=False)
    assert result.returncode != 0
    assert "set secret.values.DATABASE_URL" in result.stderr and "SQLite" in result.stderr
    # No key is generated (it would change on every render): the message says what to set.
    no_key = run_helm(
        helm, "template", "x", str(CHART_DIR), "--set", f"secret.values.DATABASE_URL={DATABASE_URL}", secrets=False
    )
    assert no_key.returncode != 0
    assert "set secret.values.URL_SIGNING_SECRET" in no_key.stderr and "secret.existingSecret" in no_key.stderr
    existing = run_helm(helm, "template", "x", str(CHART_DIR), "--set", "secret.existingSecret=creds", secrets=False)
    assert existing.returncode == 0, existing.stderr


def test_migrations_run_once_as_a_hook_job_not_in_every_api_pod(helm: Path, tmp_path: Path, kube_validate) -> None:
    docs = render(helm, tmp_path)
    [job] = [d for d in by_kind(docs, "Job") if d["metadata"]["name"].endswith("-migrate")]
    kube_validate(job)
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    [container] = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["mediaingest", "db", "upgrade"]
    assert container["resources"] == merged_values(None)["migrate"]["resources"]
    # Its own ServiceAccount (not `default`), a hook created before it, with no API token mounted.
    pod = job["spec"]["template"]["spec"]
    [account] = [d for d in by_kind(docs, "ServiceAccount") if d["metadata"]["name"] == pod["serviceAccountName"]]
    kube_validate(account)
    assert account["metadata"]["annotations"]["helm.sh/hook"] == job["metadata"]["annotations"]["helm.sh/hook"]
    weights = {d["kind"]: int(d["metadata"]["annotations"]["helm.sh/hook-weight"]) for d in (account, job)}
    assert weights["ServiceAccount"] < weights["Job"]
    assert account["automountServiceAccountToken"] is False and pod["automountServiceAccountToken"] is False
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


def test_the_api_has_a_disruption_budget_and_spreads_over_zones_and_nodes(
    helm: Path, tmp_path: Path, kube_validate
) -> None:
    docs = render(helm, tmp_path)
    [budget] = by_kind(docs, "PodDisruptionBudget")
    kube_validate(budget)
    assert budget["spec"]["maxUnavailable"] == 1
    [api] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-api")]
    spreads = api["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert [spread["topologyKey"] for spread in spreads] == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]
    for spread in spreads:
        assert spread["whenUnsatisfiable"] == "ScheduleAnyway"
        assert spread["labelSelector"]["matchLabels"] == budget["spec"]["selector"]["matchLabels"]


def test_each_release_handles_only_its_own_media_assets_and_jobs(helm: Path, tmp_path: Path) -> None:
    """Two releases in one namespace: the operator labels its MediaAssets and Jobs with its release, and
    its watches select on it (and on the MediaAssets not finished) on the server."""
    from mediaingest.operator import naming
    from mediaingest.operator.projection import jobs_selector, live_selector

    docs = render(helm, tmp_path, {"operator": {"priorityClassName": "media-control"}})
    [config] = by_kind(docs, "ConfigMap")
    assert config["data"]["K8S_RELEASE"] == "media-release"
    [operator] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    assert operator["spec"]["template"]["spec"]["priorityClassName"] == "media-control"

    manifest = _media_asset("a1", "u1", MediaType.VIDEO, JobPriority.NORMAL)
    assert manifest["metadata"]["labels"][naming.LABEL_RELEASE] == "media-release"
    settings = OperatorSettings(_env_file=None, K8S_RELEASE="media-release")  # type: ignore[call-arg]
    job = build_stage_job(_attempt(Stage("probe")), namespace="media", settings=settings)
    assert job["metadata"]["labels"][naming.LABEL_RELEASE] == "media-release"
    assert live_selector(settings) == (
        "app.kubernetes.io/managed-by=mediaingest-operator,mediaingest.io/release=media-release,"
        "mediaingest.io/finished!=true"
    )
    assert "mediaingest.io/release=media-release" in jobs_selector(settings)


def test_the_kueue_queue_reaches_the_operator(helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docs = render(helm, tmp_path, {"jobs": {"kueue": {"queueName": "media-stages"}}})
    [operator] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    for name, value in env_of(operator["spec"]["template"]["spec"]["containers"][0]).items():
        monkeypatch.setenv(name, value)
    assert OperatorSettings().kueue_queue_name == "media-stages"
    monkeypatch.setenv("OPERATOR_KUEUE_QUEUE_NAME", "")  # the default: no Kueue
    assert OperatorSettings().kueue_queue_name is None


def test_each_component_can_assume_its_own_cloud_role(helm: Path, tmp_path: Path, kube_validate) -> None:
    """serviceAccount.*.annotations: IRSA or Workload Identity instead of static keys (the network policies
    are tests/operator/test_chart_networkpolicy.py's)."""
    role = {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/mediaingest-stages"}
    workload_identity = {"iam.gke.io/gcp-service-account": "api@p.iam"}
    accounts_values = {"jobs": {"annotations": role}, "api": {"annotations": workload_identity}}
    docs = render(helm, tmp_path, {"serviceAccount": accounts_values})
    accounts = {a["metadata"]["name"]: a for a in by_kind(docs, "ServiceAccount")}
    for account in accounts.values():
        kube_validate(account)
    assert accounts["media-release-mediaingest-stage-job"]["metadata"]["annotations"] == role
    assert accounts["media-release-mediaingest-api"]["metadata"]["annotations"] == workload_identity
    assert "annotations" not in accounts["media-release-mediaingest-operator"]["metadata"]


def test_stage_jobs_can_mount_a_model_filled_by_an_init_container(
    helm: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kube_validate
) -> None:
    """A larger TRANSCRIBE_MODEL from outside the image: a volume, its mount, an init container that fills it."""
    values = {"jobs": {
        "extraVolumes": [{"name": "models", "persistentVolumeClaim": {"claimName": "whisper", "readOnly": True}},
                         {"name": "model-cache", "emptyDir": {"sizeLimit": "4Gi"}}],
        "extraVolumeMounts": [{"name": "models", "mountPath": "/models", "readOnly": True},
                              {"name": "model-cache", "mountPath": "/model-cache"}],
        "initContainers": [{"name": "fetch-model", "image": "registry.example/models:small",
                            "command": ["cp", "-r", "/small", "/model-cache/"],
                            "volumeMounts": [{"name": "model-cache", "mountPath": "/model-cache"}]}],
    }}  # fmt: skip
    [operator] = [d for d in by_kind(render(helm, tmp_path, values), "Deployment") if d["metadata"]["name"].endswith(
        "-operator")]  # fmt: skip
    for name, value in env_of(operator["spec"]["template"]["spec"]["containers"][0]).items():
        monkeypatch.setenv(name, value)
    job = build_stage_job(_attempt(Stage("transcript")), namespace="media", settings=OperatorSettings())
    kube_validate(job)
    spec = job["spec"]["template"]["spec"]
    [container] = spec["containers"]
    assert [v["name"] for v in spec["volumes"]][-2:] == ["models", "model-cache"]
    assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
    assert [c["name"] for c in spec["initContainers"]] == ["fetch-model"]
    # Ours stay: the scratch volume and the projected token come first.
    assert [m["mountPath"] for m in container["volumeMounts"]][:2] == ["/scratch", "/var/run/secrets/mediaingest"]
    for name in ("OPERATOR_JOB_EXTRA_VOLUMES", "OPERATOR_JOB_EXTRA_VOLUME_MOUNTS", "OPERATOR_JOB_INIT_CONTAINERS"):
        monkeypatch.delenv(name)
    plain = build_stage_job(_attempt(Stage("transcript")), namespace="media", settings=OperatorSettings())
    assert (
        "initContainers" not in plain["spec"]["template"]["spec"]
        and len(plain["spec"]["template"]["spec"]["volumes"]) == 2
    )
