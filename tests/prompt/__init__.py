"""Tests of assistant.prompt (the A1111 prompt language) and the parse command."""
