"""An asset's probed metadata as the pipeline's type: what the stages, the timeline and clips read."""

from __future__ import annotations

import sqlalchemy as sa

from mediaingest.models import MediaAsset
from mediaingest.pipeline.types import MediaMetadata


def metadata_of(asset: MediaAsset) -> MediaMetadata | None:
    row = asset.metadata_record
    if row is None:
        return None
    return MediaMetadata.from_dict({attr.key: getattr(row, attr.key) for attr in sa.inspect(row).mapper.column_attrs})
