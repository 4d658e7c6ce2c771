import AdapterFusion
import Foundation
import Testing

@Suite struct HDF5Tests {
    @Test func writeReadAndH5dump() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("store.h5").path
        let w = Tensor(shape: [2, 3], values: [1, 2, 3, 4, 5, 6.5])
        do {
            let file = try HDF5File(creating: path)
            let g = try file.root.createGroup("adapters/trec")
            try g.write("layer_03/output_adapter/down/weight", tensor: w)
            try g.write("label_ids", ints: [3, 1, 4])
            try g.setAttribute("kind", "pfeiffer")
            try g.setAttribute("config", #"{"reduction": 16, "non_linearity": "relu"}"#)
            try g.setAttribute("best_epoch", 2)
            try g.setAttribute("dev_accuracy", [0.81, 0.9, 0.93])
            try g.setAttribute("lr", 1e-4)
            try g.setAttribute("note", "ünïcode ✓")
            try g.setAttribute("empty", "")
            try file.flush()
        }
        let file = try HDF5File(opening: path)
        let root = try file.root
        #expect(root.children() == ["adapters"])
        let g = try root.group("adapters/trec")
        #expect(g.path == "/adapters/trec")
        #expect(g.children() == ["label_ids", "layer_03"])
        #expect(g.isGroup("layer_03") && !g.isGroup("label_ids") && !g.isGroup("absent"))
        #expect(g.contains("layer_03/output_adapter/down/weight") && !g.contains("layer_03/nope"))
        #expect(try g.readTensor("layer_03/output_adapter/down/weight", shape: [2, 3]).array == w.array)
        #expect(try g.readInts("label_ids") == [3, 1, 4])
        #expect(try g.stringAttribute("kind") == "pfeiffer")
        #expect(try g.stringAttribute("note") == "ünïcode ✓")
        #expect(try g.stringAttribute("config") == #"{"reduction": 16, "non_linearity": "relu"}"#)
        #expect(try g.stringAttribute("empty") == "")
        #expect(try g.intAttribute("best_epoch") == 2)
        #expect(try g.doubleAttribute("dev_accuracy") == [0.81, 0.9, 0.93])
        #expect(try g.doubleAttribute("lr") == [1e-4])
        #expect(g.attributeNames() == ["best_epoch", "config", "dev_accuracy", "empty", "kind", "lr", "note"])

        // Errors name the file and the object.
        #expect { try g.readTensor("layer_03/output_adapter/down/weight", shape: [3, 2]) } throws: {
            "\($0)".contains("[2, 3]") && "\($0)".contains(path)
        }
        #expect { try g.readTensor("missing") } throws: { "\($0)".contains("/adapters/trec/missing") }
        #expect { try g.stringAttribute("absent") } throws: { "\($0)".contains("absent") }
        #expect { try g.stringAttribute("best_epoch") } throws: { "\($0)".contains("not a string") }
        #expect { try HDF5File(creating: path) } throws: { "\($0)".contains(path) }

        // h5dump (hdf5-tools, installed by `make setup`) reads what we wrote.
        let h5dump = ["/usr/bin/h5dump", "/usr/local/bin/h5dump"].first { FileManager.default.isExecutableFile(atPath: $0) }
        let exe = try #require(h5dump, "h5dump not found: run `make setup` (installs hdf5-tools)")
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = [path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        #expect(out.contains("GROUP \"layer_03\"") && out.contains("DATASET \"weight\""))
        #expect(out.contains("\"pfeiffer\"") && out.contains("6.5"))
    }

    @Test func corruptFileIsRefused() throws {
        let dir = try Support.tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("bad.h5").path
        try Data("this is not hdf5".utf8).write(to: URL(fileURLWithPath: path))
        #expect { try HDF5File(opening: path) } throws: { "\($0)".contains("not an HDF5 file") && "\($0)".contains(path) }
        #expect { try HDF5File(opening: dir.appendingPathComponent("none.h5").path) } throws: { "\($0)".contains("No such file or directory") }
    }
}
