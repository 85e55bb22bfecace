//! Runs `decode.py` (beside this file) on a body meshtap built and returns its JSON: the
//! independent decoder behind the remote-write and Loki push wire checks. Shared by the test
//! crates of `meshtap-sink` and `meshtap-logformat` (each includes this file with `#[path]`);
//! it only runs the script and must not interpret what it prints.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

/// `decode.py`'s exit status when Python packages are missing.
const MISSING_PACKAGES_EXIT: i32 = 3;

/// What `decode.py` is to decode.
#[derive(Clone, Copy)]
#[allow(dead_code)] // each including test crate decodes one of the two
pub enum Wire {
    RemoteWrite,
    LokiPush,
}

impl Wire {
    fn argument(self) -> &'static str {
        match self {
            Wire::RemoteWrite => "remote-write",
            Wire::LokiPush => "loki-push",
        }
    }
}

/// Decodes `body` as `wire` with Python's protobuf package; `name` keeps concurrent tests'
/// temporary files apart. Panics with the install hint when python3 or its packages are missing.
pub fn decode_with_python(wire: Wire, body: &[u8], name: &str) -> Value {
    let script = Path::new(file!())
        .parent()
        .expect("run.rs has a folder")
        .join("decode.py");
    // `file!()` is relative to the workspace root; tests run in their crate's folder.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join(&script).exists())
        .expect("decode.py is inside the workspace");
    let body_path = std::env::temp_dir().join(format!(
        "meshtap-{}-{name}-{}.bin",
        wire.argument(),
        std::process::id()
    ));
    std::fs::write(&body_path, body).unwrap();
    let output = Command::new("python3")
        .arg(workspace.join(&script))
        .arg(wire.argument())
        .arg(&body_path)
        .output();
    std::fs::remove_file(&body_path).unwrap();
    let output = output.unwrap_or_else(|error| {
        panic!("cannot run python3 ({error}); `cargo xtask test` sets up python3 with grpcio-tools, protobuf and cramjam")
    });
    let stderr = String::from_utf8_lossy(&output.stderr);
    if output.status.code() == Some(MISSING_PACKAGES_EXIT) {
        panic!(
            "{stderr}the wire check needs Python packages grpcio-tools, protobuf and cramjam; \
             `cargo xtask test` installs them (pip install grpcio-tools protobuf cramjam)"
        );
    }
    assert!(output.status.success(), "decode.py failed: {stderr}");
    serde_json::from_slice(&output.stdout).expect("decode.py prints JSON")
}
