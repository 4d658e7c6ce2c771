import CKernels
import Foundation

/// Loads OpenBLAS at run time, after choosing its kernel family for this CPU.
///
/// OpenBLAS picks its kernels once, when it is loaded, from `OPENBLAS_CORETYPE` or its own CPU
/// detection, and Debian's 0.3.21 does not recognise some current CPUs (Xeons of family 6 model
/// 207 get the SSE3 `Prescott` kernels, 4.6× slower). So the library is not linked: the first
/// product `dlopen`s `libopenblas.so.0`, having first set `OPENBLAS_CORETYPE` to the fastest
/// family the CPU and the OS can run (CPUID + XGETBV), unless the environment already sets it.
/// This works the same for the CLI, a program using the library and `swift test`.
public struct OpenBLAS: Sendable {
    /// `cblas_sgemm(order, transA, transB, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc)`.
    typealias Sgemm =
        @convention(c) (
            Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32,
            UnsafePointer<Float>?, Int32, Float, UnsafeMutablePointer<Float>?, Int32
        ) -> Void

    let sgemm: Sgemm
    let setNumThreads: @convention(c) (Int32) -> Void
    private let getCorename: @convention(c) () -> UnsafePointer<CChar>?
    private let getConfig: @convention(c) () -> UnsafePointer<CChar>?

    /// The file that was loaded.
    public let path: String
    /// The kernel family asked for through `OPENBLAS_CORETYPE`, if any, and why.
    public let choice: KernelChoice

    /// The kernel family OpenBLAS runs (`openblas_get_corename()`), e.g. "SkylakeX", "Haswell".
    public var corename: String { getCorename().map { String(cString: $0) } ?? "unknown" }
    /// OpenBLAS's build description (`openblas_get_config()`): version and build options.
    public var config: String { getConfig().map { String(cString: $0) } ?? "unknown" }

    /// The process's OpenBLAS, loaded on first use. Stops the process with a clear message when
    /// no OpenBLAS is installed (nothing can be computed without it).
    public static let shared: OpenBLAS = {
        do { return try load() } catch { fatalError("\(error)") }
    }()

    /// Where to look: `$AFUSION_OPENBLAS` (a path), then the shared library by its usual names.
    static var candidates: [String] {
        (ProcessInfo.processInfo.environment["AFUSION_OPENBLAS"].map { [$0] } ?? [])
            + ["libopenblas.so.0", "libopenblas.so", "libopenblasp-r0.3.21.so"]
    }

    static func load() throws -> OpenBLAS {
        let choice = KernelChoice.forThisMachine()
        // Set only for the load; a variable the environment set is never touched.
        // Unset or empty (both mean "not set" here): set for this load only.
        if choice.source == .chosen, let core = choice.coretype { setenv("OPENBLAS_CORETYPE", core, 1) }
        defer { if choice.source == .chosen { unsetenv("OPENBLAS_CORETYPE") } }
        var errors: [String] = []
        for name in candidates {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_GLOBAL) else {
                errors.append(String(cString: dlerror())); continue
            }
            func symbol<T>(_ s: String, _: T.Type) throws -> T {
                guard let p = dlsym(handle, s) else { throw ModelError("\(name) has no symbol \(s): not an OpenBLAS library") }
                return unsafeBitCast(p, to: T.self)
            }
            let path = afk_library_path(dlsym(handle, "cblas_sgemm")).map { String(cString: $0) } ?? name
            return OpenBLAS(
                sgemm: try symbol("cblas_sgemm", Sgemm.self),
                setNumThreads: try symbol("openblas_set_num_threads", (@convention(c) (Int32) -> Void).self),
                getCorename: try symbol("openblas_get_corename", (@convention(c) () -> UnsafePointer<CChar>?).self),
                getConfig: try symbol("openblas_get_config", (@convention(c) () -> UnsafePointer<CChar>?).self),
                path: path, choice: choice)
        }
        throw ModelError(
            """
            OpenBLAS was not found (tried \(candidates.joined(separator: ", "))): \(errors.joined(separator: "; ")).
            Install it with `apt-get install libopenblas0` (or `make setup`), or set AFUSION_OPENBLAS to the library's path.
            """)
    }
}

/// Which OpenBLAS kernel family to ask for on this machine, and why.
public struct KernelChoice: Sendable {
    public enum Source: String, Sendable {
        case environment  // OPENBLAS_CORETYPE was set by the user or host: left as is
        case chosen  // set from CPUID/XGETBV before loading OpenBLAS
        case openblas  // nothing better than OpenBLAS's own detection
    }
    /// The value of `OPENBLAS_CORETYPE` in force when OpenBLAS loads (nil: OpenBLAS detects).
    public let coretype: String?
    public let source: Source
    public let reason: String

    /// The rule: AVX-512 (F, BW, DQ, VL) with the OS saving ZMM state → `Cooperlake` when
    /// AVX512_BF16 is present (its sgemm is SkylakeX's, and it adds the bf16 kernels), else
    /// `SkylakeX`; AVX2 + FMA with the OS saving YMM state → `Haswell`; otherwise OpenBLAS's
    /// own detection.
    public static func forThisMachine(environment: [String: String] = ProcessInfo.processInfo.environment) -> KernelChoice {
        if let set = environment["OPENBLAS_CORETYPE"], !set.isEmpty {
            return KernelChoice(coretype: set, source: .environment, reason: "OPENBLAS_CORETYPE=\(set) is set in the environment; left as is")
        }
        let cpu = CPUInfo.current
        return choose(cpu)
    }

    /// The rule applied to `cpu` (no environment variable).
    public static func choose(_ cpu: CPUInfo) -> KernelChoice {
        if cpu.hasAVX512 {
            if cpu.flags.contains("avx512_bf16") {
                return KernelChoice(
                    coretype: "Cooperlake", source: .chosen, reason: "AVX-512 F/BW/DQ/VL and AVX512_BF16, ZMM state enabled by the OS (XCR0 bits 5-7)"
                )
            }
            return KernelChoice(coretype: "SkylakeX", source: .chosen, reason: "AVX-512 F/BW/DQ/VL, ZMM state enabled by the OS (XCR0 bits 5-7)")
        }
        if cpu.hasAVX2FMA {
            return KernelChoice(
                coretype: "Haswell", source: .chosen,
                reason:
                    "AVX2 + FMA, YMM state enabled by the OS (XCR0 bits 1-2)\(cpu.flags.contains("avx512f") ? "; AVX-512 present but not enabled by the OS" : "")"
            )
        }
        return KernelChoice(coretype: nil, source: .openblas, reason: "no AVX2 + FMA usable: OpenBLAS's own detection")
    }
}

/// What CPUID and XGETBV say about this CPU.
public struct CPUInfo: Sendable {
    public let vendor: String
    public let brand: String
    public let family: Int
    public let model: Int
    /// ISA features present and usable (the OS-state checks are separate flags: `os_avx`, `os_avx512`).
    public let flags: Set<String>

    public init(vendor: String, brand: String, family: Int, model: Int, flags: Set<String>) {
        self.vendor = vendor; self.brand = brand; self.family = family; self.model = model; self.flags = flags
    }

    public var hasAVX512: Bool {
        ["avx512f", "avx512bw", "avx512dq", "avx512vl", "os_avx512"].allSatisfy(flags.contains)
    }
    public var hasAVX2FMA: Bool { ["avx2", "fma", "os_avx"].allSatisfy(flags.contains) }

    public static let current: CPUInfo = {
        var i = afk_cpu_info()
        afk_cpu_query(&i)
        func str<T>(_ t: T) -> String {
            withUnsafeBytes(of: t) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let named: [(String, Int32)] = [
            ("sse3", i.sse3), ("ssse3", i.ssse3), ("sse4_1", i.sse41), ("sse4_2", i.sse42), ("avx", i.avx),
            ("avx2", i.avx2), ("fma", i.fma), ("f16c", i.f16c), ("avx512f", i.avx512f), ("avx512dq", i.avx512dq),
            ("avx512cd", i.avx512cd), ("avx512bw", i.avx512bw), ("avx512vl", i.avx512vl),
            ("avx512_bf16", i.avx512_bf16), ("avx512_fp16", i.avx512_fp16), ("amx_bf16", i.amx_bf16),
            ("amx_tile", i.amx_tile), ("os_avx", i.os_avx), ("os_avx512", i.os_avx512), ("os_amx", i.os_amx),
        ]
        return CPUInfo(
            vendor: str(i.vendor), brand: str(i.brand).trimmingCharacters(in: .whitespaces),
            family: Int(i.family), model: Int(i.model),
            flags: Set(named.filter { $0.1 != 0 }.map(\.0)))
    }()

    /// The level the elementwise kernels run at: "AVX-512", "AVX2+FMA" or "SSE2".
    public static var kernelLevel: String {
        switch afk_kernel_level() {
        case 3: "AVX-512 (16 lanes)";
        case 2: "AVX2+FMA (8 lanes)";
        default: "SSE2 (4 lanes)"
        }
    }
}
