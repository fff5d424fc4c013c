"""pending snapshots

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:30:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('indicator_pending_snapshot',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('period_key', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('marked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cpts_id', 'period', 'period_key')
    )


def downgrade() -> None:
    op.drop_table('indicator_pending_snapshot')
