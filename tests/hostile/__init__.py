"""Hostile inputs, faults and load: nothing crashes, nothing is lost, nothing leaks (issue 8)."""
