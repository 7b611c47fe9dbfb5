"""The Kubernetes executor: a MediaAsset custom resource per confirmed upload, reconciled by a kopf
operator into one Kubernetes Job per pipeline stage.

    dispatcher.py   the API side: create / delete the MediaAsset (EXECUTOR=kubernetes)
    main.py         kopf registration only (build_registry) and run()
    handlers/       the logic: reconcile.py (pure state machine), capacity.py (caps),
                    handle_asset.py (the one handler that writes status), handle_job.py (indices)
    jobs.py         pure builders: the stage Job manifest and what a Job's status says
    naming.py       API group, labels, deterministic names
    settings.py     operator-only settings (OPERATOR_* environment variables)
    mirror.py       stage outcomes mirrored into the database
    metrics.py      the operator's Prometheus metrics

Nothing here touches the network at import time.
"""
