"""LoRA block weights (lbw=)."""
