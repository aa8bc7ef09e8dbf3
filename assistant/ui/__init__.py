"""Pure helpers for the Gradio app: formatting, library cards, prompt edits.

Nothing in this package imports gradio (or torch), so every helper is unit-tested without a
server; ``app.py`` is the only module that turns these values into components.
"""
