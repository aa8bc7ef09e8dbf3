"""Tests of the LoRA library (assistant.library), presets (assistant.presets) and the loras CLI."""
