"""End-to-end encryption (GCE1): what one message costs to seal and open, in Python and in
the browser, side by side in one run.

Python times ghostcache/e2ee.py in process. The browser half runs ghostcache/static/e2ee.js
in Debian's headless Chromium (as tests/e2e does), on a page from a throwaway loopback
server: http://127.0.0.1 is a secure context, so WebCrypto's X25519 works (about:blank has
no crypto.subtle), and the page is cross-origin isolated, so performance.now() is
fine-grained (5 µs, not 100 µs). bench/e2ee_page.js times each call inside the page: no
Playwright round trip is measured.

Each loop is bounded by a count and a time cap, after a few uncounted messages. Before
timing, one envelope made in Python is opened in the page and one made in the page is
opened in Python, and both compute the same safety number: the timings are of code that
interoperates. Browser/Python ratios are the result; absolute numbers are context.
Without Playwright or Chromium the browser rows are reported as skipped.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from time import perf_counter

from bench.common import Figure, check, percentile
from ghostcache import e2ee

SCENARIO = "e2ee"
SENDER, RECEIVER, CONNECTION = 1, 2, 7
BODIES = {
    "20-char": "Meet at 6? Bring it.",
    "1000-char": ("The quick brown fox jumps over the lazy dog, twice. " * 20)[:1000],
}
BROWSER_TARGET_MS = 5.0  # median encrypt and decrypt, each
ENVELOPE_TARGET_BYTES = 1024  # a 20-character message, as compact JSON
WARMUP = 20  # messages sealed and opened first on each side, not counted
PAGE = b"\n".join(
    [
        b'<!doctype html><meta charset="utf-8">',
        b'<script src="/e2ee.js"></script>',
        b'<script src="/bench.js"></script>',
    ]
)
SCRIPTS = {
    "/e2ee.js": Path(e2ee.__file__).parent / "static" / "e2ee.js",
    "/bench.js": Path(__file__).parent / "e2ee_page.js",
}

Timings = dict  # {"bodies": {label: {"encrypt": [ms], "decrypt": [ms], "envelope_bytes", "wrong"}}, "safety"}


def run(count: int = 500, seconds: float = 5.0, safety_count: int = 5) -> list[Figure]:
    """Up to `count` encryptions and decryptions per body and side, `safety_count` safety
    numbers; every loop stops after `seconds` whatever its count."""
    python = python_timings(count, seconds, safety_count)
    reason = browser_missing()
    if reason:
        return _rows(python, None) + [Figure(SCENARIO, "browser figures skipped", None, detail=reason)]
    browser, agreed = browser_timings(count, seconds, safety_count)
    return _rows(python, browser) + _correctness_rows(python, browser, agreed)


# --- Python ---------------------------------------------------------------------------------------------


def _timed(count: int, seconds: float, step: Callable[[int], object]) -> list[float]:
    """Run `step(i)` up to `count` times or until `seconds` pass; the milliseconds of each run."""
    times: list[float] = []
    deadline = perf_counter() + seconds
    for i in range(count):
        if perf_counter() >= deadline:
            break
        started = perf_counter()
        step(i)
        times.append((perf_counter() - started) * 1000)
    return times


def _python_messages(body: str, count: int, seconds: float) -> dict:
    sender, receiver = e2ee.generate_identity(), e2ee.generate_identity()
    sender_pub, receiver_pub = e2ee.public_raw(sender), e2ee.public_raw(receiver)
    envelopes: list[dict[str, str]] = []
    opened: list[str] = []

    def seal(_: int) -> None:
        envelopes.append(e2ee.encrypt_message(sender, SENDER, receiver_pub, RECEIVER, CONNECTION, body))

    def open_(i: int) -> None:
        envelope = envelopes[i % len(envelopes)]
        opened.append(e2ee.decrypt_message(receiver, envelope, **_expected(sender_pub)))

    encrypt, decrypt = _timed(count, seconds, seal), _timed(count, seconds, open_)
    size = len(json.dumps(envelopes[0], separators=(",", ":")).encode())
    wrong = sum(text != body for text in opened)
    return {"encrypt": encrypt, "decrypt": decrypt, "envelope_bytes": size, "wrong": wrong}


def _warm_then_time(body: str, count: int, seconds: float) -> dict:
    _python_messages(body, WARMUP, seconds)
    return _python_messages(body, count, seconds)


def _expected(sender_pub: bytes) -> dict:
    return {
        "expected_sender_id": SENDER,
        "expected_receiver_id": RECEIVER,
        "expected_conv": CONNECTION,
        "sender_pub": sender_pub,
    }


def python_timings(count: int, seconds: float, safety_count: int) -> Timings:
    """Every loop in this process, shaped as the page's answer is."""
    a, b = e2ee.public_raw(e2ee.generate_identity()), e2ee.public_raw(e2ee.generate_identity())
    return {
        "bodies": {label: _warm_then_time(body, count, seconds) for label, body in BODIES.items()},
        "safety": _timed(safety_count, seconds, lambda _: e2ee.safety_number("sender", a, "receiver", b)),
    }


# --- the browser ----------------------------------------------------------------------------------------


def browser_missing() -> str | None:
    """Why the browser half cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed"
    from tests.e2e.browser import CHROMIUM

    return None if CHROMIUM else "no `chromium` on PATH (apt-get install chromium)"


class _PageHandler(BaseHTTPRequestHandler):
    """The test page and its two scripts; cross-origin isolated, for a fine-grained clock."""

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        path = self.path.split("?", 1)[0]
        if path == "/":
            self._send(PAGE, "text/html; charset=utf-8")
        elif path in SCRIPTS:
            self._send(SCRIPTS[path].read_bytes(), "text/javascript; charset=utf-8")
        else:
            self.send_error(404)

    def _send(self, data: bytes, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass  # quiet: the benchmark prints only its table


@contextmanager
def _page_server() -> Iterator[str]:
    """The page's URL on 127.0.0.1 at a free port; the server stops on the way out."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PageHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def browser_timings(count: int, seconds: float, safety_count: int) -> tuple[Timings, dict[str, bool]]:
    """Every loop in headless Chromium, and whether it interoperates with Python (checked first)."""
    from playwright.sync_api import sync_playwright

    from tests.e2e.browser import CHROME_ARGS, CHROMIUM

    with _page_server() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROME_ARGS)
        try:
            page = browser.new_page()
            page.goto(url)
            page.wait_for_function("() => globalThis.GCE1 && globalThis.GCE1Bench")
            if not page.evaluate("() => GCE1.supported()"):
                raise RuntimeError("this Chromium's WebCrypto has no X25519")
            agreed = _cross_check(page, page.evaluate("() => GCE1Bench.setup()"))
            args = {"bodies": BODIES, "count": count, "warmup": WARMUP, "capMs": seconds * 1000}
            args["safetyCount"] = safety_count
            timings = page.evaluate("(args) => GCE1Bench.measure(args)", args)
        finally:
            browser.close()
    return timings, agreed


def _cross_check(page, pubs: dict[str, str]) -> dict[str, bool]:
    """One envelope each way between Python and the page, and one safety number on both sides."""
    python = e2ee.generate_identity()
    python_pub = e2ee.public_raw(python)
    page_sender, page_receiver = e2ee.b64u_decode(pubs["sender"]), e2ee.b64u_decode(pubs["receiver"])
    body = BODIES["20-char"]
    envelope = e2ee.encrypt_message(python, SENDER, page_receiver, RECEIVER, CONNECTION, body)
    answer = page.evaluate(
        "(args) => GCE1Bench.crossCheck(args)",
        {"pythonPub": e2ee.b64u(python_pub), "envelope": envelope, "body": body},
    )
    try:
        back = e2ee.decrypt_message(python, answer["envelope"], **_expected(page_sender))
    except e2ee.E2EEError:
        back = None
    return {
        "a Python envelope opens in the browser": answer["opened"] == body,
        "a browser envelope opens in Python": back == body,
        "safety numbers agree": answer["safety"]
        == e2ee.safety_number("browser", page_receiver, "python", python_pub),
    }


# --- figures --------------------------------------------------------------------------------------------


def _ms_rows(what: str, python: list[float], browser: list[float] | None, target: bool) -> list[Figure]:
    """Median and p95 of one operation, Python then browser with its ratio to Python."""
    rows = []
    for name, q in (("median", 50), ("p95", 95)):
        ours = percentile(python, q)
        rows.append(Figure(SCENARIO, f"{what} {name}, Python", ours, "ms", detail=f"n={len(python)}"))
        if browser is None:
            continue
        theirs = percentile(browser, q)
        gate = target and name == "median"
        rows.append(
            Figure(
                SCENARIO,
                f"{what} {name}, browser",
                theirs,
                "ms",
                ratio=theirs / ours if theirs is not None and ours else None,
                ratio_of="Python",
                target=f"< {BROWSER_TARGET_MS:g} ms" if gate else "",
                passed=check(theirs, "<", BROWSER_TARGET_MS) if gate else None,
                detail=f"n={len(browser)}",
            )
        )
    return rows


def _envelope_row(label: str, python: dict, browser: dict | None) -> Figure:
    size = python["envelope_bytes"]
    gate = label == "20-char"
    other = browser and browser["envelope_bytes"]
    return Figure(
        SCENARIO,
        f"envelope of a {label} message (compact JSON)",
        size,
        "bytes",
        target=f"< {ENVELOPE_TARGET_BYTES // 1024} KB" if gate else "",
        passed=check(size, "<", ENVELOPE_TARGET_BYTES) if gate else None,
        detail="" if other is None else "browser's the same" if other == size else f"browser's {other} bytes",
    )


def _rows(python: Timings, browser: Timings | None) -> list[Figure]:
    rows = []
    for label in BODIES:
        ours, theirs = python["bodies"][label], browser and browser["bodies"][label]
        for step in ("encrypt", "decrypt"):
            rows += _ms_rows(f"{step} {label}", ours[step], theirs and theirs[step], target=True)
        rows.append(_envelope_row(label, ours, theirs))
    rows += _ms_rows("safety number", python["safety"], browser and browser["safety"], target=False)
    return rows


def _correctness_rows(python: Timings, browser: Timings, agreed: dict[str, bool]) -> list[Figure]:
    wrong = sum(side["bodies"][label]["wrong"] for side in (python, browser) for label in BODIES)
    rows = [
        Figure(SCENARIO, name, int(ok), target="1", passed=ok, detail="1 = yes")
        for name, ok in agreed.items()
    ]
    rows.append(Figure(SCENARIO, "decryptions giving another body", wrong, target="0", passed=wrong == 0))
    if not browser["isolated"]:
        rows.append(Figure(SCENARIO, "page not cross-origin isolated: browser times to 100 µs", None))
    return rows
