"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 20:24:35.753746
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
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
    op.create_table('professional',
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('family_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('given_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('profession_code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('specialty_code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('commune_insee', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('cpts_ids', sa.JSON(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('idnps')
    )
    with op.batch_alter_table('professional', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_professional_commune_insee'), ['commune_insee'], unique=False)
        batch_op.create_index(batch_op.f('ix_professional_profession_code'), ['profession_code'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('professional', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_professional_profession_code'))
        batch_op.drop_index(batch_op.f('ix_professional_commune_insee'))

    op.drop_table('professional')
    op.drop_table('processed_event')
    with op.batch_alter_table('outbox_event', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_event_pending', postgresql_where=sa.text('published_at IS NULL'), sqlite_where=sa.text('published_at IS NULL'))
        batch_op.drop_index('ix_outbox_event_created_at')

    op.drop_table('outbox_event')
