"""Schemathesis against a real server: every operation of /openapi.json, fuzzed with
schema-valid and schema-violating inputs, as a logged-in user (session cookie and
X-CSRFToken on every call). Any 5xx, any answer off its documented schema, status
or content type fails the test. Bounded: MAX_EXAMPLES per operation and pass, and
TIME_BUDGET seconds in all. Prints the counts (operations, examples, failures).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.live import LiveServer

pytestmark = pytest.mark.live

MAX_EXAMPLES = 20
STATEFUL_RUNS = 15
TIME_BUDGET = 120.0
REQUEST_TIMEOUT = 15
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
# These end the session they run in: they get a throwaway user, after the rest.
SESSION_ENDING = {"GET /logout", "POST /logout", "POST /delete_account", "POST /password"}
# The event stream stays open GHOSTCACHE_STREAM_SECONDS (5 s on a LiveServer).
EXAMPLES = {"GET /chat/stream": 1}
PASSWORD, DPASS = "correct horse battery", "destroy everything now"


@dataclass
class Identity:
    """A logged-in user: what every call carries."""

    id: int
    username: str
    cookie: str
    token: str

    def call_kwargs(self) -> dict:
        return {
            "headers": {"Accept": "application/json", "X-CSRFToken": self.token},
            "cookies": {"session": self.cookie},
            "timeout": REQUEST_TIMEOUT,
        }


def sign_up(base: str, username: str) -> tuple[Identity, requests.Session]:
    http = requests.Session()
    token = http.get(f"{base}/csrf", timeout=10).json()["csrf_token"]
    headers = {"X-CSRFToken": token, "Accept": "application/json"}
    answer = http.post(
        f"{base}/register",
        headers=headers,
        timeout=30,
        json={"username": username, "password": PASSWORD, "d_pass": DPASS},
    )
    assert answer.status_code == 201, answer.text
    answer = http.post(
        f"{base}/login", headers=headers, timeout=30, json={"username": username, "password": PASSWORD}
    )
    assert answer.status_code == 200, answer.text
    me = answer.json()
    http.headers.update({"Accept": "application/json", "X-CSRFToken": me["csrf_token"]})
    return Identity(me["id"], username, http.cookies["session"], me["csrf_token"]), http


@dataclass
class Tally:
    examples: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    kinds: Counter = field(default_factory=Counter)
    linked_steps: int = 0

    def record(self, label: str, case, error: BaseException) -> None:
        if isinstance(error, FailureGroup):
            titles = sorted({failure.title for failure in error.exceptions})
        else:
            titles = [f"{type(error).__name__}: {error}"]
        self.kinds.update(titles)
        self.failures.append(f"{label}: {'; '.join(titles)}\n{str(error)[:700]}")


def fuzz(
    operation,
    who: Identity,
    base: str,
    tally: Tally,
    deadline: float,
    mode: GenerationMode,
    path_parameters: dict | None = None,
) -> None:
    """Up to MAX_EXAMPLES calls of one operation; failures are recorded, not shrunk."""
    label = operation.label

    @settings(
        max_examples=EXAMPLES.get(label, MAX_EXAMPLES),
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case) -> None:
        if tally.examples[label] and time.monotonic() > deadline:
            return  # out of time: every operation still gets its first example
        tally.examples[label] += 1
        try:
            response = case.call(base_url=base, **who.call_kwargs())
        except requests.RequestException as error:
            tally.record(f"{label} [{mode.value}]", case, error)
            return
        tally.statuses[response.status_code // 100] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as error:
            tally.record(f"{label} [{mode.value}]", case, error)

    try:
        run()
    except Unsatisfiable:  # negative mode on an operation with no inputs to break
        assert mode is GenerationMode.NEGATIVE, label


def known_ids(
    base: str,
    http: requests.Session,
    friend: Identity,
    friend_http: requests.Session,
    asker_http: requests.Session,
) -> dict:
    """Real ids for path parameters, so generated inputs also reach the success paths:
    an accepted contact, an uploaded file, a request waiting for my answer, an open invite."""
    conn = http.post(f"{base}/connect", json={"username": friend.username}, timeout=10).json()
    assert friend_http.post(f"{base}/connect/accept/{conn['id']}", timeout=30).status_code == 200
    pending = asker_http.post(f"{base}/connect", json={"username": "fuzzer"}, timeout=10).json()
    upload = http.post(f"{base}/file/upload", files={"file": ("seed.txt", b"seed")}, timeout=30)
    assert upload.status_code == 201, upload.text
    invite = http.post(f"{base}/invites", json={"days": 3}, timeout=10)
    assert invite.status_code == 201, invite.text
    return {
        "invite_id": invite.json()["id"],
        "other_id": friend.id,
        "user_id": friend.id,
        "file_id": upload.json()["id"],
        "conn_id": pending["id"],
    }


def stateful_files(schema, who: Identity, base: str, tally: Tally) -> None:
    """Sequences of file operations following the document's links (upload -> download,
    share, delete by the new id); failures are recorded like the others."""

    class Files(schema.include(tag="files").as_state_machine()):
        def step(self, input):
            tally.linked_steps += input.transition is not None
            return super().step(input)

        def get_call_kwargs(self, case):
            return {"base_url": base, **who.call_kwargs()}

        def after_call(self, response, case):
            tally.examples[f"{case.operation.label} (stateful)"] += 1
            tally.statuses[response.status_code // 100] += 1

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            try:
                case.validate_response(response, checks=CHECKS)
            except FailureGroup as error:
                tally.record(f"{case.operation.label} [stateful]", case, error)

    Files.run(
        settings=settings(
            max_examples=STATEFUL_RUNS,
            stateful_step_count=6,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
    )


@pytest.fixture
def server(tmp_path):
    live = LiveServer(tmp_path / "data").start()
    yield live
    live.stop()


def test_schemathesis_finds_no_server_errors_and_no_off_schema_answers(server):
    base = server.url
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
    schema.validate()
    me, http = sign_up(base, "fuzzer")
    friend, friend_http = sign_up(base, "friend")
    ids = known_ids(base, http, friend, friend_http, sign_up(base, "asker")[1])

    operations = [result.ok() for result in schema.get_all_operations()]
    ordinary = [op for op in operations if op.label not in SESSION_ENDING]
    ending = [op for op in operations if op.label in SESSION_ENDING]
    tally = Tally()
    started = time.monotonic()
    deadline = started + TIME_BUDGET
    for op in ordinary:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(op, me, base, tally, deadline, mode)
        if op.path_parameters:
            known = {p.name: ids[p.name] for p in op.path_parameters}
            fuzz(op, me, base, tally, deadline, GenerationMode.POSITIVE, known)
    for n, op in enumerate(ending):  # a fresh user each: the first success ends its session
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            throwaway, _ = sign_up(base, f"gone{n}{mode.value}")
            fuzz(op, throwaway, base, tally, deadline, mode)
    if time.monotonic() < deadline:
        stateful_files(schema, me, base, tally)
    elapsed = time.monotonic() - started

    untested = [op.label for op in operations if not tally.examples[op.label]]
    print(
        f"\nschemathesis {schemathesis.__version__}: {len(operations)} operations, "
        f"{len(operations) - len(untested)} tested, {sum(tally.examples.values())} examples "
        f"({tally.linked_steps} stateful steps through links), {len(tally.failures)} failures "
        f"in {elapsed:.0f}s; answers by class: "
        + ", ".join(f"{k}xx: {n}" for k, n in sorted(tally.statuses.items()))
    )
    for label, count in sorted(tally.examples.items()):
        print(f"  {count:4d}  {label}")
    for kind, count in tally.kinds.most_common():
        print(f"  failure x{count}: {kind}")
    for failure in tally.failures[:40]:
        print(failure)
    assert not untested, f"never called: {untested}"
    assert not tally.failures, f"{len(tally.failures)} failing examples; see the output above"
