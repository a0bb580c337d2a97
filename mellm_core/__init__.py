"""mellm: micro-expression understanding with a flow-guided multimodal LLM, as a small plugin core on Ray."""

from mellm_core.errors import MellmError
from mellm_core.hookspecs import PluginSpec, hookimpl
from mellm_core.plugins import create, get_registry

__version__ = "0.1.0"
__all__ = ["MellmError", "PluginSpec", "create", "get_registry", "hookimpl", "__version__"]
