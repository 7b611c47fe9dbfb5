"""The built main image (API, worker, operator) carries what its entrypoints import, and its Kubernetes
client — operator/kube.py on kopf's login, no kubernetes package — logs in from a kubeconfig and asks the
fake API server for a TokenReview, as the API does for every stage pod's first report."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixtures.kube import ThreadedApiServer, write_kubeconfig
from fixtures.stage_image import ImagePod

pytestmark = pytest.mark.image

ENTRYPOINTS = ["mediaingest.cli", "mediaingest.api.app", "mediaingest.worker.loop", "mediaingest.operator.main",
               "mediaingest.stage_reports.endpoints", "mediaingest.db.migrate"]  # fmt: skip
REVIEW = """
import importlib, importlib.util, json, sys
for module in sys.argv[2:]:
    importlib.import_module(module)
from mediaingest.operator.kube import load_api_client
print(json.dumps({"kubernetes": importlib.util.find_spec("kubernetes") is not None,
                  "review": load_api_client().review_token(sys.argv[1], ["mediaingest"])}))
"""


def test_the_main_image_imports_its_entrypoints_and_reviews_a_token(
    main_image: ImagePod, scratch: Path, threaded_apiserver: ThreadedApiServer
) -> None:
    write_kubeconfig(scratch / "kubeconfig", str(threaded_apiserver.server.url))
    pod = "asset-0b5b4a3e-probe-1-x7k2p"
    token = threaded_apiserver.mint_token(namespace="media", service_account="stage", pod_name=pod,
                                          audience="mediaingest")  # fmt: skip
    ran = main_image.run(["python3", "-c", REVIEW, token, *ENTRYPOINTS], scratch, KUBECONFIG="/scratch/kubeconfig")
    assert ran.returncode == 0, ran.stderr
    answer = json.loads(ran.stdout.splitlines()[-1])
    assert answer["kubernetes"] is False  # the 33 MB client is not in the image
    review = answer["review"]
    assert review["authenticated"] is True and review["user"]["username"] == "system:serviceaccount:media:stage"
    assert review["user"]["extra"]["authentication.kubernetes.io/pod-name"] == [pod]
    [request] = [r for r in threaded_apiserver.server.recorded if r.plural == "tokenreviews"]
    assert request.agent.startswith("mediaingest/") and request.method == "POST"
