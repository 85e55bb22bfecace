//! meshtap-sink (being written).
fn main() {}
