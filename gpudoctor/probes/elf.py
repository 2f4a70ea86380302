"""Reads what an ELF file needs in order to run: its loader (PT_INTERP) and its libraries (DT_NEEDED). Pure.

gpudoctor's probe image is made of the host's own files (probes/image.py), so it must know which libraries a
shell, a tool or the injected NVIDIA binaries load. `ldd` would run the binary's loader, and under `--root` the
tree's programs are never run: the answer is read from the file itself, as the loader reads it
(System V gABI, "Program Header" and "Dynamic Section": https://refspecs.linuxfoundation.org/elf/gabi4+/ch5.dynamic.html).
"""

from __future__ import annotations

import struct

from ..frozen import frozen

PT_LOAD, PT_DYNAMIC, PT_INTERP = 1, 2, 3
DT_NULL, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_RPATH, DT_RUNPATH = 0, 1, 5, 10, 15, 29
MAX_HEADERS = 256  # program headers; real binaries have about a dozen
MAX_DYNAMIC = 4096  # dynamic entries; real libraries have under a hundred


class NotElf(ValueError):
    """The bytes are not an ELF file this reader understands."""


@frozen
class ElfInfo:
    bits: int  # 32 or 64
    little_endian: bool
    machine: int  # e_machine: 62 x86-64, 183 AArch64
    interp: str | None  # the loader a dynamic executable names; None for static files and most libraries
    needed: tuple[str, ...]  # DT_NEEDED sonames, in order
    runpath: tuple[str, ...]  # DT_RUNPATH (or the older DT_RPATH) directories, unexpanded ($ORIGIN stays)

    @property
    def static(self) -> bool:
        return self.interp is None and not self.needed

    def same_abi(self, other: "ElfInfo") -> bool:
        """Whether one could load the other: a 64-bit x86 tool never loads a 32-bit or an Arm library."""
        return (self.bits, self.little_endian, self.machine) == (other.bits, other.little_endian, other.machine)


def read_elf(data: bytes) -> ElfInfo:
    """The loader and libraries `data` (a whole ELF file) needs. Raises NotElf for anything else."""
    if len(data) < 52 or data[:4] != b"\x7fELF":
        raise NotElf("not an ELF file")
    bits = {1: 32, 2: 64}.get(data[4])
    little = {1: True, 2: False}.get(data[5])
    if bits is None or little is None:
        raise NotElf("unknown ELF class or byte order")
    end = "<" if little else ">"
    try:
        if bits == 64:
            machine, = struct.unpack_from(end + "H", data, 18)
            phoff, = struct.unpack_from(end + "Q", data, 32)
            phentsize, phnum = struct.unpack_from(end + "HH", data, 54)
            ph_fmt, dyn_fmt = end + "IIQQQQQQ", end + "qQ"
        else:
            machine, = struct.unpack_from(end + "H", data, 18)
            phoff, = struct.unpack_from(end + "I", data, 28)
            phentsize, phnum = struct.unpack_from(end + "HH", data, 42)
            ph_fmt, dyn_fmt = end + "IIIIIIII", end + "iI"
        if phnum > MAX_HEADERS or phentsize < struct.calcsize(ph_fmt):
            raise NotElf("implausible program header table")
        segments = []
        for i in range(phnum):
            fields = struct.unpack_from(ph_fmt, data, phoff + i * phentsize)
            if bits == 64:
                p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = fields[:6]
            else:
                p_type, p_offset, p_vaddr, _paddr, p_filesz = fields[:5]
            segments.append((p_type, p_offset, p_vaddr, p_filesz))
        interp = None
        for p_type, off, _vaddr, size in segments:
            if p_type == PT_INTERP:
                interp = _cstr(data, off, off + size)
        needed: list[int] = []
        paths: list[int] = []
        strtab = strsz = None
        dyn = next((s for s in segments if s[0] == PT_DYNAMIC), None)
        if dyn is not None:
            entry = struct.calcsize(dyn_fmt)
            for i in range(min(dyn[3] // entry, MAX_DYNAMIC)):
                tag, val = struct.unpack_from(dyn_fmt, data, dyn[1] + i * entry)
                if tag == DT_NULL:
                    break
                if tag == DT_NEEDED:
                    needed.append(val)
                elif tag == DT_STRTAB:
                    strtab = val
                elif tag == DT_STRSZ:
                    strsz = val
                elif tag in (DT_RUNPATH, DT_RPATH):
                    paths.append(val)
    except struct.error:
        raise NotElf("truncated ELF file") from None
    names: tuple[str, ...] = ()
    runpath: tuple[str, ...] = ()
    if (needed or paths) and strtab is not None:
        # DT_STRTAB is an address: the file offset is where the PT_LOAD segment holding it starts.
        base = next((off + strtab - vaddr for t, off, vaddr, size in segments
                     if t == PT_LOAD and vaddr <= strtab < vaddr + size), None)
        if base is None:
            raise NotElf("the dynamic string table is outside every loaded segment")
        limit = base + strsz if strsz else len(data)
        names = tuple(_cstr(data, base + v, limit) for v in needed)
        runpath = tuple(d for v in paths for d in _cstr(data, base + v, limit).split(":") if d)
    return ElfInfo(bits, little, machine, interp, names, runpath)


def _cstr(data: bytes, start: int, limit: int) -> str:
    end = data.find(b"\0", start, min(limit, len(data)))
    if start >= len(data) or end < 0:
        raise NotElf("an ELF string runs past its table")
    return data[start:end].decode("utf-8", "replace")
