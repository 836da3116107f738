import ArgumentParser
import Config

#if canImport(Glibc)
import Glibc
#endif

/// The `evnode` command line. Every configuration error ends the process with status 2 and one
/// line naming what was wrong.
@main
struct EvnodeMain {
    static func main() async {
        let arguments: [String]
        do {
            arguments = try FlagAliases.normalize(Array(CommandLine.arguments.dropFirst()))
        } catch {
            fail(error.description)
        }
        do {
            var command = try EvnodeCommand.parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as ConfigError {
            fail(error.description)
        } catch {
            let code = EvnodeCommand.exitCode(for: error)
            if code == .validationFailure {
                // Flag-parsing problems are configuration errors too: same status as ConfigError.
                let message = EvnodeCommand.fullMessage(for: error)
                FileIOStderr.write(message + "\n")
                exit(ExitStatus.configuration)
            }
            EvnodeCommand.exit(withError: error)
        }
    }

    static func fail(_ message: String) -> Never {
        FileIOStderr.write("error: \(message)\n")
        exit(ExitStatus.configuration)
    }
}

enum ExitStatus {
    /// Bad configuration, flags or files (SPEC §2).
    static let configuration: Int32 = 2
}

enum FileIOStderr {
    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}

struct EvnodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evnode",
        abstract: "A rollup node: aggregator, full node, and catchup-then-aggregate failover.",
        subcommands: [InitCommand.self, StartCommand.self, LocalDACommand.self, StatusCommand.self,
                      RollbackCommand.self, SignerCommand.self, KeysCommand.self, NetInfoCommand.self,
                      UnsafeCleanCommand.self, MigrateHomeCommand.self, VersionCommand.self])
}

struct VersionCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "version", abstract: "Print the evnode version.")

    func run() {
        print("evnode \(EvnodeVersion.string) (wire protocol evnode.v1)")
    }
}

enum EvnodeVersion {
    static let string = "0.1.0"
}
