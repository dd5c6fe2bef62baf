#!/usr/bin/env python3
"""Generates the benchmark's fixture modules as a GOPROXY tree (Python 3.11 standard library only).

Each module `bench.example/NAME` gets, per version, `.info`, `.mod` and a valid module zip whose
entries are `{module}@{version}/go.mod` plus incompressible data files (stored, not deflated),
so the zip's size is about the requested size. The zip's go.mod equals `.mod`, and the total
uncompressed size stays under golang.org/x/mod/zip's 500 MiB limit.

The data is pseudo-random from a fixed seed (the same bytes on every machine) and differs per
version and per file, so no two zips are alike.
"""

import hashlib
import json
import os
import random
import sys
import zipfile

MiB = 1 << 20
FILE_PIECE = 16 * MiB  # largest data file inside a zip
MAX_UNCOMPRESSED = 500 * MiB
TIME = "2024-06-01T12:00:00Z"


def _pool(seed):
    """32 MiB of seeded random bytes; data files are slices of it at varying offsets."""
    return random.Random(seed).randbytes(2 * FILE_PIECE)


def module_go_mod(module):
    return f"module {module}\n\ngo 1.21\n".encode()


def write_version(root, module, version, data_bytes, pool, salt):
    """Writes .info, .mod and .zip of module@version; returns {suffix: {size, sha256}}."""
    vdir = os.path.join(root, module, "@v")
    os.makedirs(vdir, exist_ok=True)
    go_mod = module_go_mod(module)
    info = json.dumps({"Version": version, "Time": TIME}).encode()
    prefix = f"{module}@{version}/"
    assert data_bytes + len(go_mod) <= MAX_UNCOMPRESSED, "over the 500 MiB uncompressed limit"
    zip_path = os.path.join(vdir, f"{version}.zip")
    with zipfile.ZipFile(zip_path, "w", compression=zipfile.ZIP_STORED, allowZip64=False) as zf:
        zf.writestr(prefix + "go.mod", go_mod)
        zf.writestr(prefix + "bench.go", f"package bench\n\n// Version is {version}.\nconst Version = {version!r}\n".replace("'", '"'))
        left, i = data_bytes, 0
        while left > 0:
            n = min(left, FILE_PIECE)
            off = (salt * 7919 + i * 104729) % FILE_PIECE
            zf.writestr(prefix + f"data/blob{i:03d}.bin", pool[off : off + n])
            left -= n
            i += 1
    with open(os.path.join(vdir, f"{version}.info"), "wb") as f:
        f.write(info)
    with open(os.path.join(vdir, f"{version}.mod"), "wb") as f:
        f.write(go_mod)
    out = {}
    for suffix in ("info", "mod", "zip"):
        p = os.path.join(vdir, f"{version}.{suffix}")
        h = hashlib.sha256()
        with open(p, "rb") as f:
            while True:
                b = f.read(4 * MiB)
                if not b:
                    break
                h.update(b)
        out[suffix] = {"size": os.path.getsize(p), "sha256": h.hexdigest(),
                       "url": f"/{module}/@v/{version}.{suffix}"}
    return out


def build(root, modules, seed=20240601):
    """modules: {name: {"data_bytes": N, "versions": [..]}}. Returns the manifest."""
    pool = _pool(seed)
    manifest = {}
    salt = 0
    for name, spec in modules.items():
        module = f"bench.example/{name}"
        versions = spec["versions"]
        for v in versions:
            salt += 1
            manifest[f"{module}@{v}"] = write_version(root, module, v, spec["data_bytes"], pool, salt)
        with open(os.path.join(root, module, "@v", "list"), "w") as f:
            f.write("".join(v + "\n" for v in versions))
    with open(os.path.join(root, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


if __name__ == "__main__":
    # Standalone: bench/fixtures.py DIR  (a tiny tree, for a look)
    build(sys.argv[1], {"info": {"data_bytes": 1024, "versions": ["v1.0.0"]},
                        "z1m": {"data_bytes": MiB, "versions": ["v1.0.0"]}})
