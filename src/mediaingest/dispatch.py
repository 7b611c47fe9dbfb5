"""Handing a confirmed asset to the task queue, whichever executor runs it.

Both executors start the same way, in the confirm transaction: the probe's IngestionJob row and its
task, whose queue follows the stage's placement (`worker.queue.stage_queue`). Under
`EXECUTOR=kubernetes` one more task asks the operator to create the asset's MediaAsset, the record
`kubectl get mediaassets` shows; nothing talks to Kubernetes inside the transaction. The worker
enqueues the rest of the plan once the probe says what the media is, as it does on one machine.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.orm import Session

from mediaingest.config import ExecutorName, Settings
from mediaingest.models import MediaAsset
from mediaingest.pipeline.registry import PROBE
from mediaingest.worker.queue import cancel_jobs, enqueue_publish, enqueue_stage


class Dispatcher:
    def __init__(self, settings: Settings, *, on_work: Callable[[], None] | None = None) -> None:
        self.settings = settings
        self.on_work = on_work

    def dispatch(self, session: Session, asset: MediaAsset) -> None:
        """Starts ingestion of an UPLOADED asset. Idempotent."""
        enqueue_stage(session, asset=asset, stage=PROBE, settings=self.settings)
        if self.settings.executor == ExecutorName.KUBERNETES:
            enqueue_publish(session, asset=asset)
        if self.on_work is not None:
            # After the commit, not now: a worker woken before it would find the job not yet visible.
            notify = self.on_work
            sa.event.listen(session, "after_commit", lambda _session: notify(), once=True)

    def cancel(self, session: Session, asset: MediaAsset) -> None:
        """Stops any work on the asset (it is being deleted). Idempotent. A runner holding one of its tasks
        notices at its next heartbeat; the operator then deletes the Job and the MediaAsset."""
        cancel_jobs(session, asset_id=asset.id)


def build_dispatcher(settings: Settings, *, on_work: Callable[[], None] | None = None) -> Dispatcher:
    """`on_work` is called after a commit that queued local work (an in-process worker's wake-up)."""
    return Dispatcher(settings, on_work=on_work)
