"""Manifests: YAML files naming texts, voices and provider accounts, validated before use."""

from __future__ import annotations

from runner.manifest.load import load_manifest, load_manifests
from runner.manifest.model import Account, Manifest, Output, Text, Voice

__all__ = ["Account", "Manifest", "Output", "Text", "Voice", "load_manifest", "load_manifests"]
