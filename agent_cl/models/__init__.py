"""Embedded model provisioning and the chat/generation helpers every part shares."""
