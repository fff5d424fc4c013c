"""facts and snapshots

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:12:32.575569
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('indicator_fact',
    sa.Column('event_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('event_type', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('event_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ref_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('attributes', sa.JSON(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', 'cpts_id')
    )
    with op.batch_alter_table('indicator_fact', schema=None) as batch_op:
        batch_op.create_index('ix_indicator_fact_entity', ['cpts_id', 'entity'], unique=False)
        batch_op.create_index('ix_indicator_fact_event_time', ['cpts_id', 'event_type', 'event_time'], unique=False)
        batch_op.create_index('ix_indicator_fact_ref_time', ['cpts_id', 'event_type', 'ref_time'], unique=False)
        batch_op.create_index('ix_indicator_fact_subject', ['subject', 'event_type'], unique=False)

    op.create_table('indicator_snapshot',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('period', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('period_key', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('period_start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sequence', sa.Integer(), nullable=False),
    sa.Column('digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('content', sa.JSON(), nullable=True),
    sa.Column('emitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('final', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('cpts_id', 'period', 'period_key')
    )


def downgrade() -> None:
    op.drop_table('indicator_snapshot')
    with op.batch_alter_table('indicator_fact', schema=None) as batch_op:
        batch_op.drop_index('ix_indicator_fact_subject')
        batch_op.drop_index('ix_indicator_fact_ref_time')
        batch_op.drop_index('ix_indicator_fact_event_time')
        batch_op.drop_index('ix_indicator_fact_entity')

    op.drop_table('indicator_fact')
