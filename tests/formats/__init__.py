"""Every LoRA file layout people download, applied at the real SD1.5/SDXL module trees."""
