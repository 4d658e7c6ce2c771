import AdapterFusion
import ArgumentParser
import CHDF5
import Foundation

/// `afusion doctor`: what this machine runs and why, and whether the model is in place.
struct Doctor: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show the OpenBLAS build and kernel in use (and why), CPU features, threads, HDF5, and the model.")

    @Option(help: "Model directory to check (default: $AFUSION_MODEL or models/all-MiniLM-L6-v2).")
    var model: String?
    @Option(help: ArgumentHelp("Threads to report (default: $AFUSION_THREADS, else the CPUs this process may use).", valueName: "n"))
    var threads: Int?

    func run() throws {
        let used = try Threads.apply(threads)
        let cpu = CPUInfo.current
        let blas = BLAS.library
        func row(_ k: String, _ v: String) { print(k.padding(toLength: 20, withPad: " ", startingAt: 0) + v) }
        print("afusion doctor")
        row("CPU", "\(cpu.brand.isEmpty ? "unknown" : cpu.brand) (\(cpu.vendor), family \(cpu.family) model \(cpu.model))")
        let isa = [
            "sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl", "avx512_bf16",
            "avx512_fp16", "amx_tile", "amx_bf16",
        ]
        row("ISA", isa.map { "\($0) \(cpu.flags.contains($0) ? "yes" : "no")" }.joined(separator: ", "))
        row(
            "OS vector state",
            "AVX (XCR0 1-2) \(cpu.flags.contains("os_avx") ? "enabled" : "off"), AVX-512 (XCR0 5-7) "
                + "\(cpu.flags.contains("os_avx512") ? "enabled" : "off"), AMX (XCR0 17-18) \(cpu.flags.contains("os_amx") ? "enabled" : "off")")
        row("OpenBLAS", blas.path)
        row("  build", blas.config.trimmingCharacters(in: .whitespaces))
        row("  core in use", blas.corename)
        switch blas.choice.source {
        case .environment: row("  why", blas.choice.reason)
        case .chosen: row("  why", "OPENBLAS_CORETYPE=\(blas.choice.coretype ?? "") set before loading: \(blas.choice.reason)")
        case .openblas: row("  why", blas.choice.reason)
        }
        if let asked = blas.choice.coretype, asked.lowercased() != blas.corename.lowercased() {
            row("  warning", "asked for \(asked), OpenBLAS runs \(blas.corename) (this build may not know \(asked))")
        }
        if ["prescott", "generic", "core2", "katmai", "coppermine", "northwood", "banias", "atom"].contains(blas.corename.lowercased()),
            cpu.hasAVX2FMA
        {
            row("  warning", "this CPU runs AVX2, but OpenBLAS uses its slow \(blas.corename) kernels")
        }
        row("elementwise", "\(CPUInfo.kernelLevel) kernels (GELU, softmax, LayerNorm, AdamW)")
        let env = ProcessInfo.processInfo.environment["AFUSION_THREADS"]
        row(
            "threads",
            "\(used) (\(threads != nil ? "--threads" : env != nil ? "AFUSION_THREADS" : "CPUs this process may use"); "
                + "\(Parallel.availableCPUs) available); OpenBLAS single-threaded inside afusion's workers")
        var major: UInt32 = 0
        var minor: UInt32 = 0
        var release: UInt32 = 0
        H5get_libversion(&major, &minor, &release)
        row("HDF5", "\(major).\(minor).\(release)")
        let dir = model ?? ModelDirectory.defaultPath
        let weights = (dir as NSString).appendingPathComponent("model.safetensors")
        if FileManager.default.fileExists(atPath: weights) {
            let sha = try SHA256.file(weights)
            let known = sha == ModelDirectory.allMiniLMSHA256
            row("model", "\(dir): sha256 \(sha.prefix(12))… \(known ? "(all-MiniLM-L6-v2, verified)" : "(not the all-MiniLM-L6-v2 checksum)")")
        } else {
            row("model", "not found at \(dir) — run `make setup`, or pass --model DIR")
        }
    }
}
