#if canImport(Glibc)
    import Glibc
#endif

/// How llama.cpp's OpenMP workers wait between the steps of a decode.
///
/// Exists because the CPU backend's workers spin while they wait: alone that is what makes a decode
/// fast, but beside another decoding process on the same cores (an editor's daemon beside a notebook,
/// `eval` beside `solve`) each process's spinning workers steal the cores the other needs. Measured on a
/// 2-core VM, test model, self-anchor, 132 tokens (README, "Beside other work"): libgomp's default wait
/// runs alone at 36–45 tok/s and beside a running eval took 21.3 s; `OMP_WAIT_POLICY=PASSIVE` took 14.8 s
/// beside it but ran alone at 17–20 tok/s (less than half); a short spin, `GOMP_SPINCOUNT=10000`, ran
/// alone at 39–44 tok/s (as fast as the default) and beside the eval in 14.7 s (as well as PASSIVE).
///
/// libgomp reads these variables once, when it is loaded, before any Swift code runs: so when the user
/// has set neither, the process sets the short spin and executes itself again (once; the variable
/// being set is what stops a second time).
enum WaitPolicy {
    static let spinCount = "10000"

    static func applyDefault() {
        guard getenv("OMP_WAIT_POLICY") == nil, getenv("GOMP_SPINCOUNT") == nil else { return }
        setenv("GOMP_SPINCOUNT", spinCount, 1)
        // The same binary, the same arguments, the new environment. On failure, go on as we are.
        execv("/proc/self/exe", CommandLine.unsafeArgv)
    }
}
