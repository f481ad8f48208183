"""The classifier's token statistics join the schema: table `token_stats`.

Before this revision the token store created the table itself (CREATE TABLE IF NOT EXISTS, outside the
migrations). A database that has it from then is adopted as it is, counts and all, when its columns are
the ones this revision would create; a table of another shape stops the migration with its name rather
than being dropped or altered.

Revision ID: 0006
Revises: 0005
Create Date: 2027-01-12
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLE = "token_stats"
COUNT = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# column → (Python type of its values, nullable); the old CREATE TABLE made exactly these
SHAPE = {"token": (str, False), "spam": (int, False), "ham": (int, False)}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if inspector.has_table(TABLE):
        _check_adoptable(inspector)
        return
    op.create_table(
        TABLE,
        sa.Column("token", sa.String(200), primary_key=True),
        sa.Column("spam", COUNT, nullable=False),
        sa.Column("ham", COUNT, nullable=False),
    )


def downgrade() -> None:
    op.drop_table(TABLE)


def _check_adoptable(inspector: sa.Inspector) -> None:
    """Refuse a `token_stats` that is not the one older versions made: keyed by token, two counters."""
    columns = {c["name"]: c for c in inspector.get_columns(TABLE)}
    shape = {name: (c["type"].python_type, bool(c["nullable"])) for name, c in columns.items()}
    key = inspector.get_pk_constraint(TABLE).get("constrained_columns") or []
    if shape != SHAPE or key != ["token"]:
        raise RuntimeError(
            f"table {TABLE} exists with columns {sorted(columns)} keyed by {key}, not the classifier's "
            f"token statistics (token, spam, ham keyed by token): rename or drop it, then migrate again"
        )
