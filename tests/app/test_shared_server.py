"""A shared server over real HTTP: sign-in (UI and API), private histories, no guessable images.

Two real ``python app.py`` servers on loopback: one with ``--auth`` (two users; the API takes
the same users), one with private per-session histories and no sign-in (what a public Space
runs). Every request goes over HTTP with httpx, gradio_client or webuiapi, as people and
scripts send them.
"""

from __future__ import annotations

import base64
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from assistant.owners import HistoryPolicy, Requester
from assistant.service import Service
from tests.server import LORA_DIR, PROJECT_ROOT, Server, start_server

from .conftest import TINY

pytestmark = [pytest.mark.server, pytest.mark.engine, pytest.mark.slow]

gradio_client = pytest.importorskip("gradio_client")

USERS = {"alice": "pw-alice-7f3", "bob": "pw-bob-91c"}
SETTINGS = [TINY["sampler_name"], TINY["steps"], TINY["cfg_scale"], TINY["width"], TINY["height"]]


_CLIENTS: list[Any] = []


def _stop(server: Server) -> None:
    for client in _CLIENTS:  # open clients keep connections that slow the server's shutdown
        client.close()
    _CLIENTS.clear()
    server.stop()
    if "Traceback" in server.log():
        print(server.log()[-6000:], file=sys.stderr)


@pytest.fixture(scope="module")
def signed_in(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    users = ",".join(f"{u}:{p}" for u, p in USERS.items())
    server = start_server(
        LORA_DIR,
        tmp_path_factory.mktemp("signed-in"),
        extra_args=("--auth", users),
        api_auth=("alice", USERS["alice"]),
    )
    yield server
    _stop(server)


@pytest.fixture(scope="module")
def sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(LORA_DIR, tmp_path_factory.mktemp("sessions"), extra_args=("--history", "private"))
    yield server
    _stop(server)


def _client(server: Server, user: str | None = None) -> Any:
    auth = (user, USERS[user]) if user else None
    client = gradio_client.Client(server.url, auth=auth, verbose=False, download_files=False)
    _CLIENTS.append(client)
    return client


def _generate(client: Any, prompt: str, seed: int) -> list[dict[str, Any]]:
    history, _positive, _negative = client.predict(
        prompt, "", False, *SETTINGS, seed, 1, [], api_name="/generate"
    )
    return history


def _gallery(client: Any) -> list[tuple[str, str]]:
    """(served URL, caption) of each History item."""
    items = client.predict(api_name="/history")
    return [(item["image"]["url"], item.get("caption") or "") for item in items]


def _signed_in_http(server: Server, user: str) -> httpx.Client:
    http = httpx.Client(base_url=server.url, timeout=120)
    assert http.post("/login", data={"username": user, "password": USERS[user]}).status_code == 200
    return http


def _saved(server: Server, seed: int) -> Path:
    (path,) = list(server.outputs_dir.rglob(f"*-{seed}.png"))
    return path


# -- sign-in ----------------------------------------------------------------------------------------------


def test_nothing_is_reachable_without_signing_in(signed_in: Server) -> None:
    lora = LORA_DIR / "catgirl_v1.safetensors"
    with httpx.Client(base_url=signed_in.url, timeout=60) as anonymous:
        assert anonymous.get("/").status_code == 200  # the sign-in page
        assert anonymous.get("/config").status_code == 401
        assert anonymous.get("/gradio_api/info").status_code == 401
        assert anonymous.post("/gradio_api/queue/join", json={"data": [], "fn_index": 0}).status_code == 401
        assert anonymous.post("/gradio_api/call/generate", json={"data": []}).status_code == 401
        assert anonymous.get(f"/gradio_api/file={lora}").status_code in (401, 403)
        api = anonymous.get("/sdapi/v1/options")
        assert api.status_code == 401
        assert api.headers["WWW-Authenticate"].startswith("Basic")
        # the API checks the password before it reads the body: a broken body is still a 401
        assert anonymous.post("/sdapi/v1/txt2img", content=b"{not json").status_code == 401
        for path in (
            "/openapi.json",
            "/docs",
            "/sdapi/v1/%6Fptions",
            "/sdapi/v1/options/",
            "/sdapi/v1/loras",
        ):
            assert anonymous.get(path, follow_redirects=True).status_code == 401, path
        for path in ("//sdapi/v1/options", "/SDAPI/v1/options", "/x/../sdapi/v1/options"):
            assert anonymous.get(path).status_code in (401, 404), path  # never served
        # the UI's sign-in is not an API password: a Gradio cookie alone does not open /sdapi
        bob = _signed_in_http(signed_in, "bob")
        assert bob.get("/config").status_code == 200
        assert bob.get("/sdapi/v1/options").status_code == 401


def test_a1111_clients_sign_in_with_http_basic(signed_in: Server) -> None:
    webuiapi = pytest.importorskip("webuiapi")
    api = webuiapi.WebUIApi(host="127.0.0.1", port=signed_in.port)
    api.set_auth("alice", USERS["alice"])
    result = api.txt2img(prompt="1girl, alice's api render", **{**TINY, "seed": 4242})
    assert result.image.size == (TINY["width"], TINY["height"])
    saved = _saved(signed_in, 4242)
    assert saved.parent.parent.name.startswith("alice-")  # outputs/users/alice-…/<day>/
    assert saved.parent.parent.parent.name == "users"
    wrong = httpx.post(
        f"{signed_in.url}/sdapi/v1/txt2img",
        json={"prompt": "x", **TINY},
        auth=("alice", "not-her-password"),
        timeout=60,
    )
    assert wrong.status_code == 401
    assert "api.set_auth" in wrong.json()["detail"]


def test_gradio_client_signs_in_and_a_wrong_password_is_refused(signed_in: Server) -> None:
    with pytest.raises(Exception, match=r"(?i)credentials|login|auth"):
        gradio_client.Client(signed_in.url, auth=("alice", "wrong"), verbose=False)
    client = _client(signed_in, "alice")
    assert "/generate" in client.view_api(print_info=False, return_format="dict")["named_endpoints"]


# -- private histories -------------------------------------------------------------------------------------


def test_each_signed_in_user_sees_only_their_own_history(signed_in: Server) -> None:
    alice, bob = _client(signed_in, "alice"), _client(signed_in, "bob")
    _generate(alice, "1girl, alice's image", 101)
    _generate(bob, "1boy, bob's image", 202)
    alice_items = _gallery(alice)
    bob_items = _gallery(bob)
    assert any("seed 101" in caption for _, caption in alice_items)
    assert not any("seed 202" in caption for _, caption in alice_items)
    assert any("seed 202" in caption for _, caption in bob_items)
    assert not any("seed 101" in caption or "seed 4242" in caption for _, caption in bob_items)
    assert "users" in _saved(signed_in, 101).parts
    assert _saved(signed_in, 101).parent.parent != _saved(signed_in, 202).parent.parent


def test_another_users_image_cannot_be_fetched_by_its_path(signed_in: Server) -> None:
    """Bob knows (or guesses) where Alice's image lies on disk: every spelling of it is refused.
    What pages load are Gradio's cache copies, named by a secret-seeded hash of the content."""
    target = _saved(signed_in, 101)
    bob = _signed_in_http(signed_in, "bob")
    alice = _signed_in_http(signed_in, "alice")
    for path in (
        f"/gradio_api/file={target}",
        f"/gradio_api/file/{target}",
        f"/gradio_api/file={str(target).replace('outputs', '%6Futputs')}",
        f"/gradio_api/file={target.parent}/../{target.parent.name}/{target.name}",
    ):
        assert bob.get(path).status_code == 404, path
        assert alice.get(path).status_code == 404, path  # nobody, not even the owner, by path
    url, _caption = next(item for item in _gallery(_client(signed_in, "alice")) if "seed 101" in item[1])
    assert "/gradio_api/file=" in url
    served_path = url.split("/gradio_api/file=", 1)[1]
    hashed = Path(served_path).parent.name
    assert len(hashed) == 64  # sha256 hex: guessing it is hopeless
    assert alice.get(f"/gradio_api/file={served_path}").status_code == 200
    assert httpx.get(url, timeout=30).status_code == 401  # not signed in: nothing at all


# -- per-session histories (no sign-in) ---------------------------------------------------------------------


def test_each_browser_session_sees_only_its_own_history(sessions: Server) -> None:
    first, second, third = _client(sessions), _client(sessions), _client(sessions)
    _generate(first, "1girl, first visitor", 303)
    _generate(second, "1girl, second visitor", 404)
    assert any("seed 303" in c for _, c in _gallery(first))
    assert not any("seed 404" in c for _, c in _gallery(first))
    assert any("seed 404" in c for _, c in _gallery(second))
    assert not any("seed 303" in c for _, c in _gallery(second))
    assert _gallery(third) == []
    saved = _saved(sessions, 303)
    assert saved.parent.parent.parent.name == "sessions"
    assert first.session_hash not in str(saved)  # the folder does not give the session away


def test_a_visitor_cannot_fetch_another_visitors_image_by_guessing_its_url(sessions: Server) -> None:
    target = _saved(sessions, 303)
    with httpx.Client(base_url=sessions.url, timeout=60) as stranger:
        assert stranger.get(f"/gradio_api/file={target}").status_code == 404
        assert stranger.get(f"/gradio_api/file={target.parent.parent}").status_code == 404
        assert stranger.get(f"/gradio_api/file={sessions.outputs_dir}/sessions").status_code == 404
        # the outputs folder of a grid has fixed names (grid.png, cell-01.png): refused as well
        assert stranger.get(f"/gradio_api/file={target.parent}/00000-blindbox/grid.png").status_code == 404
        # a guessed cache copy (the content hash without Gradio's secret seed) does not exist
        import hashlib

        guess = hashlib.sha256(target.read_bytes()).hexdigest()
        cache = Path(sessions.env.get("GRADIO_TEMP_DIR", "/tmp/gradio"))
        assert stranger.get(f"/gradio_api/file={cache / guess / target.name}").status_code in (403, 404)


# -- a shared gallery (the owner's choice) -------------------------------------------------------------------


def test_a_shared_history_lists_everybodys_images_and_a_private_one_only_yours(tmp_path: Path) -> None:
    from PIL import Image

    from assistant.config import Settings
    from assistant.infotext import png_info

    def image(folder: Path, seed: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8)).save(
            folder / f"00000-{seed}.png",
            pnginfo=png_info(f"x\nSteps: 2, Sampler: Euler, CFG scale: 7, Seed: {seed}, Size: 8x8"),
        )
        time.sleep(0.01)

    private = HistoryPolicy(private=True)
    outputs = tmp_path / "outputs"
    alice, visitor = Requester(user="alice", channel="ui"), Requester(session="s1", channel="ui")
    image(outputs / private.folder(alice) / "2026-12-01", 1)
    image(outputs / private.folder(visitor) / "2026-12-01", 2)
    image(outputs / "2026-12-01", 3)
    settings = Settings(outputs_dir=str(outputs), lora_dirs=())
    mine = Service(settings, history=private)
    assert [i.seed for i in mine.history(requester=alice)] == [1]
    assert [i.seed for i in mine.history(requester=visitor)] == [2]
    assert mine.history(requester=Requester(session="s2", channel="ui")) == []
    assert sorted(i.seed for i in mine.history()) == [1, 2, 3]  # the server itself (CLI, admin)
    everyone = Service(settings, history=HistoryPolicy(private=False, secret=private.secret))
    assert sorted(i.seed for i in everyone.history(requester=visitor)) == [1, 2, 3]


# -- last: it slows this machine's address down for a few seconds -----------------------------------------


def test_repeated_failed_sign_ins_are_slowed_down(signed_in: Server) -> None:
    with httpx.Client(base_url=signed_in.url, timeout=60) as guesser:
        codes = [
            guesser.post("/login", data={"username": "alice", "password": f"guess{i}"}).status_code
            for i in range(4)
        ]
        assert codes == [400, 400, 400, 400]  # three free failures, the fourth imposes a wait
        refused = guesser.post("/login", data={"username": "alice", "password": USERS["alice"]})
        assert refused.status_code == 429  # the right password waits too
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 60
        token = base64.b64encode(f"alice:{USERS['alice']}".encode()).decode()
        api = guesser.get("/sdapi/v1/options", headers={"Authorization": f"Basic {token}"})
        assert api.status_code == 429  # the API shares the slow-down
        time.sleep(wait + 0.2)
        assert (
            guesser.post("/login", data={"username": "alice", "password": USERS["alice"]}).status_code == 200
        )
    log = signed_in.log()
    for password in USERS.values():
        assert password not in log
    assert "sign-in failed from 127.0.0.1" in log


def test_a_bad_auth_entry_stops_the_server_without_echoing_it(tmp_path: Path) -> None:
    import subprocess

    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "app.py"), "--auth", "alice:pw,hunter2-secret", "--port", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert "entry 2 has no ':'" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout
