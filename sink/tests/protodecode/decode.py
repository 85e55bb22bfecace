#!/usr/bin/env python3
"""Decodes a body meshtap sends, independently of meshtap's Rust code.

Usage: decode.py remote-write|loki-push <body-file>

Compiles the schema beside this script (remote.proto, push.proto: declared from Prometheus' and
Loki's published field numbers) with grpcio-tools' protoc, snappy-block-decompresses the body
(cramjam, or python-snappy), decodes it with the protobuf package and prints JSON, always with
the number of unknown fields found:
- remote-write: each series' labels as [name, value] pairs in wire order and its samples as
  [value bits as 16 hex digits, timestamp], and the metadata;
- loki-push: the streams with their label strings parsed back into pairs, and their entries.
Exit status 3 means Python packages are missing.
"""

import importlib
import json
import os
import struct
import sys
import tempfile

MISSING_EXIT = 3
HERE = os.path.dirname(os.path.abspath(__file__))


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


def compile_proto(out_dir, proto_file, module):
    """Compiles HERE/proto_file (well-known types importable) and imports it as `module`."""
    from grpc_tools import protoc
    import grpc_tools

    well_known = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    status = protoc.main([
        "protoc",
        "-I" + HERE,
        "-I" + well_known,
        "--python_out=" + out_dir,
        os.path.join(HERE, proto_file),
    ])
    if status != 0:
        raise SystemExit("protoc failed on %s with status %d" % (proto_file, status))
    sys.path.insert(0, out_dir)
    return importlib.import_module(module)


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


def parse_label_string(text):
    """Parses {a="b", c="d"} with Go-style escapes in values, as Loki's label parser does."""
    if not (text.startswith("{") and text.endswith("}")):
        raise ValueError("label set not in braces: %r" % text)
    body, pairs, i = text[1:-1], [], 0
    simple = {"n": "\n", "r": "\r", "t": "\t", "a": "\a", "b": "\b", "f": "\f", "v": "\v",
              "\\": "\\", "\"": "\""}
    while i < len(body):
        eq = body.index("=", i)
        name = body[i:eq]
        if body[eq + 1] != "\"":
            raise ValueError("value not quoted at %d" % eq)
        j, value = eq + 2, []
        while body[j] != "\"":
            if body[j] == "\\":
                kind = body[j + 1]
                if kind in simple:
                    value.append(simple[kind])
                    j += 2
                elif kind == "x":
                    value.append(chr(int(body[j + 2:j + 4], 16)))
                    j += 4
                elif kind == "u":
                    value.append(chr(int(body[j + 2:j + 6], 16)))
                    j += 6
                else:
                    raise ValueError("unknown escape \\%s" % kind)
            else:
                value.append(body[j])
                j += 1
        pairs.append([name, "".join(value)])
        i = j + 1
        if i < len(body):
            if body[i:i + 2] != ", ":
                raise ValueError("pairs not separated by ', ' at %d" % i)
            i += 2
    return pairs


def remote_write(raw, out_dir):
    remote_pb2 = compile_proto(out_dir, "remote.proto", "remote_pb2")
    request = remote_pb2.WriteRequest()
    request.ParseFromString(raw)
    return {
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


def loki_push(raw, out_dir):
    push_pb2 = compile_proto(out_dir, "push.proto", "push_pb2")
    request = push_pb2.PushRequest()
    request.ParseFromString(raw)
    return {
        "format": request.format,
        "unknown_fields": count_unknown_fields(request),
        "streams": [
            {
                "labels": stream.labels,
                "label_pairs": parse_label_string(stream.labels),
                "hash": stream.hash,
                "entries": [
                    {
                        "has_timestamp": entry.HasField("timestamp"),
                        "seconds": entry.timestamp.seconds,
                        "nanos": entry.timestamp.nanos,
                        "line": entry.line,
                        "structured_metadata": [
                            [p.name, p.value] for p in entry.structuredMetadata
                        ],
                        "parsed": len(entry.parsed),
                    }
                    for entry in stream.entries
                ],
            }
            for stream in request.streams
        ],
    }


DECODERS = {"remote-write": remote_write, "loki-push": loki_push}


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in DECODERS:
        raise SystemExit(__doc__)
    require_packages()
    with open(sys.argv[2], "rb") as body_file:
        body = body_file.read()
    raw = snappy_block_decompress(body)
    with tempfile.TemporaryDirectory() as out_dir:
        result = DECODERS[sys.argv[1]](raw, out_dir)
    json.dump(result, sys.stdout, ensure_ascii=False, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
