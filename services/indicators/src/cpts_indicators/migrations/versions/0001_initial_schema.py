"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 20:24:35.837962
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cpts_professional_count',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('professionals', sa.Integer(), nullable=False),
    sa.Column('last_event_time', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cpts_id')
    )
    op.create_table('outbox_event',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.Column('topic', sa.String(length=200), nullable=False),
    sa.Column('key', sa.LargeBinary(), nullable=False),
    sa.Column('value', sa.LargeBinary(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_event_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_outbox_event_pending', ['id'], unique=False, postgresql_where=sa.text('published_at IS NULL'), sqlite_where=sa.text('published_at IS NULL'))

    op.create_table('processed_event',
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('consumer_group', sa.String(length=200), nullable=False),
    sa.Column('event_type', sa.String(length=200), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('event_id', 'consumer_group')
    )


def downgrade() -> None:
    op.drop_table('processed_event')
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_pending', postgresql_where=sa.text('published_at IS NULL'), sqlite_where=sa.text('published_at IS NULL'))
        batch_op.drop_index('ix_outbox_event_created_at')

    op.drop_table('outbox_event')
    op.drop_table('cpts_professional_count')
