"""One task queue for every background job: stage runs, webhook deliveries, upload sweeps, reaping.

queue.py      defer, claim (the one SKIP LOCKED), heartbeat, succeed, fail, cancel, reap, prune
registry.py   TaskSpec: a task's name, queue, function, retry policy and failure hook
periodic.py   periodic tasks, deferred once per period across all runners
runner.py     the runner: claims from its queues, runs, heartbeats, applies retry decisions
"""
