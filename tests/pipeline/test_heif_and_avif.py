"""Phone formats on the allowlist are processable: HEIC (via pillow-heif) and AVIF (Pillow itself)."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from mediaingest.assets.media_types import sniff
from mediaingest.models.enums import MediaType, ProxyType, Stage
from mediaingest.pipeline import PipelineOptions, run_stage_function


@pytest.mark.parametrize(("suffix", "mime"), [(".heic", "image/heic"), (".avif", "image/avif")])
def test_phone_image_formats_probe_and_thumbnail(tmp_path: Path, suffix: str, mime: str) -> None:
    source = tmp_path / f"photo{suffix}"
    Image.new("RGBA", (400, 300), (10, 200, 30, 128)).save(source)
    assert sniff(source.read_bytes()[:4096]).mime_type == mime
    options = PipelineOptions()
    probed = run_stage_function(Stage("probe"), source, MediaType.IMAGE, None, tmp_path, options=options)
    assert probed.metadata is not None
    assert (probed.metadata.display_width, probed.metadata.display_height) == (400, 300)
    out = tmp_path / "out"
    out.mkdir()
    result = run_stage_function(Stage("thumbnails"), source, MediaType.IMAGE, probed.metadata, out, options=options)
    thumbnails = [output for output in result.outputs if output.kind == ProxyType.THUMBNAIL]
    assert thumbnails
    for output in thumbnails:
        with Image.open(output.path) as image:
            assert image.size == (output.width, output.height)
