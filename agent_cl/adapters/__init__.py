"""Adapters as files: what one must pass (`rules`), the versioned registry a night publishes to
and servers read from (`registry`), and folding one into the base weights (`merge`).

This is the shelf between the night and serving: the night writes here, serving reads here, and
neither reaches into the other. Every registry and every backend load checks adapters through
one `AdapterRules`, built from `Settings` by `rules_for`.
"""
