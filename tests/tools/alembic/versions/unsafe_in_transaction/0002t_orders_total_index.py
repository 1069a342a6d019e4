"""index orders.total CONCURRENTLY, but inside the migration's transaction (no
autocommit_block()), where PostgreSQL cannot build it

Revision ID: 0002t
Revises: 0001
"""
from alembic import op

revision = "0002t"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_index("orders_total_idx", "orders", ["total"], postgresql_concurrently=True)


def downgrade():
    op.drop_index("orders_total_idx", table_name="orders", postgresql_concurrently=True)
