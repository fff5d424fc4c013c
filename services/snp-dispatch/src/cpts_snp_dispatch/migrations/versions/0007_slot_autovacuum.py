"""autovacuum of the slot table keeps its visibility map fresh

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 05:40:00

The slot search is answered by an index-only scan of `ix_slot_free_cell`, which reads the table itself for every
slot of a page that changed since the last vacuum. Holds, bookings and publications change slots all day: with
the default thresholds (a fifth of the table) the table would be vacuumed too seldom for the scan to stay
index-only. PostgreSQL only; SQLite has no such setting.
"""

from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

SETTINGS = ("autovacuum_vacuum_scale_factor", "autovacuum_vacuum_insert_scale_factor",
            "autovacuum_analyze_scale_factor")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE slot SET (autovacuum_vacuum_scale_factor = 0.01, "
                   "autovacuum_vacuum_insert_scale_factor = 0.01, autovacuum_analyze_scale_factor = 0.02)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE slot RESET ({', '.join(SETTINGS)})")
