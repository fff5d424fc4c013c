"""CPTS memberships of the professionals as rows

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-24 06:10:00

Who sees the CPTS slots of whom (a secretary: the members of their CPTS) was found by reading every
professional's `cpts_ids`; `cpts_member_view` answers it by an index. Filled from the existing read model.
"""

import json

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'cpts_member_view',
        sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
        sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.PrimaryKeyConstraint('cpts_id', 'idnps'),
    )
    op.create_index(op.f('ix_cpts_member_view_idnps'), 'cpts_member_view', ['idnps'], unique=False)
    connection = op.get_bind()
    view = sa.table('professional_view', sa.column('idnps'), sa.column('cpts_ids', sa.JSON))
    members = sa.table('cpts_member_view', sa.column('cpts_id'), sa.column('idnps'))
    rows = []
    for idnps, cpts_ids in connection.execute(sa.select(view.c.idnps, view.c.cpts_ids)):
        ids = json.loads(cpts_ids) if isinstance(cpts_ids, str) else cpts_ids or []
        rows += [{"cpts_id": cpts_id, "idnps": idnps} for cpts_id in sorted(set(ids))]
    for start in range(0, len(rows), 1000):
        connection.execute(sa.insert(members), rows[start:start + 1000])


def downgrade() -> None:
    op.drop_index(op.f('ix_cpts_member_view_idnps'), table_name='cpts_member_view')
    op.drop_table('cpts_member_view')
