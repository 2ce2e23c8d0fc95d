"""The mail host's configuration, rendered from domain specs.

`render_host` is pure: specs, secrets and options in, files out.
`write_tree` puts those files on disk atomically.
"""

from mailbridge.render.engine import render_host
from mailbridge.render.options import HostOptions, RenderedFile
from mailbridge.render.tree import write_tree

__all__ = ["HostOptions", "RenderedFile", "render_host", "write_tree"]
