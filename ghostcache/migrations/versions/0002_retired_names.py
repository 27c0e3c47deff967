"""retired usernames; shares only between accepted contacts

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "retired_name",
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("tag", name=op.f("pk_retired_name")),
    )
    with op.batch_alter_table("retired_name", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_retired_name_until"), ["until"], unique=False)
    # Files may now be shared only with accepted contacts: take back earlier shares
    # with anyone else, as if the owner had revoked them.
    op.execute(
        """
        DELETE FROM file_access WHERE NOT EXISTS (
            SELECT 1 FROM file, connection
            WHERE file.id = file_access.file_id
              AND connection.status = 'accepted'
              AND connection.pair_low = CASE WHEN file.owner_id < file_access.user_id
                                            THEN file.owner_id ELSE file_access.user_id END
              AND connection.pair_high = CASE WHEN file.owner_id < file_access.user_id
                                             THEN file_access.user_id ELSE file.owner_id END
        )
        """
    )


def downgrade():
    with op.batch_alter_table("retired_name", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_retired_name_until"))
    op.drop_table("retired_name")
