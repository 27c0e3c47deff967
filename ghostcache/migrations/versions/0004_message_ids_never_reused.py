"""message ids are never reused (SQLite AUTOINCREMENT)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Without AUTOINCREMENT, SQLite hands out max(id)+1: once the newest messages are
# deleted (a removed contact, a destroyed account) their ids come back, and a client's
# Last-Event-ID or a stream's cursor may already be past them. Rebuilding the table in
# batch mode is safe here, unlike for `user` or `connection` (see 0003): no table refers
# to `message`, so dropping the old copy cascades nowhere. Other databases ignore the flag
# (PostgreSQL sequences never go back).


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table("message", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    with op.batch_alter_table("message", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
