import AttentionAnalysis
import Llama

/// The KV-cache sequences of one request in flight: its real context, the context with the question
/// masked, and the context with the question and the current plan masked (and, for
/// `attention-anchor`, its attention-reading context, made on first use and kept).
final class Slot {
    let index: Int
    let real: Int32
    let questionMasked: Int32
    let planMasked: Int32
    var tracker: AttentionTracker?
    var sequences: [Int32] { [real, questionMasked, planMasked] }

    /// Slot `index` uses sequences 1 + 3·index … 3 + 3·index (sequence 0 is the prompt cache's).
    init(index: Int) {
        self.index = index
        real = Int32(1 + 3 * index)
        questionMasked = real + 1
        planMasked = real + 2
    }
}

/// Hands out the engine's request slots: a request waits (suspended, not blocking a thread) until one is
/// free, and gets the lowest free one (a request decoding alone thus always uses the same cells).
/// Unchecked: the free list and the waiters change under `lock`, and a slot is used by one request at a
/// time.
final class SlotPool: @unchecked Sendable {
    private let slots: [Slot]
    private var free: [Int]
    private var waiting: [CheckedContinuation<Int, Never>] = []
    private let lock = ConditionLock()

    init(count: Int) {
        slots = (0..<count).map(Slot.init)
        free = Array(0..<count)
    }

    /// Waits for a free slot.
    func acquire() async -> Slot {
        let index = await withCheckedContinuation { (continuation: CheckedContinuation<Int, Never>) in
            lock.lock()
            if free.isEmpty {
                waiting.append(continuation)
                lock.unlock()
            } else {
                let index = free.removeFirst()
                lock.unlock()
                continuation.resume(returning: index)
            }
        }
        return slots[index]
    }

    /// Hands the slot to the longest waiting request, or back to the free list.
    func release(_ slot: Slot) {
        lock.lock()
        if waiting.isEmpty {
            free.append(slot.index)
            free.sort()
            lock.unlock()
        } else {
            let next = waiting.removeFirst()
            lock.unlock()
            next.resume(returning: slot.index)
        }
    }
}
