"""Typed errors for the daemon's error codes (Protocol/README.md)."""


class SelfAnchorError(Exception):
    """An error answer from the daemon: `code`, `message`, `data`."""

    code = None

    def __init__(self, message, code=None, data=None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.data = data


class ParseError(SelfAnchorError): code = -32700
class InvalidRequest(SelfAnchorError): code = -32600
class MethodNotFound(SelfAnchorError): code = -32601
class InvalidParams(SelfAnchorError): code = -32602
class InternalError(SelfAnchorError): code = -32603
class ServerNotInitialized(SelfAnchorError): code = -32002


class RequestCancelled(SelfAnchorError):
    code = -32800

    @property
    def partial(self):
        """The result produced before the cancel (None if the request never started)."""
        return (self.data or {}).get("partial")


class ModelNotLoaded(SelfAnchorError): code = 1001
class ModelLoadFailed(SelfAnchorError): code = 1002
class PromptTooLong(SelfAnchorError): code = 1003
class QueueFull(SelfAnchorError): code = 1004
class MessageTooLarge(SelfAnchorError): code = 1005


class DaemonExited(SelfAnchorError):
    """The daemon process ended while requests were pending."""


_BY_CODE = {cls.code: cls for cls in [ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError,
                                      ServerNotInitialized, RequestCancelled, ModelNotLoaded, ModelLoadFailed,
                                      PromptTooLong, QueueFull, MessageTooLarge]}


def error_from(obj):
    """The typed exception for an error object from the wire."""
    cls = _BY_CODE.get(obj.get("code"), SelfAnchorError)
    return cls(obj.get("message", "error"), code=obj.get("code"), data=obj.get("data"))
