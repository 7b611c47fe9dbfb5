"""The chart's NetworkPolicies, evaluated: which pod of the release may reach what.

A small evaluator applies the rendered policies as the NetworkPolicy API defines them (a pod selected by
no policy of a direction is open in it; otherwise a connection is allowed when a rule of a selecting
policy matches its peer and port). It takes the strictest reading the CNIs differ on: an `ipBlock` never
matches a pod inside the cluster (Cilium and GKE Dataplane V2 match pods by identity only), so DNS pods,
the API pods and in-cluster databases must be allowed by selectors to count as reachable.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fixtures.chart import by_kind, render
from mediaingest.models.enums import JobPriority, MediaType, Stage
from mediaingest.operator.jobs import StageAttempt, build_stage_job
from mediaingest.operator.settings import OperatorSettings

NAMESPACE = "media"
RELEASE = "media-release"
METADATA = ("169.254.169.254", "fd00:ec2::254", "169.254.169.252")  # the last: GKE's metadata server
API_SERVER = "10.0.0.5"  # in networkPolicy.apiServer.cidrs below
S3 = "52.216.0.1"


@dataclass(frozen=True)
class Pod:
    labels: dict[str, str]
    namespace: str = NAMESPACE
    namespace_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Address:
    ip: str


Peer = Pod | Address


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        value, operator = labels.get(expression["key"]), expression["operator"]
        if operator == "In" and value not in expression["values"]:
            return False
        if operator not in ("In",):
            raise NotImplementedError(operator)
    return True


def _peer_matches(entry: dict[str, Any], peer: Peer, policy_namespace: str) -> bool:
    if "ipBlock" in entry:
        if not isinstance(peer, Address):
            return False  # the strict reading: an ipBlock is for addresses outside the cluster
        address = ipaddress.ip_address(peer.ip)
        block = entry["ipBlock"]
        network = ipaddress.ip_network(block["cidr"])
        if address.version != network.version or address not in network:
            return False
        return not any(
            address in ipaddress.ip_network(cidr)
            for cidr in block.get("except", [])
            if ipaddress.ip_network(cidr).version == address.version
        )
    if not isinstance(peer, Pod):
        return False
    if "namespaceSelector" in entry:
        namespace_labels = {"kubernetes.io/metadata.name": peer.namespace, **peer.namespace_labels}
        if not _selects(entry["namespaceSelector"], namespace_labels):
            return False
    elif peer.namespace != policy_namespace:
        return False
    return _selects(entry.get("podSelector", {}), peer.labels)


def _port_matches(ports: list[dict[str, Any]] | None, protocol: str, port: int) -> bool:
    return not ports or any(p.get("protocol", "TCP") == protocol and p.get("port") in (None, port) for p in ports)


def allowed(policies: list[dict[str, Any]], source: Pod, destination: Peer, port: int, protocol: str = "TCP") -> bool:
    """Whether `source` may open a connection to `destination`: its egress, then (for a pod) the other's ingress."""

    def direction(pod: Pod, peer: Peer, kind: str) -> bool:
        selecting = [
            p for p in policies if kind in p["spec"]["policyTypes"] and _selects(p["spec"]["podSelector"], pod.labels)
        ]
        if not selecting:
            return True
        key, peers = ("egress", "to") if kind == "Egress" else ("ingress", "from")
        return any(
            _port_matches(rule.get("ports"), protocol, port)
            and (not rule.get(peers) or any(_peer_matches(entry, peer, NAMESPACE) for entry in rule[peers]))
            for policy in selecting
            for rule in policy["spec"].get(key, [])
        )

    out = direction(source, destination, "Egress")
    return out and (not isinstance(destination, Pod) or direction(destination, source, "Ingress"))


def _stage_pod(release: str = RELEASE) -> Pod:
    """A stage pod's labels as the operator builds them (`jobs.job_labels`)."""
    attempt = StageAttempt(task_id="t1", asset_id="a1", owner_id="u1", media_type=MediaType.VIDEO.value,
                           priority=JobPriority.NORMAL, stage=Stage("probe"), attempt=1)  # fmt: skip
    settings = OperatorSettings(_env_file=None, K8S_RELEASE=release)  # type: ignore[call-arg]
    job = build_stage_job(attempt, namespace=NAMESPACE, settings=settings)
    return Pod(job["spec"]["template"]["metadata"]["labels"])


def _pods(docs: list[dict[str, Any]]) -> dict[str, Pod]:
    """Every pod of the release, by component: the Deployments', the hook Job's and the test Pod's templates."""
    pods = {"stage": _stage_pod()}
    for doc in docs:
        template = {"Deployment": lambda d: d["spec"]["template"], "Job": lambda d: d["spec"]["template"],
                    "Pod": lambda d: d}.get(doc["kind"])  # fmt: skip
        if template is not None:
            labels = template(doc)["metadata"]["labels"]
            pods[labels["app.kubernetes.io/component"]] = Pod(labels)
    return pods


KUBE_DNS = Pod({"k8s-app": "kube-dns"}, namespace="kube-system")
OPENSHIFT_DNS = Pod({"dns.operator.openshift.io/daemonset-dns": "default"}, namespace="openshift-dns")
POSTGRES = Pod({"app": "postgres"})
VALUES = {
    "networkPolicy": {"apiServer": {"cidrs": ["10.0.0.0/28"]}},
    "helmTest": {"tokenSecret": {"name": "media-helm-test"}},
}


@pytest.fixture(scope="module")
def rendered(helm: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], dict[str, Pod]]:
    docs = render(helm, tmp_path_factory.mktemp("netpol"), VALUES)
    return by_kind(docs, "NetworkPolicy"), _pods(docs)


def test_policies_are_on_by_default_valid_and_select_every_pod_of_the_release(
    helm: Path, tmp_path: Path, kube_validate, rendered
) -> None:
    policies, pods = rendered
    assert by_kind(render(helm, tmp_path), "NetworkPolicy")  # on by default, without VALUES
    for policy in policies:
        kube_validate(policy)
    assert set(pods) == {"api", "worker", "operator", "migrate", "test", "stage"}
    for component, pod in pods.items():
        selecting = [p for p in policies if _selects(p["spec"]["podSelector"], pod.labels)]
        assert selecting, component
        assert all({"Ingress", "Egress"} <= set(p["spec"]["policyTypes"]) for p in selecting), component
    # Another release's stage pods (same namespace) are not this release's to allow anywhere.
    other = _stage_pod("other-release")
    assert not [p for p in policies if _selects(p["spec"]["podSelector"], other.labels)]


NODE_LOCAL_DNS = Address("169.254.20.10")


@pytest.mark.parametrize("dns", [KUBE_DNS, OPENSHIFT_DNS, NODE_LOCAL_DNS], ids=["kube-dns", "openshift", "node-local"])
def test_every_pod_resolves_names_on_53_and_5353(rendered, dns: Peer) -> None:
    """OpenShift's DNS pods listen on 5353 and OVN-Kubernetes applies policy after the Service's translation."""
    policies, pods = rendered
    for component, pod in pods.items():
        for port in (53, 5353):
            for protocol in ("UDP", "TCP"):
                assert allowed(policies, pod, dns, port, protocol), (component, dns, port, protocol)


def test_no_pod_reaches_the_cloud_metadata_endpoint(rendered) -> None:
    policies, pods = rendered
    for component, pod in pods.items():
        for ip in METADATA:
            for port, protocol in ((80, "TCP"), (53, "UDP"), (443, "TCP")):
                assert not allowed(policies, pod, Address(ip), port, protocol), (component, ip, port)


def test_only_the_api_and_the_operator_reach_the_kubernetes_api_server(rendered) -> None:
    policies, pods = rendered
    reach = {component for component, pod in pods.items() if allowed(policies, pod, Address(API_SERVER), 443)}
    assert reach == {"api", "operator"}


def test_stage_pods_reach_only_dns_their_api_and_object_storage(rendered) -> None:
    policies, pods = rendered
    stage, api = pods["stage"], pods["api"]
    assert allowed(policies, stage, api, 8001)  # their reports, on the API's internal port
    assert not allowed(policies, stage, api, 8000)  # not the public API
    assert allowed(policies, stage, Address(S3), 443)  # signed URLs
    assert not allowed(policies, stage, api, 9102)
    assert not allowed(policies, stage, POSTGRES, 5432)  # never the database
    assert not allowed(policies, stage, Address(S3), 5432)
    assert not allowed(policies, stage, pods["operator"], 9102)
    assert not allowed(policies, stage, pods["worker"], 9101)
    for component, pod in pods.items():  # and nothing reaches them
        assert not allowed(policies, pod, stage, 8080), component


def test_the_other_pods_reach_what_they_serve_and_use(rendered) -> None:
    policies, pods = rendered
    for component in ("api", "worker", "operator", "migrate"):
        assert allowed(policies, pods[component], POSTGRES, 5432), component  # the database, in the cluster
        assert allowed(policies, pods[component], Address("203.0.113.9"), 5432), component  # or a managed one
    assert allowed(policies, pods["worker"], Address("198.51.100.7"), 8443)  # a webhook endpoint anywhere
    assert allowed(policies, pods["test"], pods["api"], 8000)  # `helm test` uploads through the API
    prometheus = Pod({"app.kubernetes.io/name": "prometheus"}, namespace="monitoring")
    assert allowed(policies, prometheus, pods["worker"], 9101) and allowed(policies, prometheus, pods["operator"], 9102)
    assert allowed(policies, prometheus, pods["api"], 9100)
    assert not allowed(policies, prometheus, pods["worker"], 5432)
    ingress_controller = Pod({"app": "ingress-nginx"}, namespace="ingress-nginx")
    assert allowed(policies, ingress_controller, pods["api"], 8000)
    assert not allowed(policies, ingress_controller, pods["api"], 9000)
    assert not allowed(policies, ingress_controller, pods["api"], 8001)  # the stage reports: stage pods only


def test_extra_stage_egress_and_a_narrower_dns_selector(helm: Path, tmp_path: Path) -> None:
    minio = {"to": [{"podSelector": {"matchLabels": {"app": "minio"}}}], "ports": [{"protocol": "TCP", "port": 9000}]}
    kube_system_dns = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                        "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}]  # fmt: skip
    values = {"networkPolicy": {"extraStageEgress": [minio], "dns": {"to": kube_system_dns}}}
    policies = by_kind(render(helm, tmp_path, values), "NetworkPolicy")
    stage = _stage_pod()
    assert allowed(policies, stage, Pod({"app": "minio"}), 9000)
    assert not allowed(policies, stage, Pod({"app": "other"}), 9000)
    assert allowed(policies, stage, KUBE_DNS, 53, "UDP")
    assert not allowed(policies, stage, OPENSHIFT_DNS, 5353, "UDP")
    # The API's port narrowed to an ingress controller: this release's stage pods still report there.
    controller = Pod({"app": "ingress-nginx"}, namespace="ingress-nginx")
    narrowed = {
        "apiIngressFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
    }
    docs = render(helm, tmp_path, {"networkPolicy": narrowed, "helmTest": {"tokenSecret": {"name": "t"}}})
    policies, pods = by_kind(docs, "NetworkPolicy"), _pods(docs)
    assert allowed(policies, controller, pods["api"], 8000) and allowed(policies, stage, pods["api"], 8001)
    assert allowed(policies, pods["test"], pods["api"], 8000)
    assert not allowed(policies, POSTGRES, pods["api"], 8000)
    assert not allowed(policies, _stage_pod("other-release"), pods["api"], 8001)
    # Off: no policy at all (the evaluator then allows everything, as a cluster does).
    assert not by_kind(render(helm, tmp_path, {"networkPolicy": {"enabled": False}}), "NetworkPolicy")


def test_gke_workload_identity_reaches_its_metadata_server_only_from_the_pods_that_use_cloud_storage(
    helm: Path, tmp_path: Path, rendered
) -> None:
    """GKE serves Workload Identity's tokens from its metadata server (169.254.169.254:80, redirected to
    169.254.169.252:988): allowed, when asked, for the pods that hold a cloud identity, never the others."""
    gke_metadata = ((METADATA[0], 80), ("169.254.169.252", 988))
    policies, pods = rendered
    for component, pod in pods.items():  # by default nobody
        assert not any(allowed(policies, pod, Address(ip), port) for ip, port in gke_metadata), component
    docs = render(helm, tmp_path, {**VALUES, "networkPolicy": {**VALUES["networkPolicy"], "gkeMetadataServer": True}})
    policies, pods = by_kind(docs, "NetworkPolicy"), _pods(docs)
    reach = {
        c for c, pod in pods.items() if all(allowed(policies, pod, Address(ip), port) for ip, port in gke_metadata)
    }
    assert reach == {"api", "worker", "migrate", "test"}
    for component, pod in pods.items():  # and only on those ports: the rest of the endpoint stays denied
        assert not allowed(policies, pod, Address(METADATA[0]), 8080), component
