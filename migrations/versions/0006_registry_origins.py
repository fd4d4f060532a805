"""registry origins: where attestations found beside images came from

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 17:44:02

One row per place an attestation was found (registry, repository, manifest, scheme).
"""
from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('registry_origins',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('attestation_id', sa.String(length=64), nullable=False),
    sa.Column('registry_host', sa.Text(), nullable=False),
    sa.Column('repository', sa.Text(), nullable=False),
    sa.Column('subject_digest', sa.Text(), nullable=False),
    sa.Column('manifest_digest', sa.Text(), nullable=False),
    sa.Column('scheme', sa.String(length=32), nullable=False),
    sa.Column('found_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attestation_id'], ['attestations.id'], name=op.f('fk_registry_origins_attestation_id_attestations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_registry_origins')),
    sa.UniqueConstraint('attestation_id', 'registry_host', 'repository', 'manifest_digest', name='uq_registry_origins_place')
    )
    with op.batch_alter_table('registry_origins', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_registry_origins_attestation_id'), ['attestation_id'], unique=False)
        batch_op.create_index('ix_registry_origins_subject', ['subject_digest'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('registry_origins', schema=None) as batch_op:
        batch_op.drop_index('ix_registry_origins_subject')
        batch_op.drop_index(batch_op.f('ix_registry_origins_attestation_id'))

    op.drop_table('registry_origins')
