"""``codepilot fetch``: download a snapshot into the model directory, fast, verified and resumable.

One module per job:
- ``plan``: what to fetch (a snapshot's manifest, or a source prefix's listing);
- ``destination``: the destination's state (marker, staging directory, swap into place, local reuse);
- ``chunked``: a large file's chunk journal and its in-order hasher;
- ``transfer``: the thread pool, lanes of ranged GETs, whole GETs of small files;
- ``fetch``: the ``Fetcher`` that runs a plan into a destination through the other four.

How it stays correct: everything is written under a hidden staging directory and renamed into place
only once every file matched its manifest digest, sha256 computed while the bytes arrive. Resume: large
files' chunks are journalled and verified files keep their final name in the staging directory; a
restarted fetch skips both. Re-fetch: a destination whose marker names the same snapshot is complete
(0 bytes transferred); files of an older snapshot in the destination whose digest the new manifest
lists are hard-linked, not downloaded.
"""

from codepilot_operator.snapshots.fetcher.chunked import JOURNAL_SUFFIX, PART_SUFFIX
from codepilot_operator.snapshots.fetcher.destination import (
    MARKER,
    PARTIAL_META,
    is_complete,
    read_marker,
    sha256_file,
)
from codepilot_operator.snapshots.fetcher.fetch import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_WORKERS,
    Fetcher,
    FetchResult,
)
from codepilot_operator.snapshots.fetcher.plan import (
    FetchItem,
    FetchPlan,
    plan_snapshot,
    plan_source,
    read_manifest,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_WORKERS",
    "JOURNAL_SUFFIX",
    "MARKER",
    "PARTIAL_META",
    "PART_SUFFIX",
    "FetchItem",
    "FetchPlan",
    "FetchResult",
    "Fetcher",
    "is_complete",
    "plan_snapshot",
    "plan_source",
    "read_manifest",
    "read_marker",
    "sha256_file",
]
