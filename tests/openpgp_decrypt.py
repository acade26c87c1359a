"""Just enough OpenPGP to read what Delta Chat 2.65 sends, for tests: decrypt an armored
message with an unprotected v4 Curve25519 secret key (Delta Chat's key type) and return the
literal data. Handles PKESK v3 and v6 with ECDH (RFC 9580 11.5), SEIPD v1 (CFB + MDC) and v2
(AEAD OCB, RFC 9580 5.13.2), compressed data (zip, zlib). Signatures are not checked.
Uses only `cryptography`.

    python -m tests.openpgp_decrypt KEY.asc MESSAGE.eml > inner.eml
"""

from __future__ import annotations

import base64
import hashlib
import re
import sys
import zlib
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESOCB3
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

CURVE25519_OID = bytes.fromhex("2b060104019755010501")
HASHES = {8: hashlib.sha256, 9: hashlib.sha384, 10: hashlib.sha512}
AES_KEY_SIZES = {7: 16, 8: 24, 9: 32}


def dearmor(text: str | bytes) -> bytes:
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    m = re.search(r"-----BEGIN PGP [A-Z ]+-----\r?\n(.*?)-----END PGP", text, re.S)
    if not m:
        raise ValueError("no armored OpenPGP block")
    lines = m.group(1).replace("\r", "").split("\n")
    lines = lines[lines.index("") + 1 :]  # armor headers (often none) end with an empty line
    lines = [line for line in lines if line and not line.startswith("=")]
    return base64.b64decode("".join(lines))


def packets(data: bytes) -> list[tuple[int, bytes]]:
    """(tag, body) of each packet, old or new format, partial lengths joined."""
    out = []
    i = 0
    while i < len(data):
        ctb = data[i]
        i += 1
        if not ctb & 0x80:
            raise ValueError(f"bad packet header at {i - 1}")
        if ctb & 0x40:  # new format
            tag = ctb & 0x3F
            body = b""
            while True:
                first = data[i]
                if first < 192:
                    n, i = first, i + 1
                elif first < 224:
                    n, i = ((first - 192) << 8) + data[i + 1] + 192, i + 2
                elif first == 255:
                    n, i = int.from_bytes(data[i + 1 : i + 5], "big"), i + 5
                else:  # partial body length
                    n = 1 << (first & 0x1F)
                    body += data[i + 1 : i + 1 + n]
                    i += 1 + n
                    continue
                body += data[i : i + n]
                i += n
                break
        else:
            tag = (ctb >> 2) & 0x0F
            kind = ctb & 3
            if kind == 3:
                n = len(data) - i
            else:
                size = (1, 2, 4)[kind]
                n, i = int.from_bytes(data[i : i + size], "big"), i + size
            body = data[i : i + n]
            i += n
        out.append((tag, body))
    return out


def _mpi(data: bytes, i: int) -> tuple[bytes, int]:
    bits = int.from_bytes(data[i : i + 2], "big")
    n = (bits + 7) // 8
    return data[i + 2 : i + 2 + n], i + 2 + n


@dataclass
class EcdhKey:
    fingerprint: bytes
    public: bytes  # 32 bytes
    secret: bytes  # 32 bytes, native (little-endian) X25519 order
    kdf_hash: int
    kek_alg: int


def secret_keys(armored: str | bytes) -> list[EcdhKey]:
    """The unprotected v4 Curve25519 ECDH (sub)keys of a transferable secret key."""
    keys = []
    for tag, body in packets(dearmor(armored)):
        if tag not in (5, 7) or body[0] != 4 or body[5] != 18:
            continue
        i = 6
        oid_len = body[i]
        oid = body[i + 1 : i + 1 + oid_len]
        i += 1 + oid_len
        point, i = _mpi(body, i)
        kdf_len = body[i]
        kdf = body[i + 1 : i + 1 + kdf_len]
        i += 1 + kdf_len
        public_part = body[:i]
        if oid != CURVE25519_OID or point[0] != 0x40:
            continue
        if body[i] != 0:
            raise ValueError("secret key is passphrase-protected")
        scalar, _ = _mpi(body, i + 1)
        fingerprint = hashlib.sha1(
            b"\x99" + len(public_part).to_bytes(2, "big") + public_part
        ).digest()
        keys.append(
            EcdhKey(
                fingerprint=fingerprint,
                public=point[1:],
                secret=scalar.rjust(32, b"\0")[::-1],
                kdf_hash=kdf[1],
                kek_alg=kdf[2],
            )
        )
    return keys


def _ecdh_session_key(key: EcdhKey, ephemeral: bytes, wrapped: bytes) -> bytes:
    shared = X25519PrivateKey.from_private_bytes(key.secret).exchange(
        X25519PublicKey.from_public_bytes(ephemeral[1:])
    )
    param = (
        bytes([len(CURVE25519_OID)])
        + CURVE25519_OID
        + bytes([18, 3, 1, key.kdf_hash, key.kek_alg])
        + b"Anonymous Sender    "
        + key.fingerprint
    )
    digest = HASHES[key.kdf_hash](b"\0\0\0\1" + shared + param).digest()
    kek = digest[: AES_KEY_SIZES[key.kek_alg]]
    padded = aes_key_unwrap(kek, wrapped)
    return padded[: -padded[-1]]  # PKCS#5 padding


def _session_key(body: bytes, keys: list[EcdhKey]) -> tuple[int | None, bytes] | None:
    """(symmetric algorithm or None for v6, key) from a PKESK packet, if one of keys fits."""
    version = body[0]
    if version == 3:
        key_id, alg, i = body[1:9], body[9], 10
        candidates = [k for k in keys if k.fingerprint[-8:] == key_id or key_id == b"\0" * 8]
    elif version == 6:
        n = body[1]
        fpr = body[3 : 2 + n] if n else b""
        alg, i = body[2 + n], 3 + n
        candidates = [k for k in keys if not fpr or k.fingerprint == fpr]
    else:
        return None
    if alg != 18:
        return None
    ephemeral, i = _mpi(body, i)
    wrapped = body[i + 1 : i + 1 + body[i]]
    for key in candidates:
        try:
            m = _ecdh_session_key(key, ephemeral, wrapped)
        except Exception:
            continue
        if version == 3:
            sym, m = m[0], m[1:]
        else:
            sym = None
        session, checksum = m[:-2], m[-2:]
        if sum(session) % 65536 == int.from_bytes(checksum, "big"):
            return sym, session
    return None


def _seipd_v2(body: bytes, session: bytes) -> bytes:
    cipher, aead, chunk_octet, salt = body[1], body[2], body[3], body[4:36]
    if aead != 2 or cipher not in AES_KEY_SIZES:
        raise ValueError(f"unsupported SEIPDv2 cipher {cipher} / AEAD {aead}")
    header = bytes([0xD2, 2, cipher, aead, chunk_octet])
    key_len = AES_KEY_SIZES[cipher]
    okm = HKDF(hashes.SHA256(), key_len + 15 - 8, salt, header).derive(session)
    key, iv = okm[:key_len], okm[key_len:]
    ocb = AESOCB3(key)
    chunk = 1 << (chunk_octet + 6)
    data, final_tag = body[36:-16], body[-16:]
    out = b""
    index = 0
    for start in range(0, len(data), chunk + 16):
        piece = data[start : start + chunk + 16]
        out += ocb.decrypt(iv + index.to_bytes(8, "big"), piece, header)
        index += 1
    ocb.decrypt(iv + index.to_bytes(8, "big"), final_tag, header + len(out).to_bytes(8, "big"))
    return out


def _seipd_v1(body: bytes, sym: int, session: bytes) -> bytes:
    decryptor = Cipher(algorithms.AES(session), modes.CFB(b"\0" * 16)).decryptor()
    plain = decryptor.update(body[1:]) + decryptor.finalize()
    prefix, rest = plain[:18], plain[18:]
    if rest[-22:-20] != b"\xd3\x14":
        raise ValueError("no MDC")
    if hashlib.sha1(prefix + rest[:-20]).digest() != rest[-20:]:
        raise ValueError("MDC mismatch")
    return rest[:-22]


def _literal(data: bytes) -> bytes:
    for tag, body in packets(data):
        if tag == 8:  # compressed
            alg, payload = body[0], body[1:]
            if alg == 1:
                return _literal(zlib.decompress(payload, -15))
            if alg == 2:
                return _literal(zlib.decompress(payload))
            if alg == 0:
                return _literal(payload)
            raise ValueError(f"compression {alg} unsupported")
        if tag == 11:
            name_len = body[1]
            return body[2 + name_len + 4 :]
    raise ValueError("no literal data packet")


def decrypt(message: str | bytes, armored_keys: list[str | bytes]) -> bytes:
    """The literal data of an armored (or inside a MIME message) encrypted message."""
    keys = [k for armored in armored_keys for k in secret_keys(armored)]
    session = None
    for tag, body in packets(dearmor(message)):
        if tag == 1 and session is None:
            session = _session_key(body, keys)
        elif tag == 18:
            if session is None:
                raise ValueError("none of the keys decrypts this message")
            sym, key = session
            if body[0] == 2:
                return _literal(_seipd_v2(body, key))
            assert sym is not None
            return _literal(_seipd_v1(body, sym, key))
    raise ValueError("no encrypted data packet")


if __name__ == "__main__":
    key_path, message_path = sys.argv[1], sys.argv[2]
    with open(key_path, "rb") as k, open(message_path, "rb") as m:
        sys.stdout.buffer.write(decrypt(m.read(), [k.read()]))
