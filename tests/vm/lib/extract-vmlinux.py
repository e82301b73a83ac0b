#!/usr/bin/env python3
"""Extract the uncompressed ELF vmlinux from a Debian /boot/vmlinuz-* (bzImage, xz payload).

qemu boots the ELF directly through its PVH entry note, which is faster than the bzImage path.
Usage: extract-vmlinux.py VMLINUZ OUT
"""
import lzma
import os
import sys


def main() -> int:
    src, out = sys.argv[1], sys.argv[2]
    data = open(src, "rb").read()
    magic = b"\xfd7zXZ\x00"
    pos = data.find(magic)
    while pos != -1:
        try:
            dec = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
            elf = dec.decompress(data[pos:])
            if elf[:4] == b"\x7fELF":
                tmp = out + ".tmp"
                with open(tmp, "wb") as f:
                    f.write(elf)
                os.replace(tmp, out)
                return 0
        except lzma.LZMAError:
            pass
        pos = data.find(magic, pos + 1)
    print(f"no xz-compressed ELF found in {src}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
