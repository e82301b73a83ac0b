#!/usr/bin/env python3
"""Generate the POSIX workload's file tree, deterministically, and describe it.

Usage: gen-tree.py OUTDIR
Writes OUTDIR/tree.tar (GNU tar of ./tree: ~2,000 files in nested directories, symlinks, hard
links, odd names, chunk-boundary sizes, assorted modes, owners and mtimes), OUTDIR/tree.sha256
(`sha256sum` lines for every regular file) and OUTDIR/tree.manifest (one line per entry, the
format the guest produces with busybox stat; see workloads/01-posix.sh).
"""
import hashlib
import io
import os
import random
import sys
import tarfile

N_FILES = 2000
N_DIRS = 60
N_SYMLINKS = 100
N_HARDLINKS = 100
BASE_MTIME = 1_600_000_000


def main() -> int:
    out = sys.argv[1]
    rng = random.Random(20240601)
    dirs = ["tree"]
    entries = []  # (TarInfo, data or None)

    def add_dir(path, mode=0o755):
        ti = tarfile.TarInfo(path)
        ti.type = tarfile.DIRTYPE
        ti.mode = mode
        ti.mtime = BASE_MTIME
        entries.append((ti, None))

    add_dir("tree")
    for i in range(N_DIRS):
        parent = rng.choice(dirs)
        depth = parent.count("/")
        if depth >= 6:
            parent = "tree"
        name = f"{parent}/dir{i:02d}" + (" with space" if i % 17 == 5 else "")
        dirs.append(name)
        add_dir(name, rng.choice([0o755, 0o750, 0o700, 0o775]))
    # one deep path longer than the 100-byte ustar name field
    deep = "tree/deep"
    add_dir(deep)
    dirs.append(deep)
    for i in range(8):
        deep = f"{deep}/level-{i}-" + "x" * 12
        add_dir(deep)
        dirs.append(deep)

    special_sizes = [0, 1, 4095, 4096, 4097, 32767, 32768, 32769, 65536, 131073,
                     1 << 20, (1 << 20) + 1, 3 * (1 << 20) + 12345]
    files = []
    for i in range(N_FILES):
        d = rng.choice(dirs)
        if i < len(special_sizes):
            size = special_sizes[i]
        else:
            r = rng.random()
            if r < 0.70:
                size = rng.randint(0, 4096)
            elif r < 0.97:
                size = rng.randint(4097, 65536)
            else:
                size = rng.randint(65537, 1 << 20)
        if i % 211 == 7:
            name = f"f{i:04d}-" + "long" * 50  # 206 bytes
        elif i % 97 == 3:
            name = f"f{i:04d} ünïcødé €.txt"
        elif i % 89 == 4:
            name = f".hidden{i:04d}"
        else:
            name = f"f{i:04d}.dat"
        path = f"{d}/{name}"
        if i % 5 == 0:
            # compressible text
            line = f"line of file {i} " * 4 + "\n"
            data = (line * (size // len(line) + 1)).encode()[:size]
        elif i % 13 == 0 and size > 8192:
            # mostly zeros with a little data: holes-to-be
            data = bytearray(size)
            data[size // 2:size // 2 + 16] = rng.randbytes(16)
            data = bytes(data)
        else:
            data = rng.randbytes(size)
        ti = tarfile.TarInfo(path)
        ti.size = size
        ti.mode = rng.choice([0o644, 0o644, 0o600, 0o755, 0o444, 0o640])
        ti.mtime = BASE_MTIME + rng.randint(0, 10_000_000)
        ti.uid, ti.gid = rng.choice([(0, 0), (0, 0), (1000, 1000), (1234, 5678), (65534, 65534)])
        entries.append((ti, data))
        files.append(path)

    for i in range(N_HARDLINKS):
        target = files[rng.randrange(len(files))]
        d = rng.choice(dirs)
        ti = tarfile.TarInfo(f"{d}/hard{i:03d}")
        ti.type = tarfile.LNKTYPE
        ti.linkname = target
        entries.append((ti, None))

    for i in range(N_SYMLINKS):
        d = rng.choice(dirs)
        kind = i % 4
        if kind == 0:
            target = os.path.relpath(rng.choice(files), d)
        elif kind == 1:
            target = os.path.relpath(rng.choice(dirs), d)
        elif kind == 2:
            target = f"does-not-exist-{i}"
        else:
            target = "/absolute/target/" + "y" * (i % 40)
        ti = tarfile.TarInfo(f"{d}/sym{i:03d}")
        ti.type = tarfile.SYMTYPE
        ti.linkname = target
        ti.mtime = BASE_MTIME
        entries.append((ti, None))

    # Hard links must come after their targets; tar order = entries order.
    with tarfile.open(os.path.join(out, "tree.tar.tmp"), "w", format=tarfile.GNU_FORMAT) as tar:
        for ti, data in entries:
            ti.uname = ti.gname = ""
            tar.addfile(ti, io.BytesIO(data) if data is not None else None)
    os.replace(os.path.join(out, "tree.tar.tmp"), os.path.join(out, "tree.tar"))

    # Describe the tree as extracted.
    content = {}
    meta = {}
    nlink = {}
    for ti, data in entries:
        if ti.isfile():
            content[ti.name] = data
            meta[ti.name] = ti
            nlink[ti.name] = 1
    links = {}
    for ti, _ in entries:
        if ti.islnk():
            links[ti.name] = ti.linkname
            nlink[ti.linkname] += 1
    sums = []
    manifest = []
    for ti, data in entries:
        p = "./" + ti.name
        if ti.isdir():
            manifest.append(f"{p}|directory|{ti.mode:o}")
        elif ti.issym():
            manifest.append(f"{p}|symbolic link|{ti.linkname}")
        else:
            src = links.get(ti.name, ti.name)
            m = meta[src]
            data = content[src]
            kind = "regular file" if data else "regular empty file"
            manifest.append(f"{p}|{kind}|{m.mode:o}|{m.uid}|{m.gid}|{len(data)}|{m.mtime}|{nlink[src]}")
            sums.append(f"{hashlib.sha256(data).hexdigest()}  {p}")
    with open(os.path.join(out, "tree.sha256"), "w") as f:
        f.write("\n".join(sorted(sums, key=lambda s: s[66:].encode())) + "\n")
    with open(os.path.join(out, "tree.manifest"), "w") as f:
        f.write("\n".join(sorted(manifest, key=lambda s: s.encode())) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
