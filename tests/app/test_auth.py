"""Sign-in and history rules without a server: user lists, checks, the slow-down, owners, guards."""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest

from assistant.auth import (
    AuthConfig,
    Credentials,
    FailureThrottle,
    exposure_warnings,
    file_is_private,
    is_loopback,
    load_auth,
)
from assistant.errors import PresetError
from assistant.guard import BasicAuthCheck, LoginThrottle, OutputsGuard, basic_credentials
from assistant.owners import (
    LOCAL,
    HistoryPolicy,
    Requester,
    acting_for,
    current,
    history_is_private,
    user_folder,
)

# -- user lists -------------------------------------------------------------------------------------


def test_credentials_parse_a1111_formats() -> None:
    creds = Credentials.parse("alice:pw1, bob:p:w:2\n# a comment, with: colons\ncarol:pw3,")
    assert creds.names == ("alice", "bob", "carol")
    assert creds.check("alice", "pw1")
    assert creds.check("bob", "p:w:2")  # the first ':' separates; the password may hold more
    assert creds("carol", "pw3")  # Gradio's auth= callable
    assert not creds.check("alice", "pw2")
    assert not creds.check("alice", "")
    assert not creds.check("dave", "pw1")
    assert not creds.check("", "")
    assert not Credentials().check("alice", "pw1")  # no users: nobody signs in


def test_credentials_keep_no_password_and_show_none() -> None:
    creds = Credentials.parse("alice:hunter2")
    assert "hunter2" not in repr(creds)
    assert "hunter2" not in str(creds.users)
    assert repr(creds) == "Credentials(1 user)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("alice:pw,s3cr3t-token", "entry 2 has no ':'"),
        (":s3cr3t-token", "entry 1 has no user name"),
        ("alice:", r"entry 1 \(user 'alice'\) has an empty password"),
        (",,", "no user:password entry"),
    ],
)
def test_bad_entries_are_named_by_position_never_echoed(text: str, message: str) -> None:
    with pytest.raises(PresetError, match=message) as err:
        Credentials.parse(text)
    assert "s3cr3t" not in str(err.value)


def test_auth_file_and_flags_and_environment(tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("# team\nalice:from-file\ncarol:c\n", encoding="utf-8")
    users.chmod(0o600)
    assert file_is_private(users)
    config = load_auth(auth="alice:from-flag,bob:b", auth_file=str(users), environ={})
    assert config.ui.names == ("alice", "bob", "carol")
    assert config.ui.check("alice", "from-file")  # the file comes after the flag
    assert config.api is config.ui  # without --api-auth the API takes the UI's users
    assert config.api_source == "the UI's users"
    env = {"LORA_MIXER_AUTH": "env:user", "LORA_MIXER_API_AUTH": "robot:token"}
    from_env = load_auth(environ=env)
    assert from_env.ui.names == ("env",)
    assert from_env.api.names == ("robot",)
    assert not from_env.api.check("env", "user")  # --api-auth replaces, it does not add
    assert load_auth(auth="flag:wins", environ=env).ui.names == ("flag",)
    assert not load_auth(environ={}).any
    users.chmod(0o644)
    assert not file_is_private(users)


def test_an_unreadable_or_empty_auth_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PresetError, match="cannot be read"):
        Credentials.from_file(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("# nobody yet\n", encoding="utf-8")
    with pytest.raises(PresetError, match="no user:password entry"):
        Credentials.from_file(empty)


# -- the slow-down ------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_failures_beyond_the_free_ones_double_the_wait_per_client() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=3, base=1.0, cap=8.0, clock=clock)
    assert [throttle.failed("1.2.3.4") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert throttle.retry_after("1.2.3.4") == 0
    assert throttle.failed("1.2.3.4") == 1.0
    assert throttle.retry_after("1.2.3.4") == 1.0
    assert throttle.retry_after("5.6.7.8") == 0  # another client is not slowed down
    clock.now += 1.0
    assert [throttle.failed("1.2.3.4") for _ in range(4)] == [2.0, 4.0, 8.0, 8.0]  # capped
    throttle.succeeded("1.2.3.4")
    assert throttle.retry_after("1.2.3.4") == 0
    assert throttle.failed("1.2.3.4") == 0.0  # a success starts the count again


def test_failures_are_forgotten_and_the_table_is_bounded() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=0, base=1.0, forget_after=60.0, max_clients=3, clock=clock)
    throttle.failed("a")
    clock.now += 61
    assert throttle.retry_after("a") == 0
    assert throttle.failed("a") == 1.0  # counted from one again
    for client in "bcde":
        throttle.failed(client)
    assert list(throttle.clients()) == ["c", "d", "e"]


# -- exposure -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.1.1", True),
        ("localhost", True),
        ("::1", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.5", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_warnings_say_who_can_reach_an_unsigned_server() -> None:
    open_config = AuthConfig()
    signed = load_auth(auth="a:b", environ={})
    api_only = load_auth(api_auth="a:b", environ={})
    assert exposure_warnings(host="127.0.0.1", share=False, auth=open_config, space=False) == []
    loud = exposure_warnings(host="0.0.0.0", share=False, auth=open_config, space=False)
    assert len(loud) == 2
    assert "NO SIGN-IN" in loud[0]
    assert "0.0.0.0" in loud[0]
    assert "/sdapi/v1" in loud[1]
    shared = exposure_warnings(host="127.0.0.1", share=True, auth=open_config, space=False)
    assert "gradio.live" in shared[0]
    assert exposure_warnings(host="0.0.0.0", share=True, auth=signed, space=False) == []
    assert len(exposure_warnings(host="0.0.0.0", share=False, auth=api_only, space=False)) == 1
    space = exposure_warnings(host="0.0.0.0", share=False, auth=open_config, space=True)
    assert "private per browser session" in space[0]


def test_app_logs_the_warning_loudly(caplog: pytest.LogCaptureFixture) -> None:
    import app

    args = app.parse_args(["--host", "0.0.0.0"])
    with caplog.at_level("WARNING", logger="lora_mixer.app"):
        app.warn_exposure(args, AuthConfig())
    assert "!!!!" in caplog.text
    assert "NO SIGN-IN" in caplog.text


# -- owners and histories -------------------------------------------------------------------------------


def test_history_modes() -> None:
    assert history_is_private("auto", signed_in=False, space=False, public=False) is False  # desktop
    assert history_is_private("auto", signed_in=True, space=False, public=False) is True
    assert history_is_private("auto", signed_in=False, space=True, public=False) is True
    assert history_is_private("auto", signed_in=False, space=False, public=True) is True
    assert history_is_private("shared", signed_in=True, space=True, public=True) is False
    assert history_is_private("private", signed_in=False, space=False, public=False) is True
    with pytest.raises(PresetError, match="auto, private, shared"):
        history_is_private("everyone", signed_in=False, space=False, public=False)


def test_owner_folders() -> None:
    private = HistoryPolicy(private=True)
    shared = HistoryPolicy(private=False)
    alice = Requester(user="alice", channel="ui")
    assert private.folder(alice) == shared.folder(alice) == user_folder("alice")
    assert user_folder("alice").startswith("users/alice-")
    assert user_folder("../../etc") != user_folder("etc")
    assert ".." not in user_folder("../../etc")
    assert "/" not in user_folder("a/b").removeprefix("users/")
    assert user_folder("Alice") != user_folder("alice")
    session = Requester(session="abc123", channel="ui")
    folder = private.folder(session)
    assert folder.startswith("sessions/")
    assert "abc123" not in folder
    assert folder == private.folder(Requester(session="abc123", channel="ui"))  # stable per session
    assert folder != HistoryPolicy(private=True).folder(session)  # a new server secret, new names
    assert shared.folder(session) == ""  # a shared history keeps the old layout
    assert private.folder(Requester(channel="api")) == "api"
    assert private.folder(LOCAL) == ""
    assert private.sees_all(LOCAL)
    assert not private.sees_all(alice)
    assert shared.sees_all(session)


def test_the_requester_is_bound_for_a_block_and_threads_started_from_it() -> None:
    alice = Requester(user="alice", channel="api")
    assert current() == LOCAL

    async def run() -> Requester:
        with acting_for(alice):
            return await asyncio.to_thread(current)

    assert asyncio.run(run()) == alice
    assert current() == LOCAL


# -- HTTP guards (as ASGI apps, no server) ---------------------------------------------------------------


def test_basic_credentials_parsing() -> None:
    token = base64.b64encode(b"alice:p:w").decode()
    assert basic_credentials(f"Basic {token}") == ("alice", "p:w")
    assert basic_credentials(f"basic {token}") == ("alice", "p:w")
    for bad in (
        None,
        "",
        "Bearer x",
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
    ):
        assert basic_credentials(bad) is None


def test_basic_auth_check_counts_only_wrong_passwords() -> None:
    clock = Clock()
    check = BasicAuthCheck(Credentials.parse("alice:pw"), FailureThrottle(free=1, clock=clock))
    ok = "Basic " + base64.b64encode(b"alice:pw").decode()
    wrong = "Basic " + base64.b64encode(b"alice:nope").decode()
    assert check(ok, "c") == ("alice", None)
    user, refusal = check(None, "c")  # no header: asked for credentials, not counted
    assert user is None
    assert refusal is not None
    assert refusal[0] == 401
    assert refusal[2]["WWW-Authenticate"].startswith("Basic")
    assert check(wrong, "c")[1][0] == 401  # type: ignore[index]
    assert check(wrong, "c")[1][0] == 401  # type: ignore[index]
    status, body, headers = check(ok, "c")[1]  # type: ignore[misc]
    assert status == 429  # even the right password waits
    assert int(headers["Retry-After"]) >= 1
    assert "try again" in body["detail"]
    clock.now += 5
    assert check(ok, "c") == ("alice", None)


async def _call(app: Any, method: str, path: str, client: str = "9.9.9.9") -> tuple[int, dict[str, str]]:
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "root_path": "",
        "headers": [],
        "client": (client, 1),
    }
    await app(scope, receive, send)
    start = next(m for m in messages if m["type"] == "http.response.start")
    return start["status"], {k.decode(): v.decode() for k, v in start.get("headers", [])}


def _answering(status: int) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


def test_login_throttle_counts_failed_sign_ins_and_answers_429() -> None:
    clock = Clock()
    throttle = FailureThrottle(free=2, base=2.0, clock=clock)
    failing = LoginThrottle(_answering(400), throttle)
    for _ in range(3):
        assert asyncio.run(_call(failing, "POST", "/login"))[0] == 400
    status, headers = asyncio.run(_call(LoginThrottle(_answering(200), throttle), "POST", "/login/"))
    assert status == 429
    assert headers["retry-after"] == "2"
    assert asyncio.run(_call(failing, "GET", "/login"))[0] == 400  # only sign-in attempts (POST)
    assert asyncio.run(_call(failing, "POST", "/login", client="1.1.1.1"))[0] == 400  # per client
    clock.now += 2.5
    assert asyncio.run(_call(LoginThrottle(_answering(200), throttle), "POST", "/login"))[0] == 200
    assert throttle.retry_after("9.9.9.9") == 0


def test_outputs_guard_refuses_every_spelling_of_an_outputs_path(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    (outputs / "2026-12-01").mkdir(parents=True)
    image = outputs / "2026-12-01" / "00001-42.png"
    image.write_bytes(b"png")
    link = tmp_path / "link"
    os.symlink(outputs, link)
    guard = OutputsGuard(_answering(200), outputs)
    refused = [
        f"/gradio_api/file={image}",
        f"/gradio_api/file/{image}",
        f"/gradio_api/file={str(image).upper()}",
        f"/gradio_api/file={tmp_path}/x/../outputs/2026-12-01/00001-42.png",
        f"/gradio_api/file={link}/2026-12-01/00001-42.png",
        f"/gradio_api/file={str(image).replace('/outputs/', '/%6futputs/')}",
        f"/gradio_api/file={outputs}",
        f"/gradio_api/file={outputs}/users/alice-12345678/2026-12-01/grid.png",
    ]
    for path in refused:
        assert asyncio.run(_call(guard, "GET", path))[0] == 404, path
    allowed = [
        f"/gradio_api/file={tmp_path}/outputs2/a.png",
        "/gradio_api/file=/tmp/gradio/abc/x.png",
        "/config",
    ]
    for path in allowed:
        assert asyncio.run(_call(guard, "GET", path))[0] == 200, path
