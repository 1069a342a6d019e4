"""fill orders.status after the column's transaction has committed

autocommit_block() commits the migration's transaction (and with it the ADD COLUMN's
lock) and runs the UPDATE on its own; a large table would be filled in batches here.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade():
    with op.get_context().autocommit_block():
        op.execute("UPDATE orders SET status = 'new' WHERE status IS NULL")


def downgrade():
    pass
