"""registry read model

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 21:27:31.937346
"""

from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('gp_view', schema=None) as batch_op:
        batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('accepting', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('new_patients_per_month', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('publics', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('accepting_until', sa.Date(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('gp_view', schema=None) as batch_op:
        batch_op.drop_column('accepting_until')
        batch_op.drop_column('publics')
        batch_op.drop_column('new_patients_per_month')
        batch_op.drop_column('accepting')
        batch_op.drop_column('active')

