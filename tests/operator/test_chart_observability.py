"""The chart's observability pack and day-two promises, by rendering: the alert rules and the Grafana
dashboard (valid, and every metric they read is one mediaingest exports, found by grepping its metrics
modules), the `helm test` Pod (its script run for real against a live server), GitOps-stable renders,
and OpenShift detected with no overrides."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from fixtures.chart import (
    CHART_DIR,
    DATABASE_URL,
    OPENSHIFT,
    PROMETHEUS_OPERATOR,
    URL_SIGNING_SECRET,
    by_kind,
    render,
    run_helm,
)
from fixtures.live_server import LiveServer

SRC = Path(__file__).resolve().parents[2] / "src" / "mediaingest"
METRICS_MODULES = (SRC / "metrics.py", SRC / "operator" / "metrics.py")
# Series from elsewhere the rules may read, and who exports them.
EXTERNAL = {"up": "Prometheus (every scrape target)", "kube_pod_container_status_restarts_total": "kube-state-metrics"}
# What each kind of metric is exposed as (prometheus_client; a Counter's `_total` is added when missing).
_SUFFIXES = {
    "Counter": ("_total",),
    "CounterMetricFamily": ("_total",),
    "Histogram": ("_bucket", "_sum", "_count"),
    "Summary": ("_sum", "_count"),
    "Gauge": ("",),
    "GaugeMetricFamily": ("",),
}
_DEFINITION = re.compile(r"\b(" + "|".join(_SUFFIXES) + r")\(\s*\"([a-zA-Z_:][a-zA-Z0-9_:]*)\"")


def exported_metrics() -> set[str]:
    """Every series name mediaingest's metrics modules define, as Prometheus sees them."""
    names = set()
    for module in METRICS_MODULES:
        for kind, name in _DEFINITION.findall(module.read_text()):
            base = name.removesuffix("_total") if kind.startswith("Counter") else name
            names.update(base + suffix for suffix in _SUFFIXES[kind])
    return names


def metrics_read_by(expression: str) -> set[str]:
    """The metric names a PromQL expression selects (it must parse)."""
    names: set[str] = set()

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector) and node.name:
            names.add(node.name)

    promql_parser.walk(promql_parser.parse(expression), visit)
    return names


def test_the_metric_grep_finds_what_the_code_exports() -> None:
    from mediaingest import metrics
    from mediaingest.operator import metrics as operator_metrics

    names = exported_metrics()
    assert {"ingestion_jobs_total", "ingestion_jobs_duration_seconds_bucket", "storage_usage_bytes"} <= names
    assert {"mediaingest_tasks", "mediaingest_operator_jobs", "mediaingest_operator_jobs_created_total"} <= names
    # Every metric object of the modules was found (a definition the pattern missed would fail here).
    from prometheus_client.metrics import MetricWrapperBase

    modules = (metrics, operator_metrics)
    objects = [m for module in modules for m in vars(module).values() if isinstance(m, MetricWrapperBase)]
    suffix = {"counter": "_total", "histogram": "_bucket", "gauge": "", "summary": "_count"}
    assert len(objects) >= 9 and all(m._name + suffix[m._type] in names for m in objects)
    assert metrics_read_by('sum(rate(a_total{x="1"}[5m])) / on() b or vector(0)') == {"a_total", "b"}
    with pytest.raises(ValueError):
        metrics_read_by("sum(rate(a_total[5m])")


@pytest.fixture(scope="module")
def monitored(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    values = {
        "prometheusRule": {"enabled": True, "extraLabels": {"team": "media"}},
        "grafanaDashboard": {"enabled": True},
    }
    return render(helm, tmp_path_factory.mktemp("monitored"), values, api_versions=PROMETHEUS_OPERATOR)


def test_the_alert_rules_parse_and_read_only_metrics_that_exist(monitored) -> None:
    [rule] = by_kind(monitored, "PrometheusRule")
    [group] = rule["spec"]["groups"]
    alerts = {r["alert"]: r for r in group["rules"]}
    assert {
        "MediaingestBacklogGrowing",
        "MediaingestAssetsStalled",
        "MediaingestStageFailureRateHigh",
        "MediaingestOperatorStalled",
        "MediaingestOperatorDown",
        "MediaingestOperatorRestarting",
    } <= set(alerts)
    known = exported_metrics() | set(EXTERNAL)
    for name, alert in alerts.items():
        read = metrics_read_by(alert["expr"])
        assert read and read <= known, (name, read - known)
        assert alert["labels"]["severity"] in ("warning", "critical") and alert["labels"]["team"] == "media"
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        if "for" in alert:
            promql_parser.parse_duration(alert["for"])
        # Only this release's series: every selector names its namespace.
        assert alert["expr"].count('namespace="media"') == len(re.findall(r"\b[a-z_]+\{", alert["expr"])), name
    # The backlog threshold and ratios come from values.
    assert "> 50" in alerts["MediaingestBacklogGrowing"]["expr"]
    assert "> 0.2" in alerts["MediaingestStageFailureRateHigh"]["expr"]


def test_the_dashboard_is_valid_json_picked_up_by_the_sidecar_and_reads_only_metrics_that_exist(monitored) -> None:
    [config_map] = [d for d in by_kind(monitored, "ConfigMap") if d["metadata"]["name"].endswith("-dashboard")]
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(config_map["data"]["mediaingest.json"])
    assert dashboard == json.loads((CHART_DIR / "files" / "dashboard.json").read_text())
    known = exported_metrics()
    read: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names = metrics_read_by(target["expr"])
            assert names and names <= known, (panel["title"], names - known)
            read |= names
    # The pipeline, the task queue's stage attempts and the API are all on it.
    assert {"mediaingest_tasks", "ingestion_jobs_total", "http_request_duration_seconds_bucket"} <= read
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert variables == {"datasource", "namespace"}


def test_renders_are_identical_and_generate_nothing(helm: Path, tmp_path: Path) -> None:
    """GitOps: Argo CD and Flux render with `helm template`; the same values must give the same bytes (so
    checksum/config moves only when a setting does), and nothing may be looked up in the cluster."""
    args = ("template", "media-release", str(CHART_DIR), "--namespace", "media")
    first, second = run_helm(helm, *args), run_helm(helm, *args)
    assert first.returncode == 0 and first.stdout == second.stdout
    checksums = set(re.findall(r"checksum/config: (\w+)", first.stdout))
    assert len(checksums) == 1
    changed = run_helm(helm, *args, "--set", "config.LOG_LEVEL=DEBUG")
    assert set(re.findall(r"checksum/config: (\w+)", changed.stdout)).isdisjoint(checksums)
    # Nor can any template call what would differ between renders (in its actions, not its comments).
    calls = [
        action
        for template in (CHART_DIR / "templates").rglob("*")
        if template.is_file()
        for action in re.findall(r"\{\{-?(.*?)-?\}\}", template.read_text(), flags=re.S)
        if not action.strip().startswith("/*")
    ]
    assert any("include" in action for action in calls)  # the actions were found
    for forbidden in ("lookup", "randAlphaNum", "randAlpha", "randNumeric", "randAscii", "uuidv4", "now", "genCA"):
        assert not [action for action in calls if re.search(rf"\b{forbidden}\b", action)], forbidden


def test_openshift_is_detected_and_needs_no_overrides(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, api_versions=OPENSHIFT)
    pods = [d["spec"]["template"]["spec"] for d in docs if d["kind"] in ("Deployment", "Job")]
    assert len(pods) >= 4
    for pod in pods:
        context = pod["securityContext"]
        assert not {"runAsUser", "runAsGroup", "fsGroup"} & set(context), context  # restricted-v2 assigns them
        assert context["runAsNonRoot"] is True and context["seccompProfile"] == {"type": "RuntimeDefault"}
    [operator] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"].endswith("-operator")]
    env = {e["name"]: e.get("value") for e in operator["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OPERATOR_RUN_AS_USER"] == "null"  # the stage pods too
    # Elsewhere the chart's users stay.
    plain = render(helm, tmp_path)
    [api] = [d for d in by_kind(plain, "Deployment") if d["metadata"]["name"].endswith("-api")]
    assert api["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 10001


def test_docs_no_longer_ask_openshift_users_for_overrides() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "kubernetes.md").read_text()
    section = docs[docs.index("## Installing on OpenShift") :].split("\n## ", 1)[0]
    assert "runAsUser=null" not in section and "fsGroup=null" not in section


# --- helm test -------------------------------------------------------------------------------------------


def _test_pod(helm: Path, tmp_path: Path, **values: Any) -> dict[str, Any]:
    [pod] = [d for d in by_kind(render(helm, tmp_path, {"helmTest": values}), "Pod")]
    return pod


def test_the_helm_test_pod_is_a_test_hook_with_the_users_token(helm: Path, tmp_path: Path, kube_validate) -> None:
    assert not by_kind(render(helm, tmp_path), "Pod")  # no token Secret named: no test Pod
    pod = _test_pod(helm, tmp_path, tokenSecret={"name": "media-helm-test", "key": "api-token"})
    kube_validate(pod)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["MEDIAINGEST_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "media-helm-test", "key": "api-token"}
    assert env["MEDIAINGEST_SERVER"]["value"] == "http://media-release-mediaingest-api.media.svc:80"
    assert pod["spec"]["automountServiceAccountToken"] is False
    assert pod["spec"]["activeDeadlineSeconds"] > int(env["TIMEOUT"]["value"])


def _run_test_script(
    pod: dict[str, Any], server_url: str, token: str, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """The Pod's own command, here: `mediaingest` and `python` from this virtualenv, ffmpeg from the machine."""
    [container] = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    env.update(MEDIAINGEST_SERVER=server_url, MEDIAINGEST_TOKEN=token, HOME=str(tmp_path), TMPDIR=str(tmp_path),
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", COLUMNS="200")  # fmt: skip
    return subprocess.run(container["command"], env=env, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_the_helm_test_uploads_a_generated_clip_and_waits_for_ready(
    helm: Path, tmp_path: Path, live_server: LiveServer
) -> None:
    pod = _test_pod(helm, tmp_path, tokenSecret={"name": "t"}, timeoutSeconds=240)
    _, headers = live_server.create_user()
    token = headers["Authorization"].removeprefix("Bearer ")
    result = _run_test_script(pod, live_server.url, token, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    [line] = [line for line in result.stdout.splitlines() if line.startswith("asset ")]
    asset_id = line.split()[1].rstrip(":")
    assert line.endswith(": READY") and f"deleted {asset_id}" in result.stdout
    # It cleaned up after itself: the asset is gone.
    import httpx

    assert httpx.get(f"{live_server.url}/api/assets/{asset_id}", headers=headers).status_code == 404
    # And it fails when the release does not work for the user (here: a token the API refuses).
    refused = _run_test_script(pod, live_server.url, "mi_not-a-token", tmp_path)
    assert refused.returncode != 0


# --- the chart's README ----------------------------------------------------------------------------------


def test_the_chart_readme_is_generated_from_the_schema_and_lists_every_value() -> None:
    """mk/chart_readme.py writes README.md's values table from values.schema.json (and values.yaml's
    defaults and comments): a schema change without `make chart-readme` fails here."""
    result = subprocess.run([sys.executable, "mk/chart_readme.py", "--check"], cwd=CHART_DIR.parents[1],
                            capture_output=True, text=True, check=False)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    readme = (CHART_DIR / "README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, flags=re.M))
    schema = json.loads((CHART_DIR / "values.schema.json").read_text())

    def schema_paths(node: dict[str, Any], path: str) -> set[str]:
        children = node.get("properties", {})
        own = {path} if path and (not children or node.get("additionalProperties") is not False) else set()
        return own.union(*(schema_paths(child, f"{path}.{key}".lstrip(".")) for key, child in children.items()))

    assert rows == schema_paths(schema, "")  # one row per value the schema knows, and no other

    def leaves(node: Any, path: tuple[str, ...]) -> list[tuple[str, ...]]:
        if isinstance(node, dict) and node:
            return [leaf for key, value in node.items() for leaf in leaves(value, (*path, key))]
        return [path]

    # Every value values.yaml sets is in the table, itself or within a map row (e.g. secret.values).
    for leaf in leaves(yaml.safe_load((CHART_DIR / "values.yaml").read_text()), ()):
        assert any(".".join(leaf[:n]) in rows for n in range(len(leaf), 0, -1)), leaf


# --- NOTES.txt -------------------------------------------------------------------------------------------


def _notes(helm: Path, *args: str) -> str:
    """What `helm install` prints after installing (a client-side dry run: no cluster)."""
    result = run_helm(helm, "install", "media-release", str(CHART_DIR), "--dry-run=client", "-n", "media",
                      "--set", f"secret.values.DATABASE_URL={DATABASE_URL}",
                      "--set", f"secret.values.URL_SIGNING_SECRET={URL_SIGNING_SECRET}", *args)  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout.split("\nNOTES:\n", 1)[1]


def test_notes_say_how_to_upgrade_the_crd_and_what_was_left_out(helm: Path) -> None:
    notes = _notes(helm)
    assert "SQLite" not in notes  # a database is required: the chart does not render without one
    assert "kubectl apply --server-side -f crds/mediaasset.yaml" in notes
    assert "NOT RENDERED" not in notes and "helm test" not in notes
    asked = _notes(helm, "--set", "serviceMonitor.enabled=true", "--set", "helmTest.tokenSecret.name=t")
    assert "NOT RENDERED: serviceMonitor.enabled" in asked and "helm test media-release" in asked
