"""Evidence: the append-only, hash-chained audit trail and its checkpoints, e-signatures, signed document
revisions, document rendering and storage, and verification of what was stored against what was recorded."""
