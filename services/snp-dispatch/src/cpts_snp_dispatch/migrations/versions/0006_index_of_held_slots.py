"""index of held slots

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 02:20:00
"""

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.create_index('ix_slot_held_until', ['held_until'], unique=False,
                              postgresql_where=sa.text('held_until IS NOT NULL'),
                              sqlite_where=sa.text('held_until IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_held_until', postgresql_where=sa.text('held_until IS NOT NULL'),
                            sqlite_where=sa.text('held_until IS NOT NULL'))
