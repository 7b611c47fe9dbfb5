"""Imported last by the forkserver that starts stage processes (`isolation`): the set-up every stage process
would otherwise redo for itself, done once before the fork and inherited.

- The database dialects imported (create_engine imports its dialect on first use: 0.02 CPU-s), the
  ORM's mappers configured and Pillow's format plugins registered (a few tens of milliseconds each, on a
  stage's first query or first image).
- `gc.freeze()`: the ~100,000 objects the preloaded imports made are moved out of the collector's reach.
  Otherwise the first full collection in each stage process walks all of them, writing to every page
  that holds one, so the kernel copies those pages on write (measured: 0.18 s wall, 0.08 CPU-s per stage
  process on 2 busy cores, for nothing: none of them is garbage). The documented recipe for fork without
  exec (the gc module's `freeze`).
"""

from __future__ import annotations

import gc

import sqlalchemy.dialects.postgresql.psycopg
import sqlalchemy.dialects.sqlite.pysqlite
import sqlalchemy.orm
from PIL import Image

import mediaingest.models  # noqa: F401  (every mapped class, so the mappers configure together)

sqlalchemy.orm.configure_mappers()
Image.init()
gc.collect()  # what is garbage now goes before the freeze, so the frozen generation holds live objects only
gc.freeze()
