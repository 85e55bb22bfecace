//! Reads a request's extra dimension values (`overrides[].tags`) from the host in `on_log`:
//! one host call per header or property dimension, none for literals and node metadata (resolved
//! when the plugin is configured), and none at all when no dimension is configured.
//!
//! Owns the per-VM cache from the raw values to their label values and id (the id goes into the
//! request's shortcut key). It must not decide what a value means: [`crate::record::dimensions`] does.

use proxy_wasm::types::MapType;

use super::host::{header, property, string_property_at, PropertyPath};
use super::id_caches::Known;
use super::vm::ActiveVm;
use crate::record::dimensions::{append_key, value_of, Dimensions, Source, MISSING_VALUE};

/// Replaces node-metadata sources by the proxy's values (at configure time).
pub(super) fn resolve_node_metadata(dimensions: &mut Dimensions) {
    dimensions.resolve_node_metadata(|key| string_property_at(&["node", "metadata", key]));
}

/// The extra values of the request being logged; `None` when none are configured.
pub(super) fn read_extra(vm: &mut ActiveVm) -> Option<Known> {
    if vm.config.dimensions.is_empty() {
        return None;
    }
    let raw: Vec<Option<Vec<u8>>> = vm
        .config
        .dimensions
        .columns
        .iter()
        .map(|column| match &column.source {
            Source::RequestHeader(name) => header(MapType::HttpRequestHeaders, name),
            Source::ResponseHeader(name) => header(MapType::HttpResponseHeaders, name),
            Source::Property(path) => property(PropertyPath(path)),
            Source::Literal(_) | Source::NodeMetadata(_) => None,
        })
        .collect();
    let mut key = Vec::new();
    for value in &raw {
        append_key(&mut key, value.as_deref());
    }
    if let Some(known) = vm.caches.find_extra(&key) {
        return Some(known);
    }
    let values: Box<[String]> = vm
        .config
        .dimensions
        .columns
        .iter()
        .zip(&raw)
        .map(|(column, raw)| match &column.source {
            Source::Literal(text) => text.clone(),
            Source::NodeMetadata(_) => MISSING_VALUE.to_string(),
            _ => value_of(raw.as_deref()),
        })
        .collect();
    Some(vm.caches.add_extra(&key, values))
}
