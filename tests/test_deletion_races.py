"""A deletion may commit between a request's read and its write (a destruction
login deletes after its answer, in the same process): the request then answers
as if the account were gone, never 500."""

from __future__ import annotations

import pytest

from ghostcache.extensions import db
from ghostcache.services import accounts
from ghostcache.services.context import Context
from tests.conftest import DPASS, PASSWORD, Session


@pytest.fixture
def delete_during_hashing(app, runtime, monkeypatch):
    """Make the next password hashing step delete `victim` once it has run, as a
    racing deletion would between the request's read and its write."""

    def arm(victim_id: int) -> None:
        real_run = runtime.cpu.run

        def run_then_delete(fn, *args):
            result = real_run(fn, *args)
            monkeypatch.setattr(runtime.cpu, "run", real_run)
            accounts.delete_account(Context(db=db.session, rt=runtime), victim_id)
            return result

        monkeypatch.setattr(runtime.cpu, "run", run_then_delete)

    return arm


@pytest.mark.parametrize("password", [PASSWORD, DPASS])
def test_a_login_racing_a_deletion_is_refused_like_a_wrong_password(
    app, make_user, delete_during_hashing, password
):
    user = make_user()
    delete_during_hashing(user.id)
    answer = Session(app).login(user.username, password)
    assert answer.status_code == 401 and answer.get_json()["error"] == "invalid_credentials"


def test_a_password_change_racing_a_deletion_says_the_account_is_gone(make_user, delete_during_hashing):
    user = make_user()
    delete_during_hashing(user.id)
    answer = user.post("/password", {"password": PASSWORD, "new_password": "a brand new one"})
    assert answer.status_code == 401 and answer.get_json()["error"] == "login_required"
