"""Shared lower layer used by several components (never imports a component)."""
