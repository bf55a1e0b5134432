import ArgumentParser

/// The `selfanchor` command line: one subcommand per job.
@main
struct SelfAnchorCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selfanchor",
        abstract: "Stepwise reasoning with a local model and the Self-Anchor decoder.",
        subcommands: [SolveCommand.self, ServeCommand.self, EvalCommand.self, AnalyzeCommand.self, BenchCommand.self, ModelsCommand.self],
        defaultSubcommand: nil
    )

    static func main() {
        WaitPolicy.applyDefault()
        main(nil)
    }
}
