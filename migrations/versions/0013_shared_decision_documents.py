"""admission decisions: explanations and requests stored once, under their SHA-256

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-03 18:25:00

Each decision's explanation (with the images and reasons shown in lists) and its request move
to two tables keyed by the SHA-256 of their shared part (app/admission/documents.py); the row
keeps the keys and the request's own values. Rows are moved in batches, and back on downgrade.

The new columns stay nullable: SQLite cannot add a NOT NULL column without rebuilding the
table, and rebuilding ``admission_decisions`` with foreign keys on would cascade-delete its
``admission_decision_images``. The old columns are dropped with SQLite's own DROP COLUMN. On
downgrade they come back NOT NULL on PostgreSQL and nullable on SQLite, for the same reason.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision = '0013'
down_revision = '0011'
branch_labels = None
depends_on = None

_BATCH = 1000
_JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
_OLD = ('images', 'reasons', 'explanation', 'request')


def upgrade() -> None:
    op.create_table('admission_explanations',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('explanation', _JSON, nullable=False),
    sa.Column('images', _JSON, nullable=False),
    sa.Column('reasons', _JSON, nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_admission_explanations'))
    )
    op.create_table('admission_requests',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('request', _JSON, nullable=False),
    sa.PrimaryKeyConstraint('sha256', name=op.f('pk_admission_requests'))
    )
    op.add_column('admission_decisions', sa.Column('explanation_key', sa.String(length=64), nullable=True))
    op.add_column('admission_decisions', sa.Column('request_key', sa.String(length=64), nullable=True))
    op.add_column('admission_decisions', sa.Column('request_own', _JSON, nullable=True))
    _move_out()
    for column in _OLD:
        op.drop_column('admission_decisions', column)
    # No query reads by uid or by outcome alone; each cost an index entry per decision.
    op.drop_index('ix_admission_decisions_uid', table_name='admission_decisions')
    op.drop_index('ix_admission_decisions_outcome', table_name='admission_decisions')


def _decisions(*columns: str) -> sa.TableClause:
    types = {
        'explanation_key': sa.String(), 'request_key': sa.String(), 'uid': sa.String(),
        'name': sa.Text(),
        'created_at': sa.DateTime(timezone=True),
    }
    return sa.table(
        'admission_decisions',
        sa.column('id', sa.String()),
        *(sa.column(c, types.get(c, _JSON)) for c in columns),
    )


def _move_out() -> None:
    import hashlib

    from app.admission.documents import (
        canonical_bytes,
        explanation_body,
        split_explanation,
        split_request,
        time_text,
    )

    decisions = _decisions('uid', 'created_at', 'name', *_OLD, 'explanation_key', 'request_key', 'request_own')
    explanations = sa.table(
        'admission_explanations',
        sa.column('sha256', sa.String()),
        sa.column('explanation', _JSON),
        sa.column('images', _JSON),
        sa.column('reasons', _JSON),
    )
    requests = sa.table(
        'admission_requests', sa.column('sha256', sa.String()), sa.column('request', _JSON)
    )
    bind = op.get_bind()
    stored: set[tuple[str, str]] = set()
    last = ''
    while True:
        batch = bind.execute(
            sa.select(
                decisions.c.id, decisions.c.uid, decisions.c.created_at, decisions.c.name,
                *(decisions.c[c] for c in _OLD),
            )
            .where(decisions.c.id > last)
            .order_by(decisions.c.id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        new_explanations, new_requests, keys = [], [], []
        for row in batch:
            shared = split_explanation(
                canonical_bytes(row.explanation), row.id, row.uid, time_text(row.created_at),
                row.name,
            )
            body = explanation_body(shared, row.images, row.reasons)
            explanation_key = hashlib.sha256(body).hexdigest()
            if ('e', explanation_key) not in stored:
                stored.add(('e', explanation_key))
                new_explanations.append({
                    'sha256': explanation_key,
                    'explanation': _value(shared),
                    'images': row.images,
                    'reasons': row.reasons,
                })
            template, own = split_request(row.request, row.uid)
            request_key = hashlib.sha256(template).hexdigest()
            if ('r', request_key) not in stored:
                stored.add(('r', request_key))
                new_requests.append({'sha256': request_key, 'request': _value(template)})
            keys.append({'k': row.id, 'e': explanation_key, 'r': request_key, 'o': own})
        if new_explanations:
            bind.execute(explanations.insert(), new_explanations)
        if new_requests:
            bind.execute(requests.insert(), new_requests)
        bind.execute(
            decisions.update()
            .where(decisions.c.id == sa.bindparam('k'))
            .values(
                explanation_key=sa.bindparam('e'),
                request_key=sa.bindparam('r'),
                request_own=sa.bindparam('o', type_=_JSON),
            ),
            keys,
        )
        last = batch[-1].id


def _value(canonical: bytes) -> object:
    from app import jsoncodec

    return jsoncodec.loads_exact(canonical)


def downgrade() -> None:
    op.create_index('ix_admission_decisions_outcome', 'admission_decisions', ['outcome'])
    op.create_index('ix_admission_decisions_uid', 'admission_decisions', ['uid'])
    for column in _OLD:
        op.add_column('admission_decisions', sa.Column(column, _JSON, nullable=True))
    _move_back()
    if op.get_bind().dialect.name == 'postgresql':
        for column in _OLD:
            op.alter_column('admission_decisions', column, nullable=False)
    op.drop_column('admission_decisions', 'request_own')
    op.drop_column('admission_decisions', 'request_key')
    op.drop_column('admission_decisions', 'explanation_key')
    op.drop_table('admission_requests')
    op.drop_table('admission_explanations')


def _move_back() -> None:
    from app.admission.documents import join_explanation, join_request, time_text

    decisions = _decisions('uid', 'created_at', 'name', 'explanation_key', 'request_key', 'request_own', *_OLD)
    explanations = sa.table(
        'admission_explanations',
        sa.column('sha256', sa.String()),
        sa.column('explanation', _JSON),
        sa.column('images', _JSON),
        sa.column('reasons', _JSON),
    )
    requests = sa.table(
        'admission_requests', sa.column('sha256', sa.String()), sa.column('request', _JSON)
    )
    bind = op.get_bind()
    last = ''
    while True:
        batch = bind.execute(
            sa.select(
                decisions.c.id, decisions.c.uid, decisions.c.created_at, decisions.c.name,
                decisions.c.request_own,
                explanations.c.explanation, explanations.c.images, explanations.c.reasons,
                requests.c.request,
            )
            .join(explanations, explanations.c.sha256 == decisions.c.explanation_key)
            .join(requests, requests.c.sha256 == decisions.c.request_key)
            .where(decisions.c.id > last)
            .order_by(decisions.c.id)
            .limit(_BATCH)
        ).all()
        if not batch:
            return
        bind.execute(
            decisions.update()
            .where(decisions.c.id == sa.bindparam('k'))
            .values({c: sa.bindparam(f'v_{c}', type_=_JSON) for c in _OLD}),
            [
                {
                    'k': row.id,
                    'v_images': row.images,
                    'v_reasons': row.reasons,
                    'v_explanation': join_explanation(
                        row.explanation, row.id, row.uid, time_text(row.created_at), row.name
                    ),
                    'v_request': join_request(row.request, row.request_own, row.uid),
                }
                for row in batch
            ],
        )
        last = batch[-1].id
