"""``make chaos``: the reliability promises under faults, measured against the dossier service's own
database (the oracle). See chaos/run.py."""
