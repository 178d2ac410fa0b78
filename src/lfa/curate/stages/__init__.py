"""Curation stages. Each is a pure function of a clip record (and its config section)."""
