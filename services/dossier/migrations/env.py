"""alembic environment of the dossier service (run through ``python -m shared.migrate dossier``)."""

from alembic import context

from services.dossier.models import SERVICE, metadata
from shared.db import create_engine

config = context.config
engine = create_engine(config.get_main_option("sqlalchemy.url"), pool_size=1)

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        version_table=f"alembic_version_{SERVICE}",
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
