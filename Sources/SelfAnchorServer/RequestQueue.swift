import Dispatch
import JSONRPC
import SelfAnchor
import SelfAnchorProtocol
import Synchronization

/// The daemon's admission queue, apart from what the requests do: it keeps the requests in flight, starts
/// an ordinary one when one of `parallel` slots is free (as a task: its decoder then runs on the
/// engine's scheduler, which batches the decodes of every request in flight), an exclusive one
/// (analysis, a model swap, `shutdown`) when every slot is free, and makes sure each request is
/// answered exactly once, whether it finishes, fails or is cancelled.
final class RequestQueue: Sendable {
    /// A request in the queue or running.
    /// Its flags change under the queue's lock (and are atomics, so the job can travel to its thread).
    final class Job: Sendable {
        let id: RequestID
        let method: String
        let flag = CancellationFlag()
        let enqueued = ContinuousClock.now
        private let runningFlag = Atomic<Bool>(false)
        private let answeredFlag = Atomic<Bool>(false)
        var running: Bool {
            get { runningFlag.load(ordering: .relaxed) }
            set { runningFlag.store(newValue, ordering: .relaxed) }
        }
        var answered: Bool {
            get { answeredFlag.load(ordering: .relaxed) }
            set { answeredFlag.store(newValue, ordering: .relaxed) }
        }
        init(id: RequestID, method: String) {
            self.id = id
            self.method = method
        }
    }

    /// What `status` reports about the queue.
    struct Snapshot {
        var waiting: Int
        var inFlight: [Job]
        var served: Int
    }

    /// What a cancellation found.
    enum Cancellation {
        /// No such request in flight (answered already, or never sent).
        case notFound
        /// Running: its flag is set and it stops within one decode step, answering itself.
        case running
        /// Still queued: it will never start; the caller answers it (`finish`).
        case queued(Job)
    }

    let parallel: Int
    let maxQueue: Int
    /// Admits queued work in order: a request starts when a slot is free; exclusive work waits for all.
    private let admission = DispatchQueue(label: "selfanchor.admission")
    /// Free request slots (a permit per slot).
    private let slotPermits: DispatchSemaphore
    private struct State {
        var jobs: [Job] = []
        var served = 0
    }
    private let state = Mutex(State())

    init(parallel: Int, maxQueue: Int) {
        self.parallel = max(1, parallel)
        self.maxQueue = maxQueue
        slotPermits = DispatchSemaphore(value: self.parallel)
    }

    /// Runs `body` on the admission queue once no request is running (and none starts until it returns).
    func exclusively(_ body: @escaping @Sendable () -> Void) {
        admission.async {
            for _ in 0..<self.parallel { self.slotPermits.wait() }
            body()
            for _ in 0..<self.parallel { self.slotPermits.signal() }
        }
    }

    /// Waits until the admission queue has taken up everything submitted before this call (an exclusive
    /// body, such as the start-up model load, has then returned).
    func waitForAdmission() { admission.sync {} }

    /// Waits until everything admitted before this call has run.
    func drain() {
        let done = DispatchSemaphore(value: 0)
        exclusively { done.signal() }
        done.wait()
    }

    /// What a queued request runs: `ordinary` ones (solves, generations) start as tasks when a slot is
    /// free; `exclusive` ones (analysis, unloading) on the admission queue when every slot is free, alone.
    enum Body: Sendable {
        case ordinary(@Sendable (Job) async -> Void)
        case exclusive(@Sendable (Job) -> Void)
    }

    /// Queues a request; its body runs it and answers through `finish`. Throws when the id is already in
    /// flight or `maxQueue` requests are waiting.
    func enqueue(id: RequestID, method: String, _ body: Body) throws(ResponseError) {
        let job = Job(id: id, method: method)
        try state.withLock { state throws(ResponseError) in
            if state.jobs.contains(where: { $0.id == id }) {
                throw ResponseError(code: ErrorCode.invalidRequest, message: "a request with id \(id) is already in flight")
            }
            let waiting = state.jobs.filter { !$0.running }.count
            if waiting >= maxQueue {
                throw ResponseError(code: ErrorCode.queueFull,
                                    message: "the request queue is full (\(maxQueue) waiting); retry later",
                                    data: ["maxQueue": .int(maxQueue)])
            }
            state.jobs.append(job)
        }
        /// Marks the job running, unless it was answered (cancelled) while it waited.
        @Sendable func admit() -> Bool {
            state.withLock { state -> Bool in
                if job.answered {
                    state.jobs.removeAll { $0 === job }
                    return false
                }
                job.running = true
                return true
            }
        }
        @Sendable func done() { state.withLock { $0.jobs.removeAll { $0 === job } } }
        switch body {
        case .exclusive(let body):
            exclusively {
                guard admit() else { return }
                body(job)
                done()
            }
        case .ordinary(let body):
            admission.async {
                self.slotPermits.wait()
                guard admit() else {
                    self.slotPermits.signal()
                    return
                }
                Task {
                    await body(job)
                    done()
                    self.slotPermits.signal()
                }
            }
        }
    }

    /// Answers a job exactly once: `answer` runs only for the first call.
    func finish(_ job: Job, _ answer: () -> Void) {
        let first = state.withLock { state -> Bool in
            defer { job.answered = true }
            if !job.answered { state.served += 1 }
            return !job.answered
        }
        if first { answer() }
    }

    /// Sets the request's cancellation flag and says whether it was still waiting.
    func cancel(_ id: RequestID) -> Cancellation {
        state.withLock { state in
            guard let job = state.jobs.first(where: { $0.id == id }) else { return .notFound }
            job.flag.cancel()
            return !job.running && !job.answered ? .queued(job) : .running
        }
    }

    /// The ids of every request not yet answered.
    var unanswered: [RequestID] { state.withLock { $0.jobs.filter { !$0.answered }.map(\.id) } }

    var snapshot: Snapshot {
        state.withLock { state in
            Snapshot(waiting: state.jobs.filter { !$0.running && !$0.answered }.count,
                     inFlight: state.jobs.filter { !$0.answered }, served: state.served)
        }
    }
}
