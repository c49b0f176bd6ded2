"""alembic environment of the metrics service (run through ``python -m shared.migrate metrics``)."""

from alembic import context

from services.metrics.models import SERVICE, metadata
from shared.migrate import run_migrations

run_migrations(context, metadata, SERVICE)
