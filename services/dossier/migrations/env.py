"""alembic environment of the dossier service (run through ``python -m shared.migrate dossier``)."""

from alembic import context

from services.dossier.models import SERVICE, metadata
from shared.migrate import run_migrations

run_migrations(context, metadata, SERVICE)
