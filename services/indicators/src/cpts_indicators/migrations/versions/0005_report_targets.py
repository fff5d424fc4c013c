"""ACI targets of a CPTS (annual report)

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 02:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('indicator_target',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('indicator_id', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('target', sa.Float(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('recorded_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('cpts_id', 'year', 'indicator_id')
    )


def downgrade() -> None:
    op.drop_table('indicator_target')
