"""After an account ends, its name stays reserved: nobody can tell how it ended."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from ghostcache.extensions import db
from tests.conftest import DPASS, PASSWORD, Session
from tests.test_maintenance import purge

INACTIVITY_DAYS = 30  # the default the fixtures use


def _destroy(app, user: Session) -> None:
    assert Session(app).login(user.username, DPASS).status_code == 401


def _delete(app, user: Session) -> None:
    assert user.post("/delete_account").status_code == 200


def _go_idle(app, user: Session, clock) -> None:
    clock.advance(days=INACTIVITY_DAYS + 1)
    assert purge(app).inactive_accounts >= 1


ENDINGS = {"destroyed": _destroy, "deleted": _delete}


def _ended(app, make_user, clock, ending: str) -> Session:
    user = make_user()
    if ending == "purged":
        _go_idle(app, user, clock)
    else:
        ENDINGS[ending](app, user)
    return user


@pytest.mark.parametrize("ending", ["destroyed", "deleted", "purged"])
def test_an_ended_accounts_name_answers_exactly_like_a_live_one(app, make_user, clock, ending):
    live = make_user()
    gone = _ended(app, make_user, clock, ending)
    for name, other in ((gone.username, live.username), (gone.username.upper(), live.username.upper())):
        taken, taken_live = Session(app).register(name), Session(app).register(other)
        assert (taken.status_code, taken.get_json()) == (taken_live.status_code, taken_live.get_json())
        assert taken.status_code == 409 and taken.get_json()["error"] == "username_taken"
    old_password = Session(app).login(gone.username, PASSWORD)
    wrong_password = Session(app).login(live.username, "not the password at all")
    assert old_password.status_code == wrong_password.status_code == 401
    assert old_password.get_json() == wrong_password.get_json()


def test_a_destroyed_name_comes_free_when_an_abandoned_one_would(app, make_user, clock):
    """Destroyed at T or last seen at T: both names are free again at T + 2x inactivity."""
    destroyed, abandoned = make_user(), make_user()
    _destroy(app, destroyed)
    clock.advance(days=INACTIVITY_DAYS + 1)
    purge(app)  # the abandoned account goes now
    clock.advance(days=INACTIVITY_DAYS - 2)  # T + 59 days
    purge(app)
    for user in (destroyed, abandoned):
        assert Session(app).register(user.username).status_code == 409
    clock.advance(days=1, hours=1)  # past T + 60 days
    assert purge(app).released_names == 2
    for user in (destroyed, abandoned):
        assert Session(app).register(user.username).status_code == 201


def test_the_reservation_does_not_store_the_name(app, settings, make_user):
    user = make_user()
    name = user.username
    _destroy(app, user)
    with app.app_context():
        rows = db.session.execute(text("SELECT * FROM retired_name")).all()
    assert len(rows) == 1
    assert not any(name.lower() in str(value).lower() for value in rows[0])


def test_a_live_user_can_still_take_a_name_nobody_had(app, make_user):
    make_user("someone")
    assert Session(app).register("someone_else").status_code == 201
