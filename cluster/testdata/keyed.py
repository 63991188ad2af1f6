#!/usr/bin/env python3
# Independent implementation of docs/protocol.md §9.1 (signed messages),
# written from the document alone; used by interop_test.go.
#   keyed.py sign KEYHEX INC SEQ "BODY"   prints the signed datagram
#   keyed.py check KEYHEX < datagrams    prints ok or bad per line
import hashlib, hmac, sys

PLAIN = {b"ANNOUNCE": 8, b"HEARTBEAT": 5, b"LEAVE": 2, b"PROBE": 3}  # §2 field counts


def fingerprint(key):  # first 4 bytes of SHA-256(key), lowercase hex
    return hashlib.sha256(key).hexdigest()[:8].encode()


def tag(key, s):  # first 16 bytes of HMAC-SHA256(key, S), lowercase hex
    return hmac.new(key, s, hashlib.sha256).hexdigest()[:32].encode()


def uint(f):  # §2 uint: no sign, no leading zero; 64-bit range (§9.1)
    if not f.isdigit() or (f[:1] == b"0" and f != b"0") or int(f) >= 2**64:
        raise ValueError(f)
    return int(f)


def check(key, line):
    line = line[:-1] if line.endswith(b"\n") else line  # one newline only
    f = line.split(b" ")
    if any(c < 0x20 or c > 0x7E for c in line) or b"" in f:
        return False
    if len(f) != PLAIN.get(f[0], -9) + 4 or f[-2] != fingerprint(key):
        return False
    try:
        inc, seq = uint(f[-4]), uint(f[-3])
    except ValueError:
        return False
    signed = line.rsplit(b" ", 1)[0]  # S: verb .. key-id, no newline
    return inc >= 1 and hmac.compare_digest(tag(key, signed), f[-1])


def sign(key, inc, seq, body):
    s = b"%s %d %d %s" % (body, inc, seq, fingerprint(key))
    return s + b" " + tag(key, s) + b"\n"


def main(cmd, keyhex, *rest):
    key = bytes.fromhex(keyhex)
    assert len(key) == 32, "key must be 64 hex digits"
    if cmd == "sign":
        inc, seq, body = uint(rest[0].encode()), uint(rest[1].encode()), rest[2]
        sys.stdout.buffer.write(sign(key, inc, seq, body.encode()))
    elif cmd == "check":
        for line in sys.stdin.buffer:
            print("ok" if check(key, line) else "bad", flush=True)
    else:
        sys.exit("usage: keyed.py sign KEYHEX INC SEQ BODY | check KEYHEX")


if __name__ == "__main__":
    main(*sys.argv[1:])
