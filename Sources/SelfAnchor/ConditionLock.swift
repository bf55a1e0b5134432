#if canImport(Glibc)
    import Glibc
#endif

/// A mutex with a condition variable (Swift's `Mutex` has no way to wait): the batch scheduler's
/// threads sleep on it until their tokens have been decoded. Owns the pthread objects and destroys
/// them in `deinit`.
public final class ConditionLock: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(condition, nil)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    public func lock() { pthread_mutex_lock(mutex) }
    public func unlock() { pthread_mutex_unlock(mutex) }
    /// Sleeps until `broadcast`; call with the lock held (it is held again on return).
    public func wait() { pthread_cond_wait(condition, mutex) }
    public func broadcast() { pthread_cond_broadcast(condition) }

    public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}

/// Runs `body(0)`, …, `body(count - 1)` each on its own thread and waits for all: how `eval` and the
/// bench keep several requests in flight on one engine. (Dispatch's global pool is as wide as the
/// cores, and requests spend most of their time asleep waiting for the batch, so each gets a thread.)
public func runConcurrently(_ count: Int, _ body: (Int) -> Void) {
    withoutActuallyEscaping(body) { body in
        let shared = UncheckedBox(body)
        var threads: [pthread_t] = []
        for index in 0..<count {
            let context = Unmanaged.passRetained(UncheckedBox({ shared.value(index) })).toOpaque()
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let work = Unmanaged<UncheckedBox<() -> Void>>.fromOpaque(raw!).takeRetainedValue()
                work.value()
                return nil
            }, context)
            precondition(status == 0, "pthread_create failed: \(status)")
            threads.append(thread)
        }
        for thread in threads { pthread_join(thread, nil) }
    }
}

/// Carries a value across threads where the code guarantees it is safe.
final class UncheckedBox<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
