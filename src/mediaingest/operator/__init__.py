"""The Kubernetes executor: the operator is the Kubernetes runner of the task queue. It claims stage
tasks as a worker does, runs each attempt as one Kubernetes Job, and keeps a MediaAsset custom resource
per confirmed upload as a projection of the database for `kubectl get mediaassets`.

    main.py         kopf registration (indices, probe) and the loop; run()
    runner.py       claim → Job → settle: attempts that ended without a report, leases, MediaAsset creation
    projection.py   the MediaAsset: its manifest, its status from the database, retention (pure + Projector)
    jobs.py         pure builders: the stage Job manifest and what a Job's status says
    kube.py         the Kubernetes calls the operator makes, rate-limited and counted
    naming.py       API group, labels, deterministic names
    settings.py     operator-only settings (OPERATOR_* environment variables)
    metrics.py      the operator's Prometheus metrics

Nothing here touches the network at import time.
"""
