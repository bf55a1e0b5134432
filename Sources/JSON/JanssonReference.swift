import CJansson
import CJanssonShim

/// One counted reference to a jansson `json_t`, so that a value is freed on every path. The parser and
/// writer touch `json_t` pointers only while converting, and hand every one they keep to this type.
///
/// It takes over a new reference (`owning:`) or adds one (`retaining:`), and drops it in `deinit`,
/// so a value freed on every path is the type system's job, not the caller's.
final class JanssonReference {
    let pointer: UnsafeMutablePointer<json_t>

    /// Adopts a reference the caller already owns (a jansson constructor's result).
    init(owning pointer: UnsafeMutablePointer<json_t>) {
        self.pointer = pointer
    }

    /// Takes a new reference to a value someone else owns (a borrowed child, say).
    init(retaining pointer: UnsafeMutablePointer<json_t>) {
        self.pointer = cjansson_incref(pointer)
    }

    deinit {
        cjansson_decref(pointer)
    }
}
