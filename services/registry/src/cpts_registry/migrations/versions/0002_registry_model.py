"""professionals, sites, CPTS, memberships, SAS participation, MT capacity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 21:08:01.949180
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cpts',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('aci_signed_on', sa.Date(), nullable=True),
    sa.Column('missions', sa.JSON(), nullable=False),
    sa.Column('population', sa.Integer(), nullable=False),
    sa.Column('size_band', sa.Integer(), nullable=False),
    sa.Column('departements', sa.JSON(), nullable=False),
    sa.Column('registered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('cpts_id')
    )
    op.create_table('practice_site',
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('address', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('postcode', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.Column('commune_insee', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=True),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('site_id')
    )
    with op.batch_alter_table('practice_site', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_practice_site_commune_insee'), ['commune_insee'], unique=False)
        batch_op.create_index(batch_op.f('ix_practice_site_postcode'), ['postcode'], unique=False)

    op.create_table('activity',
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('site_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('practice_mode', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('sector_code', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
    sa.ForeignKeyConstraint(['idnps'], ['professional.idnps'], ),
    sa.ForeignKeyConstraint(['site_id'], ['practice_site.site_id'], ),
    sa.PrimaryKeyConstraint('idnps', 'site_id')
    )
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_activity_site_id'), ['site_id'], unique=False)

    op.create_table('cpts_commune',
    sa.Column('commune_insee', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.ForeignKeyConstraint(['cpts_id'], ['cpts.cpts_id'], ),
    sa.PrimaryKeyConstraint('commune_insee')
    )
    with op.batch_alter_table('cpts_commune', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cpts_commune_cpts_id'), ['cpts_id'], unique=False)

    op.create_table('membership',
    sa.Column('cpts_id', sqlmodel.sql.sqltypes.AutoString(length=9), nullable=False),
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['cpts_id'], ['cpts.cpts_id'], ),
    sa.ForeignKeyConstraint(['idnps'], ['professional.idnps'], ),
    sa.PrimaryKeyConstraint('cpts_id', 'idnps')
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_idnps'), ['idnps'], unique=False)

    op.create_table('mt_capacity',
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('accepting', sa.Boolean(), nullable=False),
    sa.Column('new_patients_per_month', sa.Integer(), nullable=False),
    sa.Column('publics', sa.JSON(), nullable=False),
    sa.Column('until', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['idnps'], ['professional.idnps'], ),
    sa.PrimaryKeyConstraint('idnps')
    )
    op.create_table('sas_participation',
    sa.Column('idnps', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('mode', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('hours_per_week', sa.Float(), nullable=False),
    sa.Column('accepts_en_sus', sa.Boolean(), nullable=False),
    sa.Column('en_sus_weekly_cap', sa.Integer(), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=False),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['idnps'], ['professional.idnps'], ),
    sa.PrimaryKeyConstraint('idnps')
    )
    with op.batch_alter_table('professional', schema=None) as batch_op:
        batch_op.add_column(sa.Column('civility', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        batch_op.add_column(sa.Column('profession_label', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=True))
        batch_op.add_column(sa.Column('specialty_label', sqlmodel.sql.sqltypes.AutoString(length=150), nullable=True))
        batch_op.add_column(sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False, server_default='api'))
        batch_op.add_column(sa.Column('content_hash', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('updated_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index(batch_op.f('ix_professional_specialty_code'), ['specialty_code'], unique=False)
        batch_op.drop_column('cpts_ids')


def downgrade() -> None:
    with op.batch_alter_table('professional', schema=None) as batch_op:
        batch_op.add_column(sa.Column('cpts_ids', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.drop_index(batch_op.f('ix_professional_specialty_code'))
        batch_op.drop_column('updated_at')
        batch_op.drop_column('content_hash')
        batch_op.drop_column('source')
        batch_op.drop_column('specialty_label')
        batch_op.drop_column('profession_label')
        batch_op.drop_column('civility')

    op.drop_table('sas_participation')
    op.drop_table('mt_capacity')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_idnps'))

    op.drop_table('membership')
    with op.batch_alter_table('cpts_commune', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cpts_commune_cpts_id'))

    op.drop_table('cpts_commune')
    with op.batch_alter_table('activity', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_activity_site_id'))

    op.drop_table('activity')
    with op.batch_alter_table('practice_site', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_practice_site_postcode'))
        batch_op.drop_index(batch_op.f('ix_practice_site_commune_insee'))

    op.drop_table('practice_site')
    op.drop_table('cpts')
