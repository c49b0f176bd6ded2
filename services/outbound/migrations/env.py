"""alembic environment of the outbound service (run through ``python -m shared.migrate outbound``)."""

from alembic import context

from services.outbound.models import SERVICE, metadata
from shared.migrate import run_migrations

run_migrations(context, metadata, SERVICE)
