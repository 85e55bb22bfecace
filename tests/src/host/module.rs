//! The compiled filter: one `wasmtime::Engine` + `Module` + import `Linker`, compiled once and
//! shared by every VM of every proxy (as Envoy clones one loaded module onto its workers).
//!
//! Owns compilation and the import check (fail fast when the module needs an import this host
//! does not provide, by name and signature); instantiating and driving VMs is `vm.rs`'s job.

use std::path::Path;
use std::sync::Arc;

use wasmtime::{Config, Engine, Extern, ExternType, Linker, Module};

use super::vm_state::VmState;
use super::{imports_calls, imports_core, imports_shared, wasi, HostError};

/// A filter module ready to be instantiated.
pub struct FilterModule {
    pub(crate) engine: Engine,
    pub(crate) module: Module,
    pub(crate) linker: Linker<VmState>,
    fuel: bool,
}

impl FilterModule {
    /// Compiles the `.wasm` at `path`. With `consume_fuel`, every VM meters executed wasm
    /// instructions (for benchmarks).
    pub fn load(path: &Path, consume_fuel: bool) -> Result<Arc<FilterModule>, HostError> {
        let bytes = std::fs::read(path).map_err(|source| HostError::ReadModule {
            path: path.to_path_buf(),
            source,
        })?;
        FilterModule::from_bytes(&bytes, consume_fuel)
    }

    pub fn from_bytes(bytes: &[u8], consume_fuel: bool) -> Result<Arc<FilterModule>, HostError> {
        let mut config = Config::new();
        config.consume_fuel(consume_fuel);
        let engine = Engine::new(&config).map_err(HostError::wasm("creating the engine"))?;
        let module =
            Module::new(&engine, bytes).map_err(HostError::wasm("compiling the module"))?;
        let linker = host_linker(&engine).map_err(HostError::wasm("defining host imports"))?;
        let mut store = dummy_store(&engine);
        let mut missing = Vec::new();
        for import in module.imports() {
            let label = format!("{}.{}", import.module(), import.name());
            match (linker.get_by_import(&mut store, &import), import.ty()) {
                (None, _) => missing.push(label),
                (Some(Extern::Func(provided)), ExternType::Func(wanted)) => {
                    if !provided.ty(&store).matches(&wanted) {
                        missing.push(format!("{label} (with a different signature)"));
                    }
                }
                (Some(_), _) => missing.push(format!("{label} (not a function)")),
            }
        }
        if !missing.is_empty() {
            return Err(HostError::UnsupportedImports(missing));
        }
        Ok(Arc::new(FilterModule {
            engine,
            module,
            linker,
            fuel: consume_fuel,
        }))
    }

    pub fn consumes_fuel(&self) -> bool {
        self.fuel
    }

    /// The module's imports as `module.name`.
    pub fn imports(&self) -> Vec<String> {
        self.module
            .imports()
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect()
    }

    /// The module's exports by name.
    pub fn exports(&self) -> Vec<String> {
        self.module
            .exports()
            .map(|e| e.name().to_string())
            .collect()
    }
}

/// Every import this host provides, as `module.name`.
pub fn provided_imports() -> Vec<String> {
    let engine = Engine::default();
    let linker = host_linker(&engine).expect("host imports define cleanly");
    let mut store = dummy_store(&engine);
    let mut names: Vec<String> = linker
        .iter(&mut store)
        .map(|(module, name, _)| format!("{module}.{name}"))
        .collect();
    names.sort();
    names
}

fn host_linker(engine: &Engine) -> wasmtime::Result<Linker<VmState>> {
    let mut linker = Linker::new(engine);
    imports_core::define(&mut linker)?;
    imports_shared::define(&mut linker)?;
    imports_calls::define(&mut linker)?;
    wasi::define(&mut linker)?;
    Ok(linker)
}

/// A store with placeholder state, only to resolve linker definitions.
fn dummy_store(engine: &Engine) -> wasmtime::Store<VmState> {
    let (tx, _rx) = std::sync::mpsc::channel();
    wasmtime::Store::new(engine, VmState::detached(tx))
}
