"""audit log append-only and query indexes

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 01:55:00.000000
"""

from alembic import op
from cpts_platform.audit import append_only_statements, drop_append_only_statements

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_at', ['at'], unique=False)
        batch_op.create_index('ix_audit_log_subject', ['subject'], unique=False)

    # The database itself refuses UPDATE and DELETE on the audit trail.
    for statement in append_only_statements(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_statements(op.get_bind().dialect.name):
        op.execute(statement)
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_subject')
        batch_op.drop_index('ix_audit_log_at')
