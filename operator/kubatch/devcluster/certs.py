"""Certificates and keys for the local control plane, made with the openssl command line tool.

One self-signed CA signs the API server's serving certificate, the admin client certificate and
the webhook's serving certificate; one RSA key signs and verifies service-account tokens.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

CA_DAYS = "3650"
#: The API server's addresses: loopback, the host bridge pods reach (`netstack.HOST_IP`) and the
#: `kubernetes` Service IP.
APISERVER_IPS = "IP:127.0.0.1,IP:10.244.255.1,IP:10.96.0.1"
CONSTRAINTS = "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, text=True)


def _issue(pki: Path, name: str, subject: str, extensions: str) -> tuple[Path, Path]:
    """A key and a certificate signed by the local CA, with the given X.509 v3 extensions."""
    ext = pki / f"{name}.ext"
    ext.write_text(CONSTRAINTS + extensions)
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.csr",
        "-subj",
        subject,
        cwd=pki,
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        f"{name}.crt",
        "-days",
        CA_DAYS,
        "-extfile",
        ext.name,
        cwd=pki,
    )
    return pki / f"{name}.crt", pki / f"{name}.key"


def ensure_pki(pki: Path) -> None:
    """Create the CA, serving, admin and service-account material in `pki` unless present."""
    pki.mkdir(parents=True, exist_ok=True)
    if (pki / "admin.crt").exists():
        if APISERVER_IPS not in (pki / "apiserver.ext").read_text():
            _issue_apiserver(pki)  # made by an older version, without the addresses pods use
        return
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        CA_DAYS,
        "-subj",
        "/CN=kubatch-local-ca",
        cwd=pki,
    )
    _issue_apiserver(pki)
    issue_client_cert(pki, "admin", "/O=system:masters/CN=kubatch-admin")
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)


def _issue_apiserver(pki: Path) -> None:
    _issue(
        pki,
        "apiserver",
        "/CN=kube-apiserver",
        "extendedKeyUsage=serverAuth\n"
        "subjectAltName=DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        f"DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,{APISERVER_IPS}\n",
    )


def issue_node_cert(pki: Path, node: str, ip: str) -> tuple[Path, Path]:
    """A kubelet's certificate (client of the API server as `system:node:<node>`, and server of its
    own API at `ip`), issued once."""
    name = f"node-{node}"
    if (pki / f"{name}.crt").exists():
        return pki / f"{name}.crt", pki / f"{name}.key"
    return _issue(
        pki,
        name,
        f"/O=system:nodes/CN=system:node:{node}",
        f"extendedKeyUsage=clientAuth,serverAuth\nsubjectAltName=IP:{ip},DNS:{node}\n",
    )


def issue_client_cert(pki: Path, name: str, subject: str) -> tuple[Path, Path]:
    """A client certificate (`subject` such as `/O=group/CN=user`) signed by the local CA."""
    return _issue(pki, name, subject, "extendedKeyUsage=clientAuth\n")


def sign_serving_cert(pki: Path, name: str, hosts: list[str]) -> tuple[Path, Path]:
    """Issue a serving certificate for `hosts` (IPs or DNS names) signed by the local CA."""
    sans = ",".join(f"IP:{h}" if h.replace(".", "").isdigit() else f"DNS:{h}" for h in hosts)
    return _issue(pki, name, f"/CN={name}", f"extendedKeyUsage=serverAuth\nsubjectAltName={sans}\n")


def serving_cert_dir(pki: Path, name: str, hosts: list[str], dest: Path) -> Path:
    """A directory holding `tls.crt`, `tls.key` (issued by `sign_serving_cert` unless present) and the
    local CA as `ca.crt`, the layout of a Kubernetes TLS Secret mounted as files."""
    dest.mkdir(parents=True, exist_ok=True)
    crt, key = dest / "tls.crt", dest / "tls.key"
    if not (crt.exists() and key.exists()):
        issued_crt, issued_key = sign_serving_cert(pki, name, hosts)
        key.write_bytes(issued_key.read_bytes())
        key.chmod(0o600)
        crt.write_bytes(issued_crt.read_bytes())
    (dest / "ca.crt").write_bytes((pki / "ca.crt").read_bytes())
    return dest
