//! meshtap's proxy-wasm filter (being written).
