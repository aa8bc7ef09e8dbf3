"""Settings for the whole suite, applied before any test module imports torch.

- ``OMP_NUM_THREADS=1``: the reference machine has two shared cores; torch's OpenMP threads spin
  against each other and against the servers the tests start (they inherit the environment). A
  tiny 64x64 render takes 0.15 s on one thread and 2-6 s on two under load.
- ``HF_HUB_OFFLINE=1``: nothing may download weights at test time; a hub id falls back to the
  tiny pipeline with a warning instead of hanging on the network.
- ``LORA_MIXER_CHECK_STATE=1``: every render of every engine (in-process, and in the servers
  the tests start, which inherit the environment) ends by checking that each LoRA layer is in
  exactly the state its request needs (``Engine.check_state``); a leak fails the test loudly.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LORA_MIXER_CHECK_STATE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
