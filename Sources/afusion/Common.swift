import AdapterFusion
import ArgumentParser
import Foundation

/// Options shared by commands that run the encoder.
struct ModelOptions: ParsableArguments {
    var modelGiven: Bool { model != nil || ProcessInfo.processInfo.environment["AFUSION_MODEL"] != nil }
    var modelDirectory: String { model ?? ModelDirectory.defaultPath }

    @Option(
        help:
            "Model directory holding config.json, model.safetensors and vocab.txt (default: $AFUSION_MODEL, a recipe's base, or models/all-MiniLM-L6-v2)."
    )
    var model: String?

    @Option(help: ArgumentHelp("Threads (default: $AFUSION_THREADS, else the CPUs this process may use).", valueName: "n"))
    var threads: Int?
}

/// The thread count every command takes: `--threads`, else `$AFUSION_THREADS`, else the CPUs
/// this process may run on (`sched_getaffinity`).
enum Threads {
    /// Validates and applies the count; returns it.
    @discardableResult
    static func apply(_ option: Int?) throws -> Int {
        if let option {
            guard option >= 1 else { throw ValidationError("--threads must be at least 1, got \(option)") }
            if option > Parallel.availableCPUs {
                FileHandle.standardError.write(
                    Data(
                        "note: --threads \(option) is more than the \(Parallel.availableCPUs) CPU(s) this process may run on; the extra threads only take turns\n"
                            .utf8))
            }
            BLAS.setThreads(option)
            return option
        }
        if let v = ProcessInfo.processInfo.environment["AFUSION_THREADS"] {
            guard let n = Int(v.trimmingCharacters(in: .whitespaces)), n >= 1 else {
                throw ValidationError("AFUSION_THREADS must be a whole number of at least 1, got '\(v)'")
            }
            BLAS.setThreads(n)
            return n
        }
        BLAS.setThreads(Parallel.availableCPUs)
        return Parallel.availableCPUs
    }
}

/// A live status line: rewritten in place on stderr when that is a terminal, else a plain
/// stdout line every 10 seconds.
final class StatusLine {
    private let tty = isatty(2) != 0
    private var last = 0.0
    private var shown = false

    func update(_ text: String, force: Bool = false) {
        let now = Clock.now()
        guard force || now - last >= (tty ? 0.2 : 10) else { return }
        last = now
        if tty {
            FileHandle.standardError.write(Data(("\r\u{1B}[K" + text).utf8))
            shown = true
        } else {
            // Not a terminal (a log file, CI): plain lines on stdout, in order with the rest.
            print(text)
            fflush(stdout)
        }
    }

    /// Ends the status line so normal output starts on a fresh line.
    func finish() {
        if tty && shown { FileHandle.standardError.write(Data("\r\u{1B}[K".utf8)) }
        shown = false
    }
}

func formatDuration(_ s: Double) -> String {
    guard s.isFinite else { return "?" }
    let t = Int(s.rounded())
    return t >= 3600 ? "\(t / 3600)h\(String(format: "%02d", t / 60 % 60))m" : t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
}

func printErr(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

extension AdapterPlacement: ExpressibleByArgument {}
extension PEFTMethod: ExpressibleByArgument {}
extension Activation: ExpressibleByArgument {}

/// A failure of the command's work (bad or missing data, no store) rather than of its
/// arguments: printed as "Error: …" without the usage text.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Checks of option values, run by ArgumentParser before a command starts any work.
enum Check {
    /// Adapter, fusion and store entry names: `[A-Za-z0-9_-]+`, at most 64 characters (they
    /// become HDF5 group names; a '/' would nest groups).
    static func name(_ value: String, option: String) throws {
        let ok =
            !value.isEmpty && value.count <= 64
            && value.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
            }
        guard ok else {
            throw ValidationError(
                "\(option) '\(value.prefix(64))\(value.count > 64 ? "…" : "")' is not a valid name: use 1–64 letters, digits, '_' or '-'")
        }
    }

    static func range<T: Comparable>(_ value: T?, _ bounds: ClosedRange<T>, option: String, why: String = "") throws {
        guard let value else { return }
        guard bounds.contains(value) else {
            throw ValidationError("\(option) must be in \(bounds.lowerBound)…\(bounds.upperBound), got \(value)\(why.isEmpty ? "" : " (\(why))")")
        }
    }

    static func learningRate(_ lr: Float, option: String = "--lr") throws {
        guard lr.isFinite, lr > 0, lr <= 1 else { throw ValidationError("\(option) must be a finite number in (0, 1], got \(lr)") }
    }

    /// A maximum sequence length against the model's position table.
    static func maxLength(_ n: Int?, model: BertConfig, option: String = "--max-len") throws {
        try range(n, 8...model.maxPositionEmbeddings, option: option, why: "the model has \(model.maxPositionEmbeddings) positions")
    }
}

/// Prints training events: a live status line per step, a summary line per epoch.
/// Prints a training run's events: the data summary, what is trained (+ `built`), the trainer's progress.
func reporter(_ status: StatusLine, metric: String, built: String = "") -> (RunEvent) -> Void {
    { event in
        switch event {
        case .data(let summary): status.finish(); print(summary)
        case .built(let line): print(line + built)
        case .training(let e): report(e, metric: metric, status: status)
        }
    }
}

func report(_ event: TrainingEvent, metric: String, status: StatusLine) {
    switch event {
    case let .started(n, d, steps, pad):
        print(
            "training on \(n) examples (\(steps) batches per epoch, length-bucketed: a padded batch would be \(String(format: "%.1f", pad * 100)) % padding; packed batches compute none), dev \(d)"
        )
    case let .step(epoch, step, of, loss, tps, left):
        status.update("epoch \(epoch)  step \(step)/\(of)  loss \(String(format: "%.4f", loss))  \(Int(tps)) tok/s  ETA \(formatDuration(left))")
    case let .epochEnded(epoch, loss, dev, best, secs):
        status.finish()
        print(
            "epoch \(epoch): train loss \(String(format: "%.4f", loss)), dev \(metric) \(fmt(dev))\(best ? " (best)" : ""), \(formatDuration(secs))")
    case let .stoppedEarly(epoch):
        print("no dev improvement for the patience window; stopped after epoch \(epoch)")
    }
}

func fmt(_ x: Double) -> String { String(format: "%.4f", x) }

/// Says which fusions replacing adapter `name` leaves with changed members (call before saving).
func fusionsAffected(byReplacing name: String, in store: String) -> [String] {
    guard (try? AdapterStore.list(store, damaged: { _ in }).contains { $0.name == name }) == true else { return [] }
    return (try? AdapterStore.fusionsUsing(store, adapter: name)) ?? []
}

/// The notice after replacing an adapter that stored fusions use.
func noteReplaced(_ name: String, affecting fusions: [String]) {
    guard !fusions.isEmpty else { return }
    print(
        "note: replaced adapter '\(name)', a member of fusion\(fusions.count == 1 ? "" : "s") \(fusions.joined(separator: ", ")); "
            + "\(fusions.count == 1 ? "it reports" : "they report") changed members until retrained (train-fusion --replace)")
}
