import Testing
@testable import Llama

/// The thread governor's rules, fed timings (its decisions are a function of what decodes took; the
/// speed it buys beside another process is measured by `selfanchor bench`, row "beside").
@Suite struct ThreadGovernorTests {
    /// Runs `count` decodes of `tokens` tokens whose time on each thread count `time` says; returns the
    /// thread counts used.
    static func run(_ governor: inout ThreadGovernor, count: Int, tokens: Int = 2,
                    time: (Int32) -> Double) -> [Int32]
    {
        (0..<count).map { _ in
            let threads = governor.threads(forTokens: tokens)
            governor.record(tokens: tokens, threads: threads, seconds: time(threads))
            return threads
        }
    }

    @Test func oneThreadHasNothingToChoose() {
        #expect(ThreadGovernor(threads: 1) == nil)
        #expect(ThreadGovernor(threads: 8)?.reduced == 4)
    }

    @Test func aloneEveryDecodeUsesAllThreads() {
        var governor = ThreadGovernor(threads: 2)!
        // Steady timings with noise, and a context that slowly grows: never a reason to leave all threads.
        var k = 0.0
        let used = Self.run(&governor, count: 2000) { _ in
            k += 1
            return 0.030 * (1 + k / 4000) * (k.truncatingRemainder(dividingBy: 7) == 0 ? 1.6 : 1)
        }
        #expect(used.allSatisfy { $0 == 2 })
        #expect(governor.reducedDecodes == 0 && governor.switches == 0)
    }

    @Test func aNeighbourSendsDecodesToHalfTheThreadsAndItsLeavingBringsThemBack() {
        var governor = ThreadGovernor(threads: 2)!
        _ = Self.run(&governor, count: 20) { _ in 0.030 }
        // A neighbour arrives: all threads take ten times as long, half of them twice as long as alone.
        var neighbour = true
        func time(_ threads: Int32) -> Double { neighbour ? (threads == 2 ? 0.300 : 0.060) : (threads == 2 ? 0.030 : 0.055) }
        let beside = Self.run(&governor, count: 600, time: time)
        #expect(beside.prefix(5).contains(1), "switched within a few decodes: \(beside.prefix(8))")
        #expect(beside.prefix(2).allSatisfy { $0 == 2 }, "not on the first slow decode")
        let onAll = beside.dropFirst(5).filter { $0 == 2 }.count
        #expect(onAll > 0, "all threads are tried again now and then")
        #expect(onAll < 600 / 20, "and rarely while the neighbour stays (\(onAll) of 595)")
        #expect(governor.current == 1)
        // It leaves: the next probe finds all threads fast again.
        neighbour = false
        let after = Self.run(&governor, count: 1200, time: time)
        #expect(after.firstIndex(of: 2) != nil)
        #expect(Array(after.suffix(100)).allSatisfy { $0 == 2 }, "back on all threads")
        #expect(governor.current == 2)
    }

    @Test func aHiccupIsNoNeighbour() {
        var governor = ThreadGovernor(threads: 2)!
        _ = Self.run(&governor, count: 50) { _ in 0.030 }
        // Two decodes in a row ten times as slow (a page fault, another thread of this process), then normal.
        var k = 0
        let used = Self.run(&governor, count: 50) { _ in
            k += 1
            return k <= 2 ? 0.300 : 0.030
        }
        #expect(used.allSatisfy { $0 == 2 })
        #expect(governor.switches == 0)
    }

    @Test func promptsAlwaysUseAllThreads() {
        var governor = ThreadGovernor(threads: 2)!
        governor.startReduced(fullMs: 300, reducedMs: 60)
        #expect(governor.current == 1)
        #expect(governor.threads(forTokens: ThreadGovernor.governedTokens + 1) == 2)
        #expect(governor.threads(forTokens: 1) == 1)
    }

    @Test func startingBesideANeighbourStartsOnHalfTheThreadsOnlyWhenTheyAreClearlyFaster() {
        var alone = ThreadGovernor(threads: 2)!
        alone.startReduced(fullMs: 30, reducedMs: 55)
        #expect(alone.current == 2)
        var close = ThreadGovernor(threads: 2)!
        close.startReduced(fullMs: 30, reducedMs: 28)
        #expect(close.current == 2)
        var beside = ThreadGovernor(threads: 2)!
        beside.startReduced(fullMs: 300, reducedMs: 60)
        #expect(beside.current == 1)
        // Once decodes were governed, the start no longer applies.
        var running = ThreadGovernor(threads: 2)!
        _ = Self.run(&running, count: 3) { _ in 0.030 }
        running.startReduced(fullMs: 300, reducedMs: 60)
        #expect(running.current == 2)
    }

    @Test func probesBackOffWhileTheNeighbourStays() {
        var governor = ThreadGovernor(threads: 2)!
        governor.startReduced(fullMs: 300, reducedMs: 60)
        let used = Self.run(&governor, count: 4000) { $0 == 2 ? 0.300 : 0.060 }
        let probes = zip(used, used.dropFirst()).filter { $0 == 1 && $1 == 2 }.count
        // Intervals 8, 16, …, 1024: 9 probes in 4000 decodes, where one every 8 decodes would be 444.
        #expect(probes >= 5 && probes <= 12, "\(probes) probes in 4000 decodes; \(used.enumerated().filter { $0.element == 2 }.map(\.offset).prefix(20))")
    }
}
