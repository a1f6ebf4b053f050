#!/usr/bin/env python3
"""Tampers one record of an auditlog data directory the way an attacker with write access to
the files would: one payload byte changed and the frame's CRC recomputed, so the segment still
parses and only the HMAC chain can tell (docs/FORMAT.md §4 frame, §7 payload).

usage: tamper.py DATA_DIR EVENT_ID OLD NEW
  Finds the record whose event_id is EVENT_ID in the newest NNN.seg of DATA_DIR and replaces
  the first occurrence of OLD in its payload by NEW (same length, printable ASCII, so the
  payload still decodes). The server must be stopped.
"""
import glob
import os
import re
import struct
import sys
import zlib

HEADER = 128
LEN_SALT = 0x5EA1F00D
FOOTER_LEN = 0xFFFFFFFF
MAX_PAYLOAD = 16 << 20


def die(msg):
    sys.exit(f"tamper.py: {msg}")


def varint(b, i):
    """bincode standard() varint: (value, next index)."""
    v = b[i]
    if v <= 250:
        return v, i + 1
    size = {0xFB: 2, 0xFC: 4, 0xFD: 8}.get(v)
    if size is None:
        die(f"unexpected varint marker {v:#x}")
    return int.from_bytes(b[i + 1:i + 1 + size], "little"), i + 1 + size


def main():
    if len(sys.argv) != 5:
        die(__doc__)
    data_dir, event_id, old, new = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode(), sys.argv[4].encode()
    if len(old) != len(new) or old == new or not all(0x20 <= c < 0x7F for c in new):
        die("OLD and NEW must differ, have the same length, NEW printable ASCII")
    segs = sorted(p for p in glob.glob(os.path.join(data_dir, "*.seg"))
                  if re.fullmatch(r"\d{20}\.seg", os.path.basename(p)))
    if not segs:
        die(f"no segment in {data_dir}")
    path = segs[-1]
    b = bytearray(open(path, "rb").read())
    off = HEADER
    while off + 8 <= len(b):
        if b[off:off + 8] == bytes(8):
            break  # the zero tail: end of the records
        n, check = struct.unpack_from("<II", b, off)
        if check != zlib.crc32(b[off:off + 4]) ^ LEN_SALT:
            die(f"{path}: bad length check at offset {off}")
        if n == FOOTER_LEN:
            break  # the footer of a sealed segment
        if n == 0 or n > MAX_PAYLOAD or off + 64 + n > len(b):
            die(f"{path}: bad frame length {n} at offset {off}")
        end = off + 60 + n
        (crc,) = struct.unpack_from("<I", b, end)
        if crc != zlib.crc32(b[off:end]):
            die(f"{path}: bad CRC at offset {off}")
        flags, seq = struct.unpack_from("<H", b, off + 8)[0], struct.unpack_from("<Q", b, off + 12)[0]
        payload = off + 28
        if b[payload] == 0x01 and not flags & 1:
            idlen, i = varint(b, payload + 1)
            if bytes(b[i:i + idlen]) == event_id:
                at = bytes(b[payload:payload + n]).find(old)
                if at < 0:
                    die(f"record {event_id.decode()} (seq {seq}) has no {old.decode()!r} in its payload")
                b[payload + at:payload + at + len(old)] = new
                struct.pack_into("<I", b, end, zlib.crc32(b[off:end]))
                with open(path, "r+b") as f:
                    f.write(b)
                    f.flush()
                    os.fsync(f.fileno())
                print(f"tampered record {event_id.decode()} (seq {seq}) in {os.path.basename(path)} "
                      f"at byte {payload + at}: {old.decode()!r} -> {new.decode()!r}, CRC recomputed")
                return
        off += 64 + n
    die(f"no record {event_id.decode()} in {path}")


if __name__ == "__main__":
    main()
