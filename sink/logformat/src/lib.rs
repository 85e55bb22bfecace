//! Log formats (being written).
