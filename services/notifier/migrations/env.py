"""alembic environment of the notifier service (run through ``python -m shared.migrate notifier``)."""

from alembic import context

from services.notifier.models import SERVICE, metadata
from shared.migrate import run_migrations

run_migrations(context, metadata, SERVICE)
