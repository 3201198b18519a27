# SPDX-License-Identifier: MIT
"""The test PKI: a CA and server certificates made with the openssl CLI.

Shared by every test server (``harness.dovecot``, ``harness.nsserver``).
"""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path
from typing import Sequence

OPENSSL = "openssl"

#: The address each TLS variant listens on (Dovecot picks certs by local IP).
TLS_VARIANT_ADDRESS = {
    "": "127.0.0.1",
    "wrong_name": "127.0.0.2",
    "expired": "127.0.0.3",
    "self_signed": "127.0.0.4",
}


class PKIError(RuntimeError):
    """openssl failed; the message carries its stderr."""


class TestPKI:
    """A test CA and server certificates, made with the openssl CLI.

    Files (all PEM) live in ``directory``:

    - ``ca.pem``                          the test CA (trust anchor for tests)
    - ``server.pem`` / ``server.key``     valid: localhost, 127.0.0.1
    - ``wrong_name.pem`` / ``.key``       issued by the CA for wrong.example only
    - ``expired.pem`` / ``.key``          issued by the CA, valid 2020-01-01..02
    - ``self_signed.pem`` / ``.key``      self-signed for localhost (CA not involved)

    ``variants=False`` makes only the CA and the valid certificate.

    EC P-256 keys keep generation to a few tens of milliseconds.
    """

    __test__ = False  # not a unittest class despite the name

    def __init__(self, directory: Path, variants: bool = True) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_file = self.dir / "ca.pem"
        self._ca_key = self.dir / "ca.key"
        self._make_ca()
        self._issue("server", "localhost", ["DNS:localhost", "IP:127.0.0.1"])
        if variants:
            self._variants()

    def _variants(self) -> None:
        self._issue("wrong_name", "wrong.example", ["DNS:wrong.example"])
        self._issue(
            "expired",
            "localhost",
            ["DNS:localhost", "IP:127.0.0.1", f"IP:{TLS_VARIANT_ADDRESS['expired']}"],
            dates=("20200101000000Z", "20200102000000Z"),
        )
        self._self_signed(
            "self_signed", "localhost", ["DNS:localhost", "IP:127.0.0.1", f"IP:{TLS_VARIANT_ADDRESS['self_signed']}"]
        )

    def cert(self, kind: str = "server") -> Path:
        """Path of the certificate ``kind`` (server, wrong_name, expired, self_signed)."""
        return self.dir / f"{kind}.pem"

    def key(self, kind: str = "server") -> Path:
        return self.dir / f"{kind}.key"

    # -- generation ------------------------------------------------------
    def _openssl(self, *args: str) -> None:
        proc = subprocess.run([OPENSSL, *args], cwd=self.dir, capture_output=True, text=True)
        if proc.returncode != 0:
            raise PKIError(f"openssl {' '.join(args)} failed:\n{proc.stderr}")

    def _newkey(self, name: str) -> Path:
        key = self.dir / f"{name}.key"
        self._openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(key))
        return key

    def _make_ca(self) -> None:
        self._newkey("ca")
        self._openssl(
            "req", "-x509", "-new", "-key", str(self._ca_key), "-out", str(self.ca_file),
            "-days", "3650", "-subj", "/CN=imapsweep test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        )  # fmt: skip

    def _ext_file(self, name: str, sans: Sequence[str]) -> Path:
        ext = self.dir / f"{name}.ext"
        ext.write_text(
            "[v3]\n"
            "basicConstraints = critical,CA:FALSE\n"
            "keyUsage = critical,digitalSignature,keyEncipherment\n"
            "extendedKeyUsage = serverAuth\n"
            f"subjectAltName = {','.join(sans)}\n"
        )
        return ext

    def _issue(self, name: str, cn: str, sans: Sequence[str], dates: tuple[str, str] | None = None) -> None:
        key = self._newkey(name)
        csr = self.dir / f"{name}.csr"
        self._openssl("req", "-new", "-key", str(key), "-out", str(csr), "-subj", f"/CN={cn}")
        ext = self._ext_file(name, sans)
        out = self.cert(name)
        if dates is None:
            self._openssl(
                "x509", "-req", "-in", str(csr), "-CA", str(self.ca_file), "-CAkey", str(self._ca_key),
                "-CAcreateserial", "-days", "3650", "-extfile", str(ext), "-extensions", "v3", "-out", str(out),
            )  # fmt: skip
        else:
            # `openssl x509` cannot back-date; `openssl ca` can, given a tiny database.
            self._openssl(
                "ca", "-batch", "-config", str(self._ca_config()), "-in", str(csr), "-out", str(out),
                "-startdate", dates[0], "-enddate", dates[1], "-extfile", str(ext), "-extensions", "v3", "-notext",
            )  # fmt: skip

    def _ca_config(self) -> Path:
        db = self.dir / "cadb"
        db.mkdir(exist_ok=True)
        (db / "index.txt").touch()
        (db / "serial").write_text("1000\n")
        conf = self.dir / "ca.cnf"
        conf.write_text(
            textwrap.dedent(
                f"""\
                [ca]
                default_ca = test_ca
                [test_ca]
                database = {db}/index.txt
                serial = {db}/serial
                new_certs_dir = {db}
                certificate = {self.ca_file}
                private_key = {self._ca_key}
                default_md = sha256
                policy = anything
                unique_subject = no
                [anything]
                commonName = supplied
                """
            )
        )
        return conf

    def _self_signed(self, name: str, cn: str, sans: Sequence[str]) -> None:
        key = self._newkey(name)
        self._openssl(
            "req", "-x509", "-new", "-key", str(key), "-out", str(self.cert(name)), "-days", "3650",
            "-subj", f"/CN={cn}", "-addext", f"subjectAltName={','.join(sans)}",
        )  # fmt: skip


__all__ = ["OPENSSL", "PKIError", "TLS_VARIANT_ADDRESS", "TestPKI"]
