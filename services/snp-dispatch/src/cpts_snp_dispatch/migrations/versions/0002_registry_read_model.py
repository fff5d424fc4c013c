"""registry read model

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 21:27:28.853189
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('professional_view', schema=None) as batch_op:
        batch_op.add_column(sa.Column('civility', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column('active', sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column('sites', sa.JSON(), server_default='[]', nullable=False))
        batch_op.add_column(sa.Column('sas_participant', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('sas_mode', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column('accepts_en_sus', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('en_sus_weekly_cap', sa.Integer(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('professional_view', schema=None) as batch_op:
        batch_op.drop_column('en_sus_weekly_cap')
        batch_op.drop_column('accepts_en_sus')
        batch_op.drop_column('sas_mode')
        batch_op.drop_column('sas_participant')
        batch_op.drop_column('sites')
        batch_op.drop_column('active')
        batch_op.drop_column('civility')

