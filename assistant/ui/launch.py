"""Start the app: the command line (``python app.py --help``), the settings it makes, and the launch.

:func:`main` parses the flags, layers the settings (defaults < ``lora-mixer.yaml`` < environment <
flags), reads the sign-in configuration, builds the one :class:`~assistant.service.Service` and
:func:`launch`-es the UI (:func:`assistant.ui.layout.build_demo`) and the ``/sdapi/v1`` API on one
port. ``app.py`` is its entry point (and Hugging Face Spaces').
"""

from __future__ import annotations

import os

# Gradio's usage analytics phone home at launch; off unless the user opts in (set it to "True").
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

import gradio as gr

from .. import limits, owners
from ..auth import AuthConfig, exposure_warnings, file_is_private, is_loopback, load_auth
from ..backend import ENGINE_KINDS, EngineOptions
from ..commands import add_model_options, model_settings
from ..config import Settings, load_settings
from ..errors import LoraMixerError
from ..service import Service
from .handlers import thumbs_dir
from .img2img import CSS as IMAGE_CSS
from .layout import CSS, build_demo

__all__ = ["blocked_paths", "launch", "main", "parse_args", "settings_from_args", "warn_exposure"]

log = logging.getLogger("lora_mixer.app")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python app.py", description="LoRA Mixer web app and A1111-compatible API"
    )
    parser.add_argument(
        "--host",
        default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        help="address to listen on (0.0.0.0 for all)",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")),
        help="port (default 7860)",
    )
    parser.add_argument("--share", action="store_true", help="also open a public gradio.live link")
    parser.add_argument(
        "--model", help="base model: hub id, diffusers folder or .safetensors (default: tiny demo pipeline)"
    )
    parser.add_argument(
        "--lora-dir", action="append", dest="lora_dirs", metavar="DIR", help="LoRA folder (repeatable)"
    )
    parser.add_argument(
        "--models-dir", help="checkpoints to switch between in the UI (default: models/Stable-diffusion)"
    )
    parser.add_argument("--outputs", help="folder for generated images (default: ./outputs)")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 … (default: auto)")
    add_model_options(parser)  # --clip-skip --rng --emphasis --vae --vae-dir --embeddings-dir --low-vram
    parser.add_argument("--config", help="YAML settings file (default: lora-mixer.yaml if present)")
    parser.add_argument(
        "--max-queue", type=int, default=32, help="waiting requests before new ones are refused"
    )
    parser.add_argument(
        "--max-file-size",
        default=f"{limits.IMAGE_BYTES // (1024 * 1024)}mb",
        help="largest upload accepted (default: the image limit of assistant.limits)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    access = parser.add_argument_group("sign-in and histories (see README, 'Shared servers')")
    access.add_argument(
        "--auth",
        metavar="USER:PASS[,USER2:PASS2]",
        help="require a sign-in for the UI (LORA_MIXER_AUTH); prefer --auth-file: flags show in `ps`",
    )
    access.add_argument(
        "--auth-file", metavar="FILE", help="user:password entries, one per line (LORA_MIXER_AUTH_FILE)"
    )
    access.add_argument(
        "--api-auth",
        metavar="USER:PASS[,…]",
        help="HTTP Basic for /sdapi/v1 (LORA_MIXER_API_AUTH; default: the UI's users when --auth is set)",
    )
    access.add_argument(
        "--history",
        choices=owners.HISTORY_MODES,
        default=None,
        help="private: each user/browser session sees its own images; shared: one server-wide gallery; "
        "auto (default, LORA_MIXER_HISTORY): private unless only this machine can reach the server",
    )
    scale = parser.add_argument_group("scale-out (optional extra: pip install -r requirements-ray.txt)")
    scale.add_argument(
        "--engine", choices=ENGINE_KINDS, default=None, help="local (default) or ray (LORA_MIXER_ENGINE)"
    )
    scale.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="Ray cluster to join: auto, HOST:6379 (LORA_MIXER_RAY_ADDRESS; default: start one here)",
    )
    scale.add_argument(
        "--replicas",
        type=int,
        default=None,
        metavar="N",
        help="engine replicas, one GPU each (LORA_MIXER_REPLICAS)",
    )
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Defaults < YAML < environment < these command-line flags."""
    settings = load_settings(args.config)
    settings = settings.replace(
        model=args.model,
        lora_dirs=tuple(args.lora_dirs) if args.lora_dirs else None,
        outputs_dir=args.outputs,
        device=args.device,
        models_dir=args.models_dir,
    )
    return model_settings(settings, args)


def blocked_paths(settings: Settings) -> list[str]:
    """Folders the web server must never serve: LoRA folders, a local model, the models folder."""
    paths = [str(Path(d).expanduser().resolve()) for d in settings.lora_dirs]
    for model in (settings.model, settings.models_dir):
        if model and Path(model).expanduser().exists():
            paths.append(str(Path(model).expanduser().resolve()))
    return paths


def warn_exposure(args: argparse.Namespace, auth: AuthConfig) -> None:
    """A loud start-up warning when people other than this machine's can use the server unsigned."""
    for warning in exposure_warnings(
        host=args.host, share=args.share, auth=auth, space=bool(os.environ.get("SPACE_ID"))
    ):
        bar = "!" * 78
        log.warning("\n%s\n!! %s\n%s", bar, warning, bar)
    auth_file = args.auth_file or os.environ.get("LORA_MIXER_AUTH_FILE")
    if auth_file and not file_is_private(auth_file):
        log.warning("%s can be read by other users of this machine; chmod 600 it", auth_file)


def launch(service: Service, args: argparse.Namespace, auth: AuthConfig | None = None) -> None:
    """Build the UI, add the API routes, serve both on one port, then load the engine.

    The pipeline loads in a background thread *after* the server listens, so the page answers
    at once (torch imports would otherwise slow Gradio's start); renders wait for it. Blocks
    until the server stops (Ctrl+C), then frees the engine (a Ray engine stops its replicas).
    """
    from assistant import api

    auth = auth or AuthConfig()
    warn_exposure(args, auth)
    # renders queue in the service (one per engine worker: one in-process, one per Ray replica)
    demo = build_demo(service, max_waiting=args.max_queue)
    demo.queue(default_concurrency_limit=1, max_size=args.max_queue)
    outputs = service.outputs_dir
    outputs.mkdir(parents=True, exist_ok=True)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        share=args.share,
        max_file_size=args.max_file_size,
        allowed_paths=[str(outputs), str(thumbs_dir(service.settings))],
        blocked_paths=blocked_paths(service.settings),
        enable_monitoring=False,
        show_error=False,
        ssr_mode=False,
        footer_links=["api", "gradio"],
        auth=auth.ui or None,
        auth_message="Sign in to LoRA Mixer." if auth.ui else None,
        app_kwargs=api.app_kwargs(service, max_waiting=args.max_queue, auth=auth),
        css=CSS + IMAGE_CSS,
        theme=gr.themes.Soft(primary_hue="indigo", secondary_hue="pink"),
        prevent_thread_lock=True,
    )
    service.start(background=True)
    try:
        demo.block_thread()
    finally:
        service.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = settings_from_args(args)
        auth = load_auth(auth=args.auth, auth_file=args.auth_file, api_auth=args.api_auth)
        options = EngineOptions.from_env(
            kind=args.engine, ray_address=args.ray_address, replicas=args.replicas
        )
        private = owners.history_is_private(
            args.history or os.environ.get("LORA_MIXER_HISTORY", "auto"),
            signed_in=bool(auth.ui),
            space=bool(os.environ.get("SPACE_ID")),
            public=args.share or not is_loopback(args.host),
        )
    except LoraMixerError as err:  # never echoes a password (see assistant.auth)
        log.error("%s", err)
        return 2
    service = Service(settings, engine_options=options, history=owners.HistoryPolicy(private=private))
    log.info(
        "histories are %s; engine: %s",
        "private (each user or browser session sees its own)" if private else "shared (one gallery)",
        options.kind if options.kind == "local" else f"{options.kind}, {options.replicas} replica(s)",
    )
    launch(service, args, auth)
    return 0
