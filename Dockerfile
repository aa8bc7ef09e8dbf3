# LoRA Mixer: the Gradio app + A1111-compatible API on port 7860.
#
# CPU image (default):   docker build -t lora-mixer .
# CUDA image:            docker build --build-arg VARIANT=cuda -t lora-mixer:cuda .
#
# Run (models and LoRAs are volumes; nothing is baked into the image):
#   docker run -p 7860:7860 \
#     -v $PWD/models/Lora:/data/loras:ro -v $PWD/checkpoints:/data/models:ro -v $PWD/outputs:/data/outputs \
#     -e LORA_MIXER_MODEL=/data/models/v1-5-pruned-emaonly.safetensors lora-mixer
# Without LORA_MIXER_MODEL the tiny offline demo pipeline runs (images are noise).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG VARIANT=cpu

# ---- base: system packages, non-root user ------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HOME=/data/hf-cache
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends curl fonts-noto-cjk \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --create-home --uid 1000 mixer \
 && mkdir -p /data/loras /data/models /data/outputs /data/cache /data/hf-cache \
 && chown -R mixer:mixer /data
WORKDIR /app

# ---- cpu: pinned CPU torch first (an unpinned torch pulls a multi-GB CUDA build) ---------------
FROM base AS cpu
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
COPY requirements.txt .
RUN pip install -r requirements.txt

# ---- cuda: CUDA torch + xformers (pick the index matching your driver) -------------------------
FROM base AS cuda
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu128
RUN pip install --index-url ${TORCH_INDEX} torch==2.13.0
COPY requirements.txt requirements-gpu.txt ./
RUN pip install -r requirements.txt \
 && (pip install -r requirements-gpu.txt || echo "xformers not available for this torch; SDPA will be used")

# ---- final: the variant chosen with --build-arg VARIANT=cpu|cuda ------------------------------
FROM ${VARIANT} AS final
COPY --chown=mixer:mixer . /app
USER mixer
# Your LoRAs (volume) first, then the small demo LoRAs shipped in the repository.
ENV LORA_MIXER_LORA_DIRS=/data/loras:/app/models/Lora \
    LORA_MIXER_MODELS_DIR=/data/models \
    LORA_MIXER_OUTPUTS=/data/outputs \
    LORA_MIXER_CACHE=/data/cache
VOLUME ["/data/loras", "/data/models", "/data/outputs"]
EXPOSE 7860
# 200, or 401 when the API has passwords (LORA_MIXER_AUTH / LORA_MIXER_API_AUTH): both mean it answers
HEALTHCHECK --interval=30s --timeout=10s --start-period=120s --retries=3 \
  CMD curl -sS -o /dev/null -w '%{http_code}' http://127.0.0.1:7860/sdapi/v1/options | grep -qE '^(200|401)$' || exit 1
CMD ["python", "app.py", "--host", "0.0.0.0", "--port", "7860"]
