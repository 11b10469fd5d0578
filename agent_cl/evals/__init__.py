"""Skill suites, the retention set and the demo that drives every part from outside."""
