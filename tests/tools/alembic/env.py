"""Alembic environment: online migrations only, against $DATABASE_URL
(postgres://user:password@host:port/db) through SQLAlchemy's psycopg 3 dialect."""
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

fileConfig(context.config.config_file_name)

url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql+psycopg://", 1)
engine = create_engine(url)

with engine.connect() as connection:
    context.configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()
