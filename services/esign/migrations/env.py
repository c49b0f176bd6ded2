"""alembic environment of the esign service (run through ``python -m shared.migrate esign``)."""

from alembic import context

from services.esign.models import SERVICE, metadata
from shared.migrate import run_migrations

run_migrations(context, metadata, SERVICE)
