/// Chooses how many threads each decode of a context uses, from how long the context's own decodes
/// take, so that a process beside another decoding process on the same cores gives up half its
/// threads instead of fighting for the cores.
///
/// Why: llama.cpp's CPU workers wait for each other at every step of a decode. Two processes with a
/// thread per core each, on the same cores, preempt each other's workers, and every step then waits
/// for a thread that is not running: measured on a 2-core VM (README, "Beside other work"), a test-model
/// solve beside a running eval took 42–44 s on 2 threads and 11 s on 1. Alone, all threads are
/// fastest. Which case holds changes while a daemon runs, so it is measured, not configured.
///
/// The thread count can also change the numbers: measured on the test model, a single-token decode after
/// 321 cached tokens gave other logits on 1 thread than on 2 (after 161 tokens, and prompts of up to 401
/// tokens, the same bits; presumably attention over a long cache is split between the threads and
/// summed in another order). So all threads are the reference, and half of them are used only on
/// evidence of a neighbour:
///
/// - decodes of at most `governedTokens` tokens (generation) are timed, per token count: their best
///   time on `full` threads (slowly forgotten, `bestDrift`), a running average on `reduced` ones
///   (`smoothing`); longer decodes (prompts) always use `full`;
/// - when `confirmations` decodes in a row on `full` threads take `slowdown` times their best or more,
///   another process is taking the cores (a hiccup slows one or two): decodes go to `reduced` threads;
/// - while on `reduced` threads, `full` is tried again now and then (`probeLength` decodes every
///   `probeInterval` governed decodes, the interval doubling while it stays slower, up to
///   `longestProbeInterval`); when it is as fast as `reduced` again (or back near its best), decodes go
///   back to `full`.
///
/// Alone, every decode thus runs on all threads, and greedy output is that of `--fixed-threads`.
/// A process that starts beside a neighbour learns it at once from `BatchCalibration`'s timings
/// (`startReduced`). A pure value (timings in, choices out), so that its rules are tested without
/// timing anything.
public struct ThreadGovernor: Sendable {
    public let full: Int32
    public let reduced: Int32

    public static let governedTokens = 8
    static let smoothing = 0.3
    /// The best time forgets this fraction per decode, so that a context that grows (attention over more
    /// cached tokens) is not taken for a neighbour; a neighbour's slowdown comes within a few decodes.
    static let bestDrift = 1.005
    /// At the start, `reduced` is taken when it is this much faster than `full` (`startReduced`).
    static let startMargin = 0.8
    /// How much slower than its best a `full` decode runs before a neighbour is assumed.
    static let slowdown = 2.5
    /// A `full` probe this close to its best ends the reduced spell whatever `reduced` measures.
    static let nearBest = 1.5
    /// Governed decodes in a row that must find the slowdown before it counts (one slow decode is a
    /// hiccup, not a neighbour).
    static let confirmations = 3
    static let probeLength = 2
    static let firstProbeInterval = 8
    static let longestProbeInterval = 1024

    /// Per token count: the best time on `full`, the running average on `reduced`.
    private var best: [Int: Double] = [:]
    private var reducedAverage: [Int: Double] = [:]
    /// The thread count in use.
    public private(set) var current: Int32
    /// Decodes left in a probe of `full` (0: none running), and the token counts it timed so far.
    private var probeLeft = 0
    private var probeTimed: [Int: Double] = [:]
    private var sinceProbe = 0
    private var probeInterval = firstProbeInterval
    private var slowInARow = 0

    /// Decodes so far, those on `reduced` threads, and how often the choice changed (for bench).
    public private(set) var decodes = 0
    public private(set) var reducedDecodes = 0
    public private(set) var switches = 0

    /// A governor between `threads` and half of them; nil when there is nothing to choose (one thread).
    public init?(threads: Int32) {
        guard threads > 1 else { return nil }
        full = threads
        reduced = max(1, threads / 2)
        current = threads
    }

    /// A neighbour was seen before any decode was governed: single-token decodes measured `fullMs` on
    /// all threads and `reducedMs` on half (`BatchCalibration`, whose decodes are thrown away). Starts on
    /// `reduced` when that is clearly faster.
    public mutating func startReduced(fullMs: Double, reducedMs: Double) {
        guard decodes == 0, current == full, reducedMs < Self.startMargin * fullMs else { return }
        current = reduced
        reducedAverage[1] = reducedMs / 1000
        switches += 1
    }

    /// The threads for a decode of `tokens` tokens.
    public mutating func threads(forTokens tokens: Int) -> Int32 {
        guard tokens <= Self.governedTokens else { return full }
        guard current == reduced else { return full }
        if probeLeft > 0 { return full }
        sinceProbe += 1
        if sinceProbe >= probeInterval {
            probeLeft = Self.probeLength
            probeTimed = [:]
            sinceProbe = 0
            return full
        }
        return reduced
    }

    /// How long a decode of `tokens` tokens on `threads` threads took.
    public mutating func record(tokens: Int, threads: Int32, seconds elapsed: Double) {
        decodes += 1
        if threads == reduced && reduced != full { reducedDecodes += 1 }
        guard tokens <= Self.governedTokens else { return }
        func average(_ old: Double?) -> Double { old.map { $0 + Self.smoothing * (elapsed - $0) } ?? elapsed }
        if current == full {
            guard threads == full else { return }
            if let best = best[tokens], elapsed >= Self.slowdown * best { slowInARow += 1 } else { slowInARow = 0 }
            best[tokens] = min((best[tokens] ?? elapsed) * Self.bestDrift, elapsed)
            if slowInARow >= Self.confirmations {
                slowInARow = 0
                current = reduced
                switches += 1
                probeInterval = Self.firstProbeInterval
                sinceProbe = 0
            }
            return
        }
        if threads == reduced {
            reducedAverage[tokens] = average(reducedAverage[tokens])
            return
        }
        // A probe of `full`: its fastest decode per token count (a neighbour's spell hits one, not both).
        probeTimed[tokens] = min(probeTimed[tokens] ?? elapsed, elapsed)
        probeLeft -= 1
        guard probeLeft == 0 else { return }
        let back = probeTimed.contains { tokens, probe in
            if let best = best[tokens], probe <= Self.nearBest * best { return true }
            if let theirs = reducedAverage[tokens], probe <= theirs { return true }
            return false
        }
        // (The best time is learnt on all threads only: a probe beside the neighbour is no best.)
        if back {
            current = full
            switches += 1
        } else {
            probeInterval = min(Self.longestProbeInterval, probeInterval * 2)
        }
    }
}
