import AdapterFusion
import Foundation

// libFuzzer entry point for the parsers of user input. Built only by `make fuzz` (with
// `-sanitize=fuzzer,address`; Package.swift adds this target when AFUSION_FUZZ is set).
// $AFUSION_FUZZ_TARGET picks the parser: recipe, task, csv, tsv, jsonl, label-text, bigbench,
// safetensors, torch (PyTorch .bin checkpoints), adapterhub (adapter_config.json / head_config.json, by the first
// byte's parity). Errors thrown for bad input are expected; a crash, trap or sanitizer report is a bug.

let target = ProcessInfo.processInfo.environment["AFUSION_FUZZ_TARGET"] ?? "recipe"
let scratch = "/tmp/afusion-fuzz-\(getpid()).safetensors"

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = Data(bytes: bytes, count: size)
    switch target {
    case "recipe":
        guard let text = try? TextFile.decode(data, file: "fuzz.fuse") else { return 0 }
        _ = try? Recipe.parse(text, file: "fuzz.fuse")
    case "task":
        guard let text = try? TextFile.decode(data, file: "fuzz.toml") else { return 0 }
        _ = try? TaskSpec.parse(text, path: "/tmp/fuzz.toml")
    case "csv", "tsv", "jsonl", "label-text", "bigbench":
        let format = TaskSpec.Format(rawValue: target)!
        if let rows = try? DataReader.parse(data, path: "fuzz", format: format, firstLine: 1) {
            for r in rows { _ = r.fields.count }
        }
    case "safetensors":
        guard FileManager.default.createFile(atPath: scratch, contents: data) else { return 0 }
        if let f = try? SafeTensorsFile(path: scratch) {
            for name in f.entries.keys { _ = try? f.tensor(name) }
        }
    case "torch":
        guard FileManager.default.createFile(atPath: scratch, contents: data) else { return 0 }
        if let f = try? TorchCheckpoint(path: scratch) {
            for name in f.tensors.keys { _ = try? f.tensor(name) }
        }
    case "adapterhub":
        _ = try? AdapterHubAdapter.checkConfigJSON(data, head: (data.first ?? 0) % 2 == 1, hidden: 384, layers: 6)
    default:
        fatalError("unknown AFUSION_FUZZ_TARGET '\(target)'")
    }
    return 0
}

/// SwiftPM links an executable's entry point as `<module>_main`; hand control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

@_cdecl("afusion_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var c = argc
    var v = argv
    return LLVMFuzzerRunDriver(&c, &v) { fuzz($0, $1) }
}
