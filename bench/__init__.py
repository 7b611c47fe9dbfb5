"""Benchmarks for mediaingest (not tests: pytest collects only tests/).

python -m bench [--quick] [--only pipeline|upload] [--reps N]

sources.py      generated media (ffmpeg lavfi), cached under bench/.cache/
service.py      the service started as `make run` starts it, a moto S3 server, peak RSS
client.py       the client side of the upload protocol, over httpx, streaming from files
pipeline.py     ingestion (confirm → READY) against ffmpeg's floor and the naive ladder
upload_load.py  concurrent clients: upload URL, upload, confirm; latency, MB/s, service RSS
report.py       bench/results/latest.{json,md} and the comparison with the previous run
"""
