"""alembic environment of the postal service (run through ``python -m shared.migrate postal``)."""

from alembic import context

from services.postal.models import SERVICE, metadata
from shared.migrate import run_migrations

run_migrations(context, metadata, SERVICE)
