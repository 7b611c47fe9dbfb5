"""Prints what worker-image/build.sh built: per image its manifest digest, uncompressed and compressed
size, and each layer's; writes <image>.digest beside the OCI layout.

    python3 worker-image/oci_report.py <oci layout> <layers folder> <image>...

A layer's uncompressed size is its tar's (the diff_id names it); the compressed size is the blob's.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

MB = 1_000_000


def _blob(layout: Path, digest: str) -> Path:
    algorithm, _, value = digest.partition(":")
    return layout / "blobs" / algorithm / value


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def main(layout: Path, layers: Path, images: list[str]) -> None:
    tars = {_sha256(tar): tar for tar in sorted(layers.glob("*.tar"))}
    index = json.loads((layout / "index.json").read_text())
    refs = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
    for image in images:
        descriptor = refs[image]
        manifest = json.loads(_blob(layout, descriptor["digest"]).read_text())
        config = json.loads(_blob(layout, manifest["config"]["digest"]).read_text())
        rows, total, total_gz = [], 0, 0
        for layer, diff_id in zip(manifest["layers"], config["rootfs"]["diff_ids"], strict=True):
            tar = tars[diff_id]
            size = tar.stat().st_size
            total, total_gz = total + size, total_gz + layer["size"]
            rows.append(f"  {tar.stem:<26} {size / MB:7.1f} MB  ({layer['size'] / MB:6.1f} MB gzip)  {layer['digest']}")
        print(f"{image}@{descriptor['digest']}")
        print(f"  {'uncompressed':<26} {total / MB:7.1f} MB  ({total_gz / MB:6.1f} MB gzip), {len(rows)} layers")
        print("\n".join(rows))
        (layout.parent / f"{image}.digest").write_text(descriptor["digest"] + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:])
