"""kopf indices over the operator's stage Jobs, fed by the Job watch stream.

kopf fills every index before it starts any handler, so after a restart the caps and the per-asset
view start from what is really running, not from zero.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mediaingest.operator import naming
from mediaingest.operator.jobs import observe_job
from mediaingest.operator.model import JobObservation, JobState


def owner_asset(body: Mapping[str, Any]) -> str | None:
    """The name of the MediaAsset that owns this Job (from the reference `kopf.adopt` wrote)."""
    for reference in body.get("metadata", {}).get("ownerReferences") or []:
        if reference.get("kind") == naming.KIND and str(reference.get("apiVersion", "")).startswith(f"{naming.GROUP}/"):
            return str(reference.get("name"))
    return None


def index_stage_jobs(body: Mapping[str, Any], namespace: str | None, **_: Any) -> dict[tuple[str, str], JobObservation]:
    """(namespace, MediaAsset name) → each of its Jobs, as last seen."""
    asset = owner_asset(body)
    observation = observe_job(body)
    if asset is None or observation is None or namespace is None:  # Jobs are namespaced: never None
        return {}
    return {(namespace, asset): observation}


def index_active_jobs(body: Mapping[str, Any], **_: Any) -> dict[str, str]:
    """Tenant label value → names of its stage Jobs that are still running (for the caps)."""
    observation = observe_job(body)
    if observation is None or observation.state != JobState.ACTIVE:
        return {}
    return {observation.tenant: observation.name}
