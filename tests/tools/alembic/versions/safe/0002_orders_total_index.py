"""index orders.total without blocking writes

CREATE INDEX CONCURRENTLY cannot run inside a transaction: autocommit_block() commits
the migration's transaction and runs the statement on its own.

Revision ID: 0002
Revises: 0001
"""
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.create_index("orders_total_idx", "orders", ["total"], postgresql_concurrently=True)


def downgrade():
    with op.get_context().autocommit_block():
        op.drop_index("orders_total_idx", table_name="orders", postgresql_concurrently=True)
