"""Read back the history of an offline W&B run (a `run-*.wandb` file) without a W&B account.

The file is a LevelDB-style record log: a 7-byte header (":W&B", a 2-byte magic, a version byte),
then 32 KiB blocks of records, each with a 4-byte checksum, a 2-byte length, a 1-byte type (full,
first, middle, last) and its payload; each assembled payload is one `wandb_internal_pb2.Record`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

HEADER = 7
BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, pending, offset = [], b"", HEADER
    while offset + 7 <= len(data):
        room = BLOCK - (offset % BLOCK)
        if room < 7:  # a block's tail too short for a record header is padding
            offset += room
            continue
        _, length, kind = struct.unpack("<IHB", data[offset : offset + 7])
        payload = data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind == FULL:
            out.append(payload)
        elif kind == FIRST:
            pending = payload
        elif kind == MIDDLE:
            pending += payload
        elif kind == LAST:
            out.append(pending + payload)
        else:
            break
    return out


def history(path: Path) -> list[dict[str, object]]:
    """Every logged history row, as {key: value}."""
    from wandb.proto import wandb_internal_pb2

    rows = []
    for payload in records(path):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        if record.WhichOneof("record_type") == "history":
            rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in record.history.item})
    return rows
