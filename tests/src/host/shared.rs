//! State one proxy (one Envoy process) shares between its worker VMs: shared data with CAS,
//! shared queues, metrics by name, the cluster table, captured logs and dispatched calls.
//!
//! It implements Envoy's semantics and statuses for these stores; it never touches wasm memory
//! (the import glue copies bytes in and out).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Mutex;

use super::abi::{LogLevel, MetricType, Status};

/// One `proxy_log` line (or WASI stdout/stderr line) captured from a VM.
#[derive(Clone, Debug, PartialEq)]
pub struct LogEntry {
    /// Index of the worker slot that logged it.
    pub worker: usize,
    pub level: LogLevel,
    pub message: String,
}

/// One `proxy_http_call` the host accepted.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchedCall {
    pub worker: usize,
    pub cluster: String,
    pub headers: Vec<(String, String)>,
    pub body_len: usize,
    pub timeout_ms: u32,
}

/// A metric value as Envoy keeps it.
#[derive(Clone, Debug, PartialEq)]
pub enum MetricValue {
    Counter(u64),
    Gauge(i64),
    /// Recorded samples, in order.
    Histogram(Vec<u64>),
}

#[derive(Default)]
struct SharedData {
    next_cas: u32,
    entries: HashMap<String, (Vec<u8>, u32)>,
}

#[derive(Default)]
struct Queues {
    /// (name) → (id, registrant worker, root context of the registrant)
    by_name: HashMap<String, u32>,
    queues: HashMap<u32, Queue>,
}

struct Queue {
    registrant: (usize, u32),
    items: VecDeque<Vec<u8>>,
}

#[derive(Default)]
struct Metrics {
    ids: HashMap<(MetricType, String), u32>,
    values: BTreeMap<u32, (String, MetricValue)>,
    next: u32,
}

/// Everything a proxy's VMs share. All methods are short critical sections.
pub struct ProxyShared {
    vm_id: String,
    data: Mutex<SharedData>,
    queues: Mutex<Queues>,
    metrics: Mutex<Metrics>,
    clusters: Mutex<HashMap<String, SocketAddr>>,
    logs: Mutex<Vec<LogEntry>>,
    calls: Mutex<Vec<DispatchedCall>>,
    /// Queue notifications to deliver: (worker, root context, queue id).
    queue_ready: Mutex<Vec<(usize, u32, u32)>>,
}

impl ProxyShared {
    pub fn new(vm_id: &str) -> ProxyShared {
        ProxyShared {
            vm_id: vm_id.to_string(),
            data: Mutex::default(),
            queues: Mutex::default(),
            metrics: Mutex::default(),
            clusters: Mutex::default(),
            logs: Mutex::default(),
            calls: Mutex::default(),
            queue_ready: Mutex::default(),
        }
    }

    pub fn vm_id(&self) -> &str {
        &self.vm_id
    }

    // ---- shared data -------------------------------------------------------------------

    /// `proxy_get_shared_data`: the value and its CAS, or NotFound.
    pub fn get_shared_data(&self, key: &str) -> Result<(Vec<u8>, u32), Status> {
        let data = self.data.lock().unwrap();
        data.entries.get(key).cloned().ok_or(Status::NotFound)
    }

    /// `proxy_set_shared_data`: CAS 0 writes unconditionally, any other CAS must match.
    pub fn set_shared_data(&self, key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
        let mut data = self.data.lock().unwrap();
        if cas != 0 {
            match data.entries.get(key) {
                Some((_, current)) if *current == cas => {}
                _ => return Err(Status::CasMismatch),
            }
        }
        data.next_cas = data.next_cas.wrapping_add(1).max(1);
        let next = data.next_cas;
        data.entries.insert(key.to_string(), (value.to_vec(), next));
        Ok(())
    }

    /// Total bytes of keys and values held in shared data (a memory-bound check for tests).
    pub fn shared_data_bytes(&self) -> usize {
        let data = self.data.lock().unwrap();
        data.entries
            .iter()
            .map(|(k, (v, _))| k.len() + v.len())
            .sum()
    }

    // ---- shared queues -----------------------------------------------------------------

    /// `proxy_register_shared_queue`: registering an existing name re-targets its
    /// notifications to the latest registrant.
    pub fn register_queue(&self, name: &str, worker: usize, root_context: u32) -> u32 {
        let mut queues = self.queues.lock().unwrap();
        if let Some(id) = queues.by_name.get(name).copied() {
            queues
                .queues
                .get_mut(&id)
                .expect("named queue exists")
                .registrant = (worker, root_context);
            return id;
        }
        let id = queues.queues.len() as u32 + 1;
        queues.by_name.insert(name.to_string(), id);
        queues.queues.insert(
            id,
            Queue {
                registrant: (worker, root_context),
                items: VecDeque::new(),
            },
        );
        id
    }

    /// `proxy_resolve_shared_queue`: only queues of this proxy's vm_id exist.
    pub fn resolve_queue(&self, vm_id: &str, name: &str) -> Result<u32, Status> {
        if vm_id != self.vm_id {
            return Err(Status::NotFound);
        }
        let queues = self.queues.lock().unwrap();
        queues.by_name.get(name).copied().ok_or(Status::NotFound)
    }

    pub fn enqueue(&self, id: u32, value: &[u8]) -> Result<(), Status> {
        let mut queues = self.queues.lock().unwrap();
        let queue = queues.queues.get_mut(&id).ok_or(Status::NotFound)?;
        queue.items.push_back(value.to_vec());
        let (worker, root) = queue.registrant;
        self.queue_ready.lock().unwrap().push((worker, root, id));
        Ok(())
    }

    pub fn dequeue(&self, id: u32) -> Result<Vec<u8>, Status> {
        let mut queues = self.queues.lock().unwrap();
        let queue = queues.queues.get_mut(&id).ok_or(Status::NotFound)?;
        queue.items.pop_front().ok_or(Status::Empty)
    }

    /// Queue notifications waiting to be delivered, oldest first.
    pub fn take_queue_notifications(&self) -> Vec<(usize, u32, u32)> {
        std::mem::take(&mut *self.queue_ready.lock().unwrap())
    }

    // ---- metrics -----------------------------------------------------------------------

    /// `proxy_define_metric`: one id per (type, name), shared by all VMs of the proxy.
    pub fn define_metric(&self, kind: MetricType, name: &str) -> u32 {
        let mut metrics = self.metrics.lock().unwrap();
        if let Some(id) = metrics.ids.get(&(kind, name.to_string())) {
            return *id;
        }
        metrics.next += 1;
        // Like Envoy, the low bits of the id carry the metric type.
        let id = (metrics.next << 2) | kind.abi();
        metrics.ids.insert((kind, name.to_string()), id);
        let initial = match kind {
            MetricType::Counter => MetricValue::Counter(0),
            MetricType::Gauge => MetricValue::Gauge(0),
            MetricType::Histogram => MetricValue::Histogram(Vec::new()),
        };
        metrics.values.insert(id, (name.to_string(), initial));
        id
    }

    /// `proxy_increment_metric`: counters need a delta > 0, gauges take any delta.
    pub fn increment_metric(&self, id: u32, delta: i64) -> Result<(), Status> {
        let mut metrics = self.metrics.lock().unwrap();
        let (_, value) = metrics.values.get_mut(&id).ok_or(Status::NotFound)?;
        match value {
            MetricValue::Counter(total) if delta > 0 => *total += delta as u64,
            MetricValue::Counter(_) => return Err(Status::BadArgument),
            MetricValue::Gauge(current) => *current += delta,
            MetricValue::Histogram(_) => return Err(Status::BadArgument),
        }
        Ok(())
    }

    /// `proxy_record_metric`: adds to a counter, sets a gauge, records a histogram sample.
    pub fn record_metric(&self, id: u32, sample: u64) -> Result<(), Status> {
        let mut metrics = self.metrics.lock().unwrap();
        let (_, value) = metrics.values.get_mut(&id).ok_or(Status::NotFound)?;
        match value {
            MetricValue::Counter(total) => *total += sample,
            MetricValue::Gauge(current) => *current = sample as i64,
            MetricValue::Histogram(samples) => samples.push(sample),
        }
        Ok(())
    }

    /// `proxy_get_metric`: counters and gauges only.
    pub fn get_metric(&self, id: u32) -> Result<u64, Status> {
        let metrics = self.metrics.lock().unwrap();
        match metrics.values.get(&id).ok_or(Status::NotFound)? {
            (_, MetricValue::Counter(total)) => Ok(*total),
            (_, MetricValue::Gauge(current)) => Ok(*current as u64),
            (_, MetricValue::Histogram(_)) => Err(Status::BadArgument),
        }
    }

    /// Every metric by name, as an Envoy `/stats` dump would show it.
    pub fn metrics(&self) -> Vec<(String, MetricValue)> {
        let metrics = self.metrics.lock().unwrap();
        metrics.values.values().cloned().collect()
    }

    // ---- clusters, logs, calls ---------------------------------------------------------

    /// Makes `cluster` exist in this proxy, served at `addr`.
    pub fn set_cluster(&self, cluster: &str, addr: SocketAddr) {
        self.clusters
            .lock()
            .unwrap()
            .insert(cluster.to_string(), addr);
    }

    pub fn cluster(&self, cluster: &str) -> Option<SocketAddr> {
        self.clusters.lock().unwrap().get(cluster).copied()
    }

    pub fn push_log(&self, entry: LogEntry) {
        self.logs.lock().unwrap().push(entry);
    }

    pub fn logs(&self) -> Vec<LogEntry> {
        self.logs.lock().unwrap().clone()
    }

    pub fn push_call(&self, call: DispatchedCall) {
        self.calls.lock().unwrap().push(call);
    }

    pub fn calls(&self) -> Vec<DispatchedCall> {
        self.calls.lock().unwrap().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_data_cas_semantics() {
        let shared = ProxyShared::new("vm");
        assert_eq!(shared.get_shared_data("k"), Err(Status::NotFound));
        shared.set_shared_data("k", b"a", 0).unwrap();
        let (value, cas) = shared.get_shared_data("k").unwrap();
        assert_eq!(value, b"a");
        assert_eq!(
            shared.set_shared_data("k", b"b", cas + 1),
            Err(Status::CasMismatch)
        );
        shared.set_shared_data("k", b"b", cas).unwrap();
        assert_eq!(
            shared.set_shared_data("k", b"c", cas),
            Err(Status::CasMismatch)
        );
        assert_eq!(
            shared.set_shared_data("absent", b"x", 7),
            Err(Status::CasMismatch)
        );
    }

    #[test]
    fn metrics_follow_envoy_semantics() {
        let shared = ProxyShared::new("vm");
        let counter = shared.define_metric(MetricType::Counter, "c");
        assert_eq!(shared.define_metric(MetricType::Counter, "c"), counter);
        assert_eq!(
            shared.increment_metric(counter, 0),
            Err(Status::BadArgument)
        );
        assert_eq!(
            shared.increment_metric(counter, -1),
            Err(Status::BadArgument)
        );
        shared.increment_metric(counter, 2).unwrap();
        shared.record_metric(counter, 3).unwrap();
        assert_eq!(shared.get_metric(counter), Ok(5));
        let gauge = shared.define_metric(MetricType::Gauge, "g");
        shared.increment_metric(gauge, -4).unwrap();
        assert_eq!(shared.get_metric(gauge), Ok(-4i64 as u64));
        shared.record_metric(gauge, 9).unwrap();
        assert_eq!(shared.get_metric(gauge), Ok(9));
        let histogram = shared.define_metric(MetricType::Histogram, "h");
        shared.record_metric(histogram, 12).unwrap();
        assert_eq!(shared.get_metric(histogram), Err(Status::BadArgument));
        assert_eq!(shared.get_metric(12345), Err(Status::NotFound));
    }

    #[test]
    fn queues_retarget_and_report_empty() {
        let shared = ProxyShared::new("vm");
        let id = shared.register_queue("q", 0, 1);
        assert_eq!(shared.register_queue("q", 1, 1), id);
        assert_eq!(shared.resolve_queue("vm", "q"), Ok(id));
        assert_eq!(shared.resolve_queue("other", "q"), Err(Status::NotFound));
        assert_eq!(shared.dequeue(id), Err(Status::Empty));
        shared.enqueue(id, b"x").unwrap();
        assert_eq!(shared.take_queue_notifications(), vec![(1, 1, id)]);
        assert_eq!(shared.dequeue(id).unwrap(), b"x");
        assert_eq!(shared.enqueue(99, b"x"), Err(Status::NotFound));
    }
}
