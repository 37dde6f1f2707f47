"""Receipts: each sealed run's audit head, signed with an ed25519 key of the smolcrew home.

The hash chain of smolcrew/audit.py has no key: whoever can rewrite a run's audit log and its journal together can
rebuild the chain and record the new head, and the chain still verifies. A receipt closes that gap for a third
party: when a run is sealed its head is signed, and the signature (with the key's fingerprint) is stored in the
run's `run_end` record. Someone holding only the public key then checks that the recorded head is the one the
home signed; a rewritten log has another head, which the signature does not cover.

The message signed is the UTF-8 of `smolcrew-audit-v1\\n<run_id>\\n<head>` (`message`): the version tag keeps a
signature from ever standing for anything else, the run id keeps one run's receipt off another run's log.

The key, made on first use (`Receipts`):
- `<home>/keys/audit-ed25519.pem`: the private key, PKCS#8 PEM, unencrypted, file mode 0600 in a folder of mode
  0700. It lives beside `<home>/runs`, the only folder the agents' tools write to, so an agent never touches it;
  anyone who can read it can sign, so back it up like any secret and keep it out of shared copies of the home.
- `<home>/keys/audit-ed25519.pub`: the public key, SubjectPublicKeyInfo PEM (what `smolcrew audit key` prints and
  `openssl pkey -pubin` reads). Its fingerprint, `key_id`, is the first 16 hex digits of SHA-256 over the raw
  32-byte public key.

What a receipt does not prove: that the run was honest before it was sealed, or anything once the private key is
known to whoever rewrote the log. Keep the public key, and where it matters the head, somewhere else.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from smolcrew.errors import AuditError

__all__ = ["PRIVATE_NAME", "PUBLIC_NAME", "VERSION", "Receipts", "check", "key_id", "load_public_key", "message"]

VERSION = "smolcrew-audit-v1"
PRIVATE_NAME = "audit-ed25519.pem"
PUBLIC_NAME = "audit-ed25519.pub"


def message(run_id: str, head: str) -> bytes:
    """The bytes signed for a run's head; one fixed layout, so any ed25519 tool can check a receipt."""
    return f"{VERSION}\n{run_id}\n{head}".encode()


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short fingerprint of `public_key`, stored beside each signature so a reader knows which key signed."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    """`public_key` as SubjectPublicKeyInfo PEM: the form kept elsewhere and passed to `--public-key`."""
    pem = public_key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem.decode("ascii")


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The ed25519 public key in the PEM file `path`. Raises `AuditError` when it cannot be read or is not one."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read the public key {path}: {exc}") from exc
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        why = "export one with `smolcrew audit key > audit.pub`"
        raise AuditError(f"{path} is not a PEM public key ({type(exc).__name__}); {why}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AuditError(f"{path} holds a {type(key).__name__}, not an ed25519 public key (see `smolcrew audit key`)")
    return key


def check(public_key: Ed25519PublicKey, run_id: str, end: Mapping[str, Any] | None) -> str | None:
    """Why the receipt in a run's `run_end` payload `end` does not hold under `public_key`; None when it holds.

    A failed check is an answer, not an error (like `AuditLog.verify`): the caller reports it."""
    if end is None:
        return (
            f"the journal has no run_end record with an audit head for run {run_id}, so there is no signed head to "
            "check (the run is still going, it crashed, or the record was removed)"
        )
    head, signature = end.get("audit_head"), end.get("audit_signature")
    if not isinstance(signature, str) or not signature:
        return (
            "the run_end record carries no audit signature: the run was sealed before receipts existed, or the "
            "signature was removed"
        )
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, message(run_id, str(head)))
    except (binascii.Error, ValueError, InvalidSignature):
        signer, given = end.get("audit_key_id"), key_id(public_key)
        if isinstance(signer, str) and signer != given:
            return (
                f"the head was signed with key {signer}, not with the key given ({given}): check it with the public "
                "key of the home that ran it"
            )
        return (
            f"the audit signature does not match the recorded head {head} under key {given}: the audit log and the "
            "journal were rewritten after the run was sealed, or the signature was changed"
        )
    return None


class Receipts:
    """The signing key of one smolcrew home, in `folder` (`<home>/keys`), loaded or made on first use.

    Thread-safe; of two processes that make the key at once, one key wins and both use it (hard link, no
    overwrite), so no run is ever signed with a key that is then lost."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self._lock = threading.Lock()
        self._key: Ed25519PrivateKey | None = None

    def __repr__(self) -> str:
        return f"Receipts({str(self.folder)!r})"

    @property
    def private_path(self) -> Path:
        return self.folder / PRIVATE_NAME

    @property
    def public_path(self) -> Path:
        return self.folder / PUBLIC_NAME

    def exists(self) -> bool:
        """Whether the home has a signing key yet (checking a receipt should not make one)."""
        return self.private_path.is_file()

    def signing_key(self) -> Ed25519PrivateKey:
        """The private key, read from disk or made there first. Raises `AuditError` when it cannot be."""
        with self._lock:
            if self._key is None:
                try:
                    self._key = self._read() if self.exists() else self._create()
                    self._write_public(self._key.public_key())
                except OSError as exc:
                    fix = "fix the folder's permissions or free disk space"
                    why = f"the audit signing key in {self.folder} cannot be made or read ({exc})"
                    raise AuditError(f"{why}; {fix}") from exc
            return self._key

    def public_key(self) -> Ed25519PublicKey:
        return self.signing_key().public_key()

    def public_pem(self) -> str:
        return public_pem(self.public_key())

    def sign(self, run_id: str, head: str) -> str:
        """The base64 ed25519 signature of `message(run_id, head)`."""
        return base64.b64encode(self.signing_key().sign(message(run_id, head))).decode("ascii")

    def stamp(self, run_id: str, head: str | None) -> dict[str, str]:
        """The receipt fields of a `run_end` payload (`audit_signature`, `audit_key_id`); none for a run without
        a head (an empty log, which has nothing to vouch for)."""
        if head is None:
            return {}
        return {"audit_signature": self.sign(run_id, head), "audit_key_id": key_id(self.public_key())}

    def _read(self) -> Ed25519PrivateKey:
        fix = "move it aside to make a new one (runs signed with the old key then verify only with its public key)"
        try:
            key = serialization.load_pem_private_key(self.private_path.read_bytes(), password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            why = f"{type(exc).__name__}: {str(exc)[:120]}"
            raise AuditError(f"{self.private_path} is not an unencrypted PEM private key ({why}); {fix}") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise AuditError(f"{self.private_path} holds a {type(key).__name__}, not an ed25519 key; {fix}")
        return key

    def _create(self) -> Ed25519PrivateKey:
        self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)  # mkdir's mode passes through the umask, and the folder may be older
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        temporary = self.folder / f".{PRIVATE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
        _write_new(temporary, pem, 0o600)
        try:
            os.link(temporary, self.private_path)  # never replaces: a key made meanwhile by another process wins
        except FileExistsError:
            pass
        finally:
            temporary.unlink(missing_ok=True)
        if os.name == "posix":  # the key's name must survive a crash: runs signed with it are on disk
            folder = os.open(self.folder, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
        return self._read()

    def _write_public(self, public_key: Ed25519PublicKey) -> None:
        """Keep `audit-ed25519.pub` equal to the private key's public half (made, or mended when it differs)."""
        pem = public_pem(public_key).encode("ascii")
        if self.public_path.is_file() and self.public_path.read_bytes() == pem:
            return
        temporary = self.folder / f".{PUBLIC_NAME}.{os.getpid()}.{threading.get_ident()}.tmp"
        _write_new(temporary, pem, 0o644)
        os.replace(temporary, self.public_path)


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Write `data` to the new file `path` with `mode` from the start (never briefly readable by others), synced."""
    path.unlink(missing_ok=True)  # left by a crash of a process with the same id: the name holds pid and thread
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        os.chmod(path, mode)  # the umask may have taken bits the mode asked for
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
