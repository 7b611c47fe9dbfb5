"""One task queue for every background job: stage runs, webhook deliveries, upload sweeps, reaping.

queue.py      defer, claim (the one SKIP LOCKED), heartbeat, succeed, fail, cancel, reap, prune
registry.py   TaskSpec: a task's name, queue, function, retry policy and failure hook
periodic.py   periodic tasks, deferred once per period across all runners

The runners that claim from these queues live with what they run: `worker/loop.py` (a worker's threads and
stage processes) and `operator/runner.py` (a Kubernetes Job per stage attempt).
"""
