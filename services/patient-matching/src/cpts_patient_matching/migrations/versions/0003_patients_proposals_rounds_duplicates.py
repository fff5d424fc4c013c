"""patients proposals rounds duplicates scheduler audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:10:45.488276
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
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

    op.create_table('cpts_view',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('communes', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('cpts_id')
    )
    op.create_table('duplicate_candidate',
    sa.Column('candidate_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('patient_a', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('patient_b', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=15), nullable=False),
    sa.Column('detected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.PrimaryKeyConstraint('candidate_id'),
    sa.UniqueConstraint('patient_a', 'patient_b', name='uq_duplicate_pair')
    )
    with op.batch_alter_table('duplicate_candidate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_duplicate_candidate_patient_a'), ['patient_a'], unique=False)
        batch_op.create_index(batch_op.f('ix_duplicate_candidate_patient_b'), ['patient_b'], unique=False)
        batch_op.create_index('ix_duplicate_cpts_status', ['cpts_id', 'status'], unique=False)

    op.create_table('exclusion',
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('patient_id', 'idnps')
    )
    op.create_table('matching_round',
    sa.Column('round_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('trigger', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('started_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('patients', sa.Integer(), nullable=False),
    sa.Column('gps', sa.Integer(), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('proposals', sa.Integer(), nullable=False),
    sa.Column('weight_waiting', sa.Integer(), nullable=False),
    sa.Column('weighted_served', sa.Integer(), nullable=False),
    sa.Column('total_distance_units', sa.Integer(), nullable=False),
    sa.Column('spread_cost', sa.Integer(), nullable=False),
    sa.Column('fcfs_served', sa.Integer(), nullable=False),
    sa.Column('fcfs_weighted_served', sa.Integer(), nullable=False),
    sa.Column('fcfs_total_distance_units', sa.Integer(), nullable=False),
    sa.Column('fcfs_spread_cost', sa.Integer(), nullable=False),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('round_id')
    )
    with op.batch_alter_table('matching_round', schema=None) as batch_op:
        batch_op.create_index('ix_matching_round_cpts_started', ['cpts_id', 'started_at'], unique=False)

    op.create_table('patient',
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('source_ref', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('birth_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('used_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('first_names', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('birth_date', sa.Date(), nullable=False),
    sa.Column('sex', sqlmodel.sql.sqltypes.AutoString(length=1), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('ins_nir', sqlmodel.sql.sqltypes.AutoString(length=15), nullable=True),
    sa.Column('trait_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('used_trait_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('commune_insee', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('max_distance_km', sa.Float(), nullable=True),
    sa.Column('needs_home_visit', sa.Boolean(), nullable=False),
    sa.Column('consent_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('consent_source', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('ald', sa.Boolean(), nullable=False),
    sa.Column('c2s', sa.Boolean(), nullable=False),
    sa.Column('pregnancy', sa.Boolean(), nullable=False),
    sa.Column('disability', sa.Boolean(), nullable=False),
    sa.Column('hospital_discharge_on', sa.Date(), nullable=True),
    sa.Column('complex', sa.Boolean(), nullable=False),
    sa.Column('complex_assessed_on', sa.Date(), nullable=True),
    sa.Column('complex_assessed_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True),
    sa.Column('priority_facts', sa.JSON(), server_default='[]', nullable=False),
    sa.Column('age_band', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('mt_idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('ended_reason', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.Column('merged_into', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('patient_id')
    )
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.create_index('ix_patient_cpts_birth_date', ['cpts_id', 'birth_date'], unique=False)
        batch_op.create_index('ix_patient_cpts_status', ['cpts_id', 'status'], unique=False)
        batch_op.create_index('ix_patient_cpts_trait_key', ['cpts_id', 'trait_key'], unique=False)
        batch_op.create_index('ix_patient_cpts_used_trait_key', ['cpts_id', 'used_trait_key'], unique=False)
        batch_op.create_index('ux_patient_cpts_ins', ['cpts_id', 'ins_nir'], unique=True, postgresql_where=sa.text("ins_nir IS NOT NULL AND status <> 'merged'"), sqlite_where=sa.text("ins_nir IS NOT NULL AND status <> 'merged'"))

    op.create_table('proposal',
    sa.Column('proposal_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('patient_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('round_id', sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('distance_km', sa.Float(), nullable=False),
    sa.Column('made_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('deadline', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('decided_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('declined_by', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('decline_reason', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=True),
    sa.PrimaryKeyConstraint('proposal_id')
    )
    with op.batch_alter_table('proposal', schema=None) as batch_op:
        batch_op.create_index('ix_proposal_cpts_status', ['cpts_id', 'status'], unique=False)
        batch_op.create_index('ix_proposal_gp_made_at', ['idnps', 'made_at'], unique=False)
        batch_op.create_index('ix_proposal_gp_status', ['idnps', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposal_patient_id'), ['patient_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_proposal_round_id'), ['round_id'], unique=False)
        batch_op.create_index('ix_proposal_status_deadline', ['status', 'deadline'], unique=False)
        batch_op.create_index('ux_proposal_pending_patient', ['patient_id'], unique=True, postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))

    op.create_table('scheduler_state',
    sa.Column('job', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('job')
    )
    with op.batch_alter_table('gp_view', schema=None) as batch_op:
        batch_op.add_column(sa.Column('family_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('given_name', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('site_commune_insee', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True))
        batch_op.add_column(sa.Column('lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lon', sa.Float(), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('gp_view', schema=None) as batch_op:
        batch_op.drop_column('lon')
        batch_op.drop_column('lat')
        batch_op.drop_column('site_commune_insee')
        batch_op.drop_column('given_name')
        batch_op.drop_column('family_name')

    op.drop_table('scheduler_state')
    with op.batch_alter_table('proposal', schema=None) as batch_op:
        batch_op.drop_index('ux_proposal_pending_patient', postgresql_where=sa.text("status = 'pending'"), sqlite_where=sa.text("status = 'pending'"))
        batch_op.drop_index('ix_proposal_status_deadline')
        batch_op.drop_index(batch_op.f('ix_proposal_round_id'))
        batch_op.drop_index(batch_op.f('ix_proposal_patient_id'))
        batch_op.drop_index('ix_proposal_gp_status')
        batch_op.drop_index('ix_proposal_gp_made_at')
        batch_op.drop_index('ix_proposal_cpts_status')

    op.drop_table('proposal')
    with op.batch_alter_table('patient', schema=None) as batch_op:
        batch_op.drop_index('ux_patient_cpts_ins', postgresql_where=sa.text("ins_nir IS NOT NULL AND status <> 'merged'"), sqlite_where=sa.text("ins_nir IS NOT NULL AND status <> 'merged'"))
        batch_op.drop_index('ix_patient_cpts_used_trait_key')
        batch_op.drop_index('ix_patient_cpts_trait_key')
        batch_op.drop_index('ix_patient_cpts_status')
        batch_op.drop_index('ix_patient_cpts_birth_date')

    op.drop_table('patient')
    with op.batch_alter_table('matching_round', schema=None) as batch_op:
        batch_op.drop_index('ix_matching_round_cpts_started')

    op.drop_table('matching_round')
    op.drop_table('exclusion')
    with op.batch_alter_table('duplicate_candidate', schema=None) as batch_op:
        batch_op.drop_index('ix_duplicate_cpts_status')
        batch_op.drop_index(batch_op.f('ix_duplicate_candidate_patient_b'))
        batch_op.drop_index(batch_op.f('ix_duplicate_candidate_patient_a'))

    op.drop_table('duplicate_candidate')
    op.drop_table('cpts_view')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_log_record')

    op.drop_table('audit_log')
