"""slots schedules care requests appointments audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 22:42:15.654827
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appointment',
    sa.Column('appointment_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('identifier', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('slot_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('start', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('service_type', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('booked_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('booked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancel_reason', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('appointment_id'),
    sa.UniqueConstraint('identifier')
    )
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        batch_op.create_index('ix_appointment_en_sus_week', ['idnps', 'kind', 'booked_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_appointment_request_id'), ['request_id'], unique=False)
        batch_op.create_index('ux_appointment_live_slot', ['slot_id'], unique=True, postgresql_where=sa.text("status IN ('booked', 'fulfilled', 'noshow')"), sqlite_where=sa.text("status IN ('booked', 'fulfilled', 'noshow')"))

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('roles', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=20), nullable=False),
    sa.Column('record_type', sa.String(length=40), nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('purpose', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index('ix_audit_log_record', ['record_type', 'record_id'], unique=False)

    op.create_table('care_request',
    sa.Column('request_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('origin', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=True),
    sa.Column('departement', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('family_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('given_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('sex', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('ins_nir', sqlmodel.sql.sqltypes.AutoString(length=15), nullable=True),
    sa.Column('commune_insee', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('located_by', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('reason_category', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('reason_text', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('urgency', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('needs_home_visit', sa.Boolean(), nullable=False),
    sa.Column('teleconsultation_ok', sa.Boolean(), nullable=False),
    sa.Column('mt_idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('consent_mt_referral', sa.Boolean(), nullable=False),
    sa.Column('search_seed', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('orientation', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.Column('closed_reason', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('closed_comment', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('request_id')
    )
    with op.batch_alter_table('care_request', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_request_cpts_id'), ['cpts_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_care_request_departement'), ['departement'], unique=False)
        batch_op.create_index(batch_op.f('ix_care_request_status'), ['status'], unique=False)

    op.create_table('cpts_view',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('communes', sa.JSON(), nullable=False),
    sa.Column('departements', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cpts_id')
    )
    op.create_table('schedule',
    sa.Column('schedule_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('schedule_id'),
    sa.UniqueConstraint('idnps', 'site_id', name='uq_schedule_professional_site')
    )
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_idnps'), ['idnps'], unique=False)

    op.create_table('slot',
    sa.Column('slot_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('schedule_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('commune_insee', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('departement', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('start', sa.DateTime(timezone=True), nullable=False),
    sa.Column('end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('service_type', sqlmodel.sql.sqltypes.AutoString(length=3), nullable=False),
    sa.Column('vis_public', sa.Boolean(), nullable=False),
    sa.Column('vis_pro', sa.Boolean(), nullable=False),
    sa.Column('vis_snp', sa.Boolean(), nullable=False),
    sa.Column('vis_cpts', sa.Boolean(), nullable=False),
    sa.Column('appointment_type', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('held_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('hold_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('hold_request_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('comment', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('published_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('"end" > start', name='ck_slot_end_after_start'),
    sa.PrimaryKeyConstraint('slot_id')
    )
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.create_index('ix_slot_professional_start', ['idnps', 'start'], unique=False)
        batch_op.create_index(batch_op.f('ix_slot_schedule_id'), ['schedule_id'], unique=False)
        batch_op.create_index('ix_slot_search', ['status', 'start'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('slot', schema=None) as batch_op:
        batch_op.drop_index('ix_slot_search')
        batch_op.drop_index(batch_op.f('ix_slot_schedule_id'))
        batch_op.drop_index('ix_slot_professional_start')

    op.drop_table('slot')
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_idnps'))

    op.drop_table('schedule')
    op.drop_table('cpts_view')
    with op.batch_alter_table('care_request', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_request_status'))
        batch_op.drop_index(batch_op.f('ix_care_request_departement'))
        batch_op.drop_index(batch_op.f('ix_care_request_cpts_id'))

    op.drop_table('care_request')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_record')

    op.drop_table('audit_log')
    with op.batch_alter_table('appointment', schema=None) as batch_op:
        batch_op.drop_index('ux_appointment_live_slot', postgresql_where=sa.text("status IN ('booked', 'fulfilled', 'noshow')"), sqlite_where=sa.text("status IN ('booked', 'fulfilled', 'noshow')"))
        batch_op.drop_index(batch_op.f('ix_appointment_request_id'))
        batch_op.drop_index('ix_appointment_en_sus_week')

    op.drop_table('appointment')
