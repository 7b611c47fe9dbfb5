"""One module per stage; each takes local paths and parameters and returns a StageResult."""

from pillow_heif import register_heif_opener

# Pillow reads AVIF itself but not HEIC/HEIF (iPhone photos): pillow-heif adds that format to Image.open.
register_heif_opener()
