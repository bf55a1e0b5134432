"""Python client for the selfanchor daemon (`selfanchor serve`)."""
from .aio import AsyncClient
from .client import Client
from .errors import (DaemonExited, InvalidParams, InvalidRequest, MessageTooLarge, MethodNotFound, ModelLoadFailed,
                     ModelNotLoaded, PromptTooLong, QueueFull, RequestCancelled, SelfAnchorError, ServerNotInitialized)
from .magic import load_ipython_extension, unload_ipython_extension

__all__ = ["Client", "AsyncClient", "SelfAnchorError", "InvalidParams", "InvalidRequest", "MethodNotFound",
           "ModelLoadFailed", "ModelNotLoaded", "PromptTooLong", "QueueFull", "RequestCancelled", "MessageTooLarge",
           "ServerNotInitialized", "DaemonExited", "load_ipython_extension", "unload_ipython_extension"]
__version__ = "0.1.0"
