"""map cells and covering index of the slot search

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:29:49.822050
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel

from cpts_snp_dispatch.domain.cells import cell_of


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.add_column(sa.Column('geo_cell', sa.Integer(), nullable=True))
        batch_op.drop_index(batch_op.f('ix_slot_search'))
        batch_op.create_index('ix_slot_free_cell', ['geo_cell', 'status', 'start', 'lat', 'lon', 'idnps', 'service_type', 'held_until', 'vis_public', 'vis_pro', 'vis_snp', 'vis_cpts'], unique=False)

    # The map cell of the slots published before.
    connection = op.get_bind()
    slot = sa.table('slot', sa.column('slot_id'), sa.column('lat'), sa.column('lon'), sa.column('geo_cell'))
    rows = connection.execute(sa.select(slot.c.slot_id, slot.c.lat, slot.c.lon).where(
        slot.c.lat.is_not(None), slot.c.lon.is_not(None))).all()
    for slot_id, lat, lon in rows:
        connection.execute(sa.update(slot).where(slot.c.slot_id == slot_id).values(geo_cell=cell_of(lat, lon)))



def downgrade() -> None:
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_free_cell')
        batch_op.create_index(batch_op.f('ix_slot_search'), ['status', 'start'], unique=False)
        batch_op.drop_column('geo_cell')

