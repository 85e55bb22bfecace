#!/usr/bin/env python3
"""Decodes a meshtap remote-write body independently of meshtap's Rust code.

Usage: decode_write_request.py <body-file>

Compiles tests/proto/remote.proto (declared from Prometheus' published schema) with
grpcio-tools' protoc, snappy-block-decompresses the body (cramjam, or python-snappy), decodes it
with the protobuf package and prints JSON: each series' labels as [name, value] pairs in wire
order and its samples as [value bits as 16 hex digits, timestamp], the metadata, and the number
of unknown fields found. Exit status 3 means Python packages are missing.
"""

import importlib
import json
import os
import struct
import sys
import tempfile

MISSING_EXIT = 3


def require_packages():
    missing = []
    for module in ("grpc_tools.protoc", "google.protobuf"):
        try:
            importlib.import_module(module)
        except ImportError:
            missing.append(module)
    try:
        import cramjam  # noqa: F401
    except ImportError:
        try:
            import snappy  # noqa: F401
        except ImportError:
            missing.append("cramjam (or python-snappy)")
    if missing:
        print("missing Python modules: " + ", ".join(missing), file=sys.stderr)
        sys.exit(MISSING_EXIT)


def snappy_block_decompress(data):
    try:
        import cramjam
        return bytes(cramjam.snappy.decompress_raw(data))
    except ImportError:
        import snappy
        return snappy.uncompress(data)


def compile_proto(out_dir):
    from grpc_tools import protoc

    proto_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "proto")
    status = protoc.main([
        "protoc",
        "-I" + proto_dir,
        "--python_out=" + out_dir,
        os.path.join(proto_dir, "remote.proto"),
    ])
    if status != 0:
        raise SystemExit("protoc failed on remote.proto with status %d" % status)
    sys.path.insert(0, out_dir)
    return importlib.import_module("remote_pb2")


def is_repeated(descriptor):
    # protobuf >= 6 has `is_repeated`; older releases only `label`.
    if hasattr(descriptor, "is_repeated"):
        return descriptor.is_repeated
    return descriptor.label == descriptor.LABEL_REPEATED


def count_unknown_fields(message):
    from google.protobuf import unknown_fields

    count = len(unknown_fields.UnknownFieldSet(message))
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        children = value if is_repeated(descriptor) else [value]
        for child in children:
            count += count_unknown_fields(child)
    return count


def value_bits(value):
    """The IEEE 754 bits of a double, so NaN payloads (the stale marker) survive JSON."""
    return "%016x" % struct.unpack("<Q", struct.pack("<d", value))[0]


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    require_packages()
    with open(sys.argv[1], "rb") as body_file:
        body = body_file.read()
    raw = snappy_block_decompress(body)
    with tempfile.TemporaryDirectory() as out_dir:
        remote_pb2 = compile_proto(out_dir)
        request = remote_pb2.WriteRequest()
        request.ParseFromString(raw)
        result = {
            "raw_bytes": len(raw),
            "unknown_fields": count_unknown_fields(request),
            "timeseries": [
                {
                    "labels": [[label.name, label.value] for label in series.labels],
                    "samples": [[value_bits(s.value), s.timestamp] for s in series.samples],
                }
                for series in request.timeseries
            ],
            "metadata": [
                [m.type, m.metric_family_name, m.help, m.unit] for m in request.metadata
            ],
        }
    json.dump(result, sys.stdout, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
