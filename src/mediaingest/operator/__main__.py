"""`python -m mediaingest.operator`: the operator's entry point in the chart (also `mediaingest operator`)."""

from __future__ import annotations

import argparse

from mediaingest.operator.main import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mediaingest.operator", description=__doc__)
    parser.add_argument("--namespace", default=None, help='Namespace to watch (default K8S_NAMESPACE; "*" for all).')
    parser.add_argument("--liveness-port", type=int, default=8080, help="Serves /healthz.")
    parser.add_argument("--metrics-port", type=int, default=9102, help="Serves Prometheus /metrics; 0 disables it.")
    args = parser.parse_args(argv)
    run(namespace=args.namespace, liveness_port=args.liveness_port, metrics_port=args.metrics_port)


if __name__ == "__main__":
    main()
