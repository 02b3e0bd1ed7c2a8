#!/usr/bin/env python3
"""Writes the controller image as an OCI image layout, without a container engine.

One layer holds what the Dockerfile's final stage holds: /siskin, the CA bundle,
and passwd/group entries for the non-root user 65532. Every tar entry has a fixed
owner and time and the gzip header no name or time, so the same binary gives the
same digest. The manifest is added to index.json under the tag (replacing the
tag's earlier manifest); older blobs stay, so pods pinned to an older digest can
still be served from the layout. Prints the manifest digest.
"""

import argparse
import datetime
import gzip
import hashlib
import io
import json
import os
import tarfile

UID = 65532
PASSWD = b"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"
GROUP = b"root:x:0:\nnonroot:x:65532:\n"
IMAGE_NAME = "siskin/controller"


def layer_tar(binary, ca_bundle, epoch):
    """The uncompressed layer: directories first, then files, in a fixed order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:

        def add(name, data=None, mode=0o644, owner=0, kind=tarfile.REGTYPE):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = kind, mode, epoch
            info.uid = info.gid = owner
            info.uname = info.gname = ""
            if data is None:
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))

        for d in ["etc", "etc/ssl", "etc/ssl/certs", "var", "var/run", "var/run/secrets"]:
            add(d, mode=0o755, kind=tarfile.DIRTYPE)
        # Where a kubelet mounts the ServiceAccount token; present so a runtime
        # with a read-only root can mount onto it.
        add("var/run/secrets/kubernetes.io", mode=0o755, kind=tarfile.DIRTYPE)
        add("var/run/secrets/kubernetes.io/serviceaccount", mode=0o755, kind=tarfile.DIRTYPE)
        add("tmp", mode=0o1777, kind=tarfile.DIRTYPE)
        add("home", mode=0o755, kind=tarfile.DIRTYPE)
        add("home/nonroot", mode=0o700, owner=UID, kind=tarfile.DIRTYPE)
        add("etc/passwd", PASSWD)
        add("etc/group", GROUP)
        with open(ca_bundle, "rb") as f:
            add("etc/ssl/certs/ca-certificates.crt", f.read())
        with open(binary, "rb") as f:
            add("siskin", f.read(), mode=0o755)
    return buf.getvalue()


def gzipped(data):
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def put_blob(out, data):
    d = digest(data)
    path = os.path.join(out, "blobs", "sha256", d.split(":", 1)[1])
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return {"digest": d, "size": len(data)}


def canonical(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--binary", required=True)
    p.add_argument("--ca-bundle", required=True)
    p.add_argument("--tag", required=True)
    p.add_argument("--epoch", type=int, default=0)
    p.add_argument("--revision", default="unknown")
    a = p.parse_args()

    os.makedirs(os.path.join(a.out, "blobs", "sha256"), exist_ok=True)
    with open(os.path.join(a.out, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)

    tar = layer_tar(a.binary, a.ca_bundle, a.epoch)
    layer = put_blob(a.out, gzipped(tar))
    created = datetime.datetime.fromtimestamp(a.epoch, datetime.timezone.utc)
    labels = {
        "org.opencontainers.image.title": "siskin",
        "org.opencontainers.image.version": a.tag,
        "org.opencontainers.image.revision": a.revision,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "config": {
            "User": f"{UID}:{UID}",
            "Entrypoint": ["/siskin"],
            "Cmd": ["controller"],
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt",
            ],
            "WorkingDir": "/",
            "ExposedPorts": {"8080/tcp": {}},
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
        "history": [{"created": created.strftime("%Y-%m-%dT%H:%M:%SZ"), "created_by": "image/build.sh"}],
    }
    config_desc = put_blob(a.out, canonical(config))
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", **layer}],
        "annotations": labels,
    }
    manifest_desc = put_blob(a.out, canonical(manifest))

    index_path = os.path.join(a.out, "index.json")
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}
    if os.path.exists(index_path):
        with open(index_path) as f:
            index = json.load(f)
    ref = "org.opencontainers.image.ref.name"
    index["manifests"] = [m for m in index.get("manifests", []) if m.get("annotations", {}).get(ref) != a.tag]
    index["manifests"].append(
        {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            **manifest_desc,
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {ref: a.tag, "io.siskin.image.name": IMAGE_NAME},
        }
    )
    tmp = index_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(index, f, indent=2)
    os.replace(tmp, index_path)
    with open(os.path.join(a.out, "latest"), "w") as f:
        f.write(manifest_desc["digest"] + "\n")
    print(f"{IMAGE_NAME}@{manifest_desc['digest']}")


if __name__ == "__main__":
    main()
