"""Client against the real server: the calls, the typed snapshot, typed errors, watch, tokens."""

from __future__ import annotations

import http.server
import math
import threading
import time

import pytest

import progressd
from progressd.models import Snapshot

from conftest import SECRET, wait_for


@pytest.fixture
def client(server):
    with progressd.Client(server.url, timeout=5, retry_window=2) as c:
        yield c


def test_create_report_get_list_cancel(client):
    job = client.create_job("py-p1", stages=["fetch", ("encode", 3)])
    assert isinstance(job, progressd.Job) and job.id == job.snapshot.job_id
    assert job.snapshot.state == "queued" and [s.name for s in job.snapshot.stages] == ["fetch", "encode"]
    assert job.snapshot.stages[1].weight == 3 and job.snapshot.created_at.tzinfo is not None

    snap = client.report(job.id, 0.5, stage="encode", message="half of encode")
    assert isinstance(snap, Snapshot)
    assert snap.state == "running" and snap.stage == "encode" and snap.progress == pytest.approx(0.25 + 0.75 * 0.5)
    assert snap.stages[0].state == "succeeded" and snap.message == "half of encode" and snap.seq >= 2

    snap = client.report(job.id, current=3, total=4)
    assert (snap.current, snap.total) == (3, 4)
    assert client.get(job.id).seq == snap.seq

    page = client.list("py-p1", state=["running"])
    assert job.id in [j.job_id for j in page.jobs] and page.next_cursor is None
    assert job.id in [j.job_id for j in client.iter_jobs("py-p1", limit=1)]

    done = job.cancel()
    assert done.state == "canceled" and done.terminal and done.finished_at is not None


def test_snapshot_is_tolerant_of_fields_it_does_not_know():
    s = Snapshot.from_dict({"job_id": "j", "state": "running", "progress": 0.5, "seq": 3,
                            "stages": [{"name": "a", "weight": 2, "state": "running", "progress": 0.5, "new": 1}],
                            "children": {"total": 2, "running": 1}, "tags": ["t"], "brand_new_field": {"x": 1},
                            "created_at": "2026-01-02T03:04:05.6Z"})
    assert s.extra == {"brand_new_field": {"x": 1}} and s.stages[0].extra == {"new": 1}
    assert s.children.total == 2 and s.tags == ("t",) and s.created_at.microsecond == 600000
    assert Snapshot.from_dict({"job_id": "j"}).state == "queued"  # fields an older server does not send


def test_typed_errors(client):
    job = client.create_job("py-p1", stages=["a"])
    with pytest.raises(progressd.NotFound) as e:
        client.get("no-such-job")
    assert e.value.status == 404 and e.value.code == "not_found"
    with pytest.raises(progressd.BadRequest) as e:
        client.report(job.id, 0.5, stage="nope")
    assert e.value.code == "unknown_stage"
    with pytest.raises(progressd.BadRequest):
        client.create_job("has space")
    with pytest.raises(ValueError):  # JSON cannot carry NaN: refused before sending
        client.report(job.id, math.nan)
    with pytest.raises(ValueError):
        client.report(job.id, 1.5)
    with pytest.raises(ValueError):
        client.create_job("")
    assert client.get(job.id).seq == job.snapshot.seq  # nothing above changed the job

    client.report(job.id, state="succeeded")
    with pytest.raises(progressd.JobFinished) as e:
        client.report(job.id, 0.9)
    assert e.value.status == 409 and e.value.state == "succeeded" and not isinstance(e.value, progressd.JobCanceled)


def test_a_canceled_job_raises_job_canceled(client):
    job = client.create_job("py-p1")
    client.report(job.id, 0.1)
    client.cancel(job.id)
    with pytest.raises(progressd.JobCanceled) as e:
        client.report(job.id, 0.2)
    assert isinstance(e.value, progressd.Conflict) and e.value.state == "canceled"
    assert "canceled" in str(e.value)


def test_watch_yields_newer_snapshots_until_the_end(client):
    job = client.create_job("py-watch")
    seen = []

    def work():
        wait_for(lambda: seen, 10, "the watch to start")
        for i in range(1, 6):
            client.report(job.id, i / 10)
        client.report(job.id, state="succeeded")

    t = threading.Thread(target=work)
    t.start()
    for snap in client.watch(job.id, timeout=20):
        seen.append(snap)
    t.join()
    seqs = [s.seq for s in seen]
    assert seqs == sorted(set(seqs)) and seen[-1].state == "succeeded" and seen[-1].progress == 1


def test_watch_timeout_and_unknown_job(client):
    job = client.create_job("py-watch")
    started = time.monotonic()
    with pytest.raises(progressd.WatchTimeout):
        for _ in client.watch(job.id, timeout=0.5):
            pass
    assert time.monotonic() - started < 5
    with pytest.raises(progressd.NotFound):
        next(iter(client.watch("no-such-job")))


def test_watch_reconnects_across_a_restart(own_server):
    own_server.start()
    c = progressd.Client(own_server.url, retry_window=30)
    job = c.create_job("py-watch")
    c.report(job.id, 0.3)
    it = c.watch(job.id, timeout=60)
    first = next(it)
    assert first.progress == pytest.approx(0.3)
    own_server.restart()
    c.report(job.id, state="succeeded")
    rest = list(it)
    assert rest[-1].state == "succeeded" and all(s.seq > first.seq for s in rest)


def test_server_down_at_start_is_one_clear_error(own_server):
    c = progressd.Client(own_server.url, timeout=1, retry_window=1)
    started = time.monotonic()
    with pytest.raises(progressd.ConnectionFailed) as e:
        c.create_job("py-down")
    assert time.monotonic() - started < 5
    assert own_server.url in str(e.value) and "is it running" in str(e.value)


def test_a_call_waits_for_a_server_that_comes_back_within_the_window(own_server):
    own_server.start()
    c = progressd.Client(own_server.url, retry_window=30)
    job = c.create_job("py-back")
    own_server.stop()
    result = {}

    def report():
        result["snap"] = c.report(job.id, state="succeeded")

    t = threading.Thread(target=report)
    t.start()
    own_server.start()
    t.join(40)
    assert result["snap"].state == "succeeded"


def test_token_auth_and_mint_token(auth_server):
    with pytest.raises(progressd.Unauthorized):
        progressd.Client(auth_server.url, retry_window=0).create_job("p")
    alice = progressd.Client(auth_server.url, progressd.mint_token(SECRET, "alice"))
    a, b = alice.create_job("py-auth"), alice.create_job("py-auth")
    assert a.snapshot.owner == "alice"
    scoped = progressd.Client(auth_server.url, progressd.mint_token(SECRET, "alice", scope=[f"job:{a.id}", f"logs:{a.id}"], ttl=60))
    assert scoped.report(a.id, 0.5).progress == 0.5
    with pytest.raises(progressd.Forbidden):
        scoped.report(b.id, 0.5)
    reader = progressd.Client(auth_server.url, progressd.mint_token(SECRET, "alice", scope=[f"job:{a.id}"], read_only=True))
    assert reader.get(a.id).progress == 0.5
    with pytest.raises(progressd.Forbidden):
        reader.report(a.id, 0.6)
    with pytest.raises(progressd.Forbidden):
        reader.create_job("py-auth")
    bob = progressd.Client(auth_server.url, progressd.mint_token(SECRET, "bob"))
    with pytest.raises(progressd.NotFound):
        bob.get(a.id)
    expired = progressd.Client(auth_server.url, progressd.mint_token(SECRET, "alice", ttl=1, now=time.time() - 10))
    with pytest.raises(progressd.Unauthorized):
        expired.get(a.id)
    with pytest.raises(ValueError):
        progressd.mint_token("short", "alice")


def test_minted_tokens_decode_with_pyjwt():
    jwt = pytest.importorskip("jwt")
    t = progressd.mint_token(SECRET, "carol", scope=["project:p"], read_only=True, ttl=60)
    claims = jwt.decode(t, SECRET, algorithms=["HS256"])
    assert claims["sub"] == "carol" and claims["scope"] == ["project:p"] and claims["read_only"] is True
    assert claims["exp"] - claims["iat"] == 60 and "job" not in claims


def test_server_url_is_checked():
    with pytest.raises(ValueError):
        progressd.Client("127.0.0.1:8000")
    assert progressd.Client("http://127.0.0.1:1/").server == "http://127.0.0.1:1"


def test_create_with_the_same_idempotency_key_returns_the_same_job(client):
    a = client.create_job("py-idem", idempotency_key="key-1")
    b = client.create_job("py-idem", idempotency_key="key-1")
    assert a.id == b.id
    with pytest.raises(progressd.IdempotencyConflict) as e:
        client.create_job("py-idem-other", idempotency_key="key-1")
    assert e.value.status == 422 and e.value.code == "idempotency_conflict"
    assert client.create_job("py-idem").id != a.id  # each call without a key gets its own


def test_create_with_name_and_tags(client):
    job = client.create_job("py-p1", name="Import 42", tags=["customer-42"])
    assert job.snapshot.name == "Import 42" and job.snapshot.tags == ("customer-42",)


def test_report_many_refuses_bad_batches_before_sending(client):
    with pytest.raises(ValueError):
        client.report_many([])
    with pytest.raises(ValueError):
        client.report_many([{"progress": 0.5}])
    with pytest.raises(ValueError):
        client.report_many([{"job_id": "j", "progress": float("nan")}])


def test_report_many_applies_each_report(client):
    a, b = client.create_job("py-batch"), client.create_job("py-batch")
    client.report(b.id, state="succeeded")
    results = client.report_many([{"job_id": a.id, "progress": 0.5}, {"job_id": b.id, "progress": 0.5},
                                  {"job_id": "no-such-job", "progress": 0.5}])
    assert results[0] == client.get(a.id).seq and client.get(a.id).progress == 0.5
    assert isinstance(results[1], progressd.JobFinished) and isinstance(results[2], progressd.NotFound)


def test_a_proxy_page_is_still_a_typed_error_and_503_is_retried():
    """A real HTTP server standing where a proxy would: its 502 page is not
    the API's JSON, and its 503s are retried until the window ends."""
    hits = []

    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            hits.append(self.path)
            status, body = (502, b"<html>bad gateway</html>") if "bad" in self.path else (503, b"{}")
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever)
    t.start()
    try:
        c = progressd.Client(f"http://127.0.0.1:{srv.server_port}", retry_window=0.5)
        with pytest.raises(progressd.ServerError) as e:
            c.get("bad")
        assert e.value.code == "bad_gateway" and "bad gateway" in e.value.message
        hits.clear()
        started = time.monotonic()
        with pytest.raises(progressd.Unavailable):
            c.get("busy")
        assert len(hits) >= 2 and time.monotonic() - started < 3
    finally:
        srv.shutdown()
        t.join()
