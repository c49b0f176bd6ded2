"""alembic environment of the payment service (run through ``python -m shared.migrate payment``)."""

from alembic import context

from services.payment.models import SERVICE, metadata
from shared.migrate import run_migrations

run_migrations(context, metadata, SERVICE)
