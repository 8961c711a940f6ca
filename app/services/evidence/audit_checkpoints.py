"""Signed checkpoints of the audit chain's head, kept as files outside the database: a trail that was
emptied, shortened or rewritten and re-chained no longer reaches or matches them."""
from __future__ import annotations

import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path

from flask import current_app

from app.exceptions import ChainBroken, CheckpointInvalid
from app.models.types import utcnow
from app.services.evidence import audit

_DERIVED_KEY_LABEL = b"qualiflow audit checkpoints"


def _key() -> bytes:
    key = current_app.config["AUDIT_CHECKPOINT_KEY"]
    if key:
        return key.encode()
    # Development and tests only (create_app refuses production without a key): derive one from SECRET_KEY.
    return hmac.new(current_app.config["SECRET_KEY"].encode(), _DERIVED_KEY_LABEL, hashlib.sha256).digest()


def _signature(body: dict) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return hmac.new(_key(), canonical, hashlib.sha256).hexdigest()


def _directory() -> Path:
    return Path(current_app.config["AUDIT_CHECKPOINT_DIR"])


def load_checkpoints() -> list[audit.Checkpoint]:
    """Read every checkpoint file, oldest row first; raise CheckpointInvalid for one whose HMAC fails."""
    checkpoints = []
    for path in sorted(_directory().glob("checkpoint-*.json")):
        try:
            body = json.loads(path.read_text(encoding="utf-8"))
            mac = body.pop("hmac")
            checkpoint = audit.Checkpoint(int(body["last_id"]), str(body["head_hash"]),
                                          datetime.fromisoformat(body["at"]))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise CheckpointInvalid(f"The checkpoint file {path.name} cannot be read: {err}.") from err
        if not hmac.compare_digest(str(mac), _signature(body)):
            raise CheckpointInvalid(f"The checkpoint file {path.name} does not carry a valid signature: it was "
                                    "forged or altered, or AUDIT_CHECKPOINT_KEY changed.")
        checkpoints.append(checkpoint)
    return sorted(checkpoints, key=lambda checkpoint: (checkpoint.last_id, checkpoint.at))


def verify_trail() -> tuple[audit.ChainReport, list[audit.Checkpoint]]:
    """Verify the whole chain against every checkpoint; return the report and the checkpoints it used."""
    checkpoints = load_checkpoints()
    return audit.verify(checkpoints), checkpoints


def write_checkpoint(now: datetime | None = None) -> audit.Checkpoint | None:
    """Verify the rows appended since the last checkpoint and sign the head into a new checkpoint file;
    None when nothing was appended since (or the trail is empty)."""
    checkpoints = load_checkpoints()
    last = checkpoints[-1] if checkpoints else None
    report = audit.verify(since=last)
    if not report.ok:
        raise ChainBroken(f"The audit trail is broken at row {report.broken_id}: {report.problem}. "
                          "No checkpoint was written.")
    if report.last_id == (last.last_id if last else 0):
        return None
    checkpoint = audit.Checkpoint(report.last_id, report.last_hash, now or utcnow())
    body = {"last_id": checkpoint.last_id, "head_hash": checkpoint.head_hash, "at": checkpoint.at.isoformat()}
    directory = _directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-{checkpoint.last_id:012d}-{checkpoint.at:%Y%m%dT%H%M%S%fZ}.json"
    try:
        # "x": another scheduler may have written this very checkpoint; never overwrite a file.
        with path.open("x", encoding="utf-8") as file:
            json.dump({**body, "hmac": _signature(body)}, file, indent=2)
    except FileExistsError:
        pass
    return checkpoint
