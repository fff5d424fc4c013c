"""steering questionnaire

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24 02:00:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('steering_questionnaire',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('questionnaire_version', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('prefilled', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('cpts_id', 'year')
    )


def downgrade() -> None:
    op.drop_table('steering_questionnaire')
