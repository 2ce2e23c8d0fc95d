"""The domain spec: models, YAML loading with positions, and its own rules."""

from mailbridge.spec.loader import LoadedSpec, find_spec_files, load_spec, load_specs
from mailbridge.spec.models import DomainSpec

__all__ = ["DomainSpec", "LoadedSpec", "find_spec_files", "load_spec", "load_specs"]
