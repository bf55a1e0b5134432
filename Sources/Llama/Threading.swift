#if canImport(Glibc)
    import Glibc
#endif

/// A mutex with a condition variable (Swift's `Mutex` has no way to wait): the context scheduler's
/// thread sleeps on it until there is work, and blocking callers until their answer is there. Owns the pthread objects and destroys
/// them in `deinit`.
/// Unchecked: it is the lock; the pthread objects are used only through pthread calls.
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
        let threads = (0..<count).map { index in startThread { shared.value(index) } }
        for thread in threads { pthread_join(thread, nil) }
    }
}

/// Starts a thread running `body`; join it with `pthread_join`.
public func startThread(_ body: @escaping () -> Void) -> pthread_t {
    let context = Unmanaged.passRetained(UncheckedBox(body)).toOpaque()
    var thread = pthread_t()
    let status = pthread_create(&thread, nil, { raw in
        let work = Unmanaged<UncheckedBox<() -> Void>>.fromOpaque(raw!).takeRetainedValue()
        work.value()
        return nil
    }, context)
    precondition(status == 0, "pthread_create failed: \(status)")
    return thread
}

/// Carries a value across threads where the code guarantees it is safe.
/// Unchecked: it carries closures to the threads `runConcurrently` and `startThread` start, and a blocking
/// `Engine.solve`'s event handler to the scheduler's thread, whose callers make them safe to run there.
public final class UncheckedBox<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}

/// The one thread every `llama_decode` of the process runs on.
///
/// llama.cpp's CPU backend computes each graph on an OpenMP team that belongs to the calling thread.
/// Decodes from a second thread start a second team, and the two compete for the cores: measured on
/// the 2-core dev VM, plain decoding ran at 27 tok/s instead of 55 once another thread had decoded in
/// the same process. So `LlamaContext.decode` hands its call to this thread and waits, whichever thread
/// it is called from; decodes of different contexts are thereby also serialised, as they should be on
/// one CPU.
/// Unchecked: `jobs` and `thread` change only under `lock`.
public final class ComputeThread: @unchecked Sendable {
    public static let shared = ComputeThread()

    private let lock = ConditionLock()
    private var jobs: [() -> Void] = []
    private var thread: pthread_t?

    private init() {
        let lock = self.lock
        thread = startThread { [unowned self] in
            lock.lock()
            while true {
                while self.jobs.isEmpty { lock.wait() }
                let job = self.jobs.removeFirst()
                lock.unlock()
                job()
                lock.lock()
            }
        }
    }

    /// Runs `body` on the compute thread and returns its result.
    public func run<T>(_ body: @escaping () -> T) -> T {
        if let thread, pthread_equal(pthread_self(), thread) != 0 { return body() }
        let answer = HandOff<T>()
        lock.withLock {
            jobs.append { answer.put(body()) }
            lock.broadcast()
        }
        return answer.wait()
    }
}

/// A value one thread hands over and another blocks for: how a caller waits for work it gave another
/// thread (the compute thread's decode, a call on the context scheduler's thread, a request run as a task
/// for a blocking `solve`).
/// Unchecked: `value` changes only under `lock`; `put` is called once.
public final class HandOff<Value>: @unchecked Sendable {
    private let lock = ConditionLock()
    private var value: Value?

    public init() {}

    /// Hands the value over and wakes the waiting thread.
    public func put(_ value: Value) {
        lock.withLock {
            self.value = value
            lock.broadcast()
        }
    }

    /// Blocks until the value is there, and returns it.
    public func wait() -> Value {
        lock.withLock {
            while value == nil { lock.wait() }
            return value!
        }
    }
}
