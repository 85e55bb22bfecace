//! A stand-in Kubernetes API server on 127.0.0.1 for the sink's discovery and sharding tests:
//! list and watch of pods (all namespaces or one) and EndpointSlices (one namespace), with
//! `labelSelector` equality terms, in the API server's JSON shapes: `PodList` /
//! `EndpointSliceList` with `metadata.resourceVersion` (items without `kind`/`apiVersion`),
//! and newline-delimited watch events `ADDED` / `MODIFIED` / `DELETED` carrying whole objects,
//! replayed from the requested `resourceVersion`, plus a `BOOKMARK` when the client allows them.
//!
//! Every change bumps one store-wide resourceVersion, as etcd's revision does, and reaches
//! every open watch of its kind. Any number of clients may list and watch.
//!
//! [`PodBuilder`] writes pods as the API server returns them (container ports, statuses with
//! container IDs, init containers, phase, the `Ready` condition, owner references).
//!
//! Not served: authentication, other resources, field selectors, set-based label selectors,
//! `410 Gone` for a compacted resourceVersion. It serves what the test applies and deletes and
//! checks nothing itself: assertions live in the tests.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// The two resources served.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Pod,
    EndpointSlice,
}

impl Kind {
    fn of(object: &Value) -> Kind {
        match object["kind"].as_str() {
            Some("Pod") => Kind::Pod,
            Some("EndpointSlice") => Kind::EndpointSlice,
            other => panic!("the stand-in serves Pods and EndpointSlices, not {other:?}"),
        }
    }

    fn api_version(self) -> &'static str {
        match self {
            Kind::Pod => "v1",
            Kind::EndpointSlice => "discovery.k8s.io/v1",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Pod => "Pod",
            Kind::EndpointSlice => "EndpointSlice",
        }
    }
}

/// One stored change.
#[derive(Clone, Debug)]
struct Change {
    kind: Kind,
    event: &'static str,
    object: Value,
}

#[derive(Default)]
struct Store {
    resource_version: u64,
    /// By (kind, namespace, name).
    objects: BTreeMap<(Kind, String, String), Value>,
    history: Vec<Change>,
}

struct ApiState {
    store: Mutex<Store>,
    changes: broadcast::Sender<Change>,
}

/// The running stand-in.
pub struct KubeApi {
    pub addr: SocketAddr,
    state: Arc<ApiState>,
}

fn key_of(kind: Kind, object: &Value) -> (Kind, String, String) {
    let meta = &object["metadata"];
    (
        kind,
        meta["namespace"].as_str().unwrap_or_default().to_owned(),
        meta["name"].as_str().expect("metadata.name").to_owned(),
    )
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Whether `object` matches `selector` (`k=v` terms joined by commas).
fn selected(object: &Value, selector: Option<&str>) -> bool {
    selector.into_iter().flat_map(|s| s.split(',')).all(|term| {
        let (k, v) = term.split_once('=').expect("equality selector");
        object["metadata"]["labels"][k].as_str() == Some(v)
    })
}

impl KubeApi {
    pub async fn start() -> KubeApi {
        let (changes, _) = broadcast::channel(1024);
        let state = Arc::new(ApiState {
            store: Mutex::default(),
            changes,
        });
        let app = Router::new()
            .route("/api/v1/pods", get(all_pods))
            .route("/api/v1/namespaces/{ns}/pods", get(namespaced_pods))
            .route(
                "/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices",
                get(endpoint_slices),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        KubeApi { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Creates or replaces an object (`ADDED` or `MODIFIED`), stamping its resourceVersion.
    pub fn apply(&self, mut object: Value) {
        let kind = Kind::of(&object);
        let mut store = self.state.store.lock().unwrap();
        store.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
        let key = key_of(kind, &object);
        let event = match store.objects.insert(key, object.clone()) {
            Some(_) => "MODIFIED",
            None => "ADDED",
        };
        self.record(&mut store, kind, event, object);
    }

    /// Deletes an object (`DELETED` with its last state at a new resourceVersion).
    pub fn delete(&self, kind: Kind, namespace: &str, name: &str) {
        let mut store = self.state.store.lock().unwrap();
        let key = (kind, namespace.to_owned(), name.to_owned());
        let mut object = store
            .objects
            .remove(&key)
            .expect("deleting a stored object");
        store.resource_version += 1;
        object["metadata"]["resourceVersion"] = json!(store.resource_version.to_string());
        self.record(&mut store, kind, "DELETED", object);
    }

    fn record(&self, store: &mut Store, kind: Kind, event: &'static str, object: Value) {
        let change = Change {
            kind,
            event,
            object,
        };
        store.history.push(change.clone());
        // No receiver is fine: nobody watches yet.
        let _ = self.state.changes.send(change);
    }
}

async fn all_pods(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    serve(state, Kind::Pod, None, query)
}

async fn namespaced_pods(
    State(state): State<Arc<ApiState>>,
    Path(ns): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    serve(state, Kind::Pod, Some(ns), query)
}

async fn endpoint_slices(
    State(state): State<Arc<ApiState>>,
    Path(ns): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    serve(state, Kind::EndpointSlice, Some(ns), query)
}

fn serve(
    state: Arc<ApiState>,
    kind: Kind,
    namespace: Option<String>,
    query: Vec<(String, String)>,
) -> Response {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let selector = param("labelSelector");
    let wanted = move |k: Kind, object: &Value| {
        k == kind
            && namespace
                .as_deref()
                .is_none_or(|ns| object["metadata"]["namespace"] == ns)
            && selected(object, selector.as_deref())
    };
    let watching = matches!(param("watch").as_deref(), Some("true" | "1"));
    let store = state.store.lock().unwrap();
    if !watching {
        let items: Vec<Value> = store
            .objects
            .iter()
            .filter(|((k, _, _), o)| wanted(*k, o))
            .map(|(_, o)| {
                let mut item = o.clone();
                let map = item.as_object_mut().unwrap();
                map.remove("kind");
                map.remove("apiVersion");
                item
            })
            .collect();
        let list = json!({
            "kind": format!("{}List", kind.name()),
            "apiVersion": kind.api_version(),
            "metadata": {"resourceVersion": store.resource_version.to_string()},
            "items": items,
        });
        return ([("content-type", "application/json")], list.to_string()).into_response();
    }
    let since: u64 = param("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let live = state.changes.subscribe();
    let mut lines: Vec<String> = store
        .history
        .iter()
        .filter(|c| resource_version(&c.object) > since && wanted(c.kind, &c.object))
        .map(|c| json!({"type": c.event, "object": c.object}).to_string())
        .collect();
    if matches!(param("allowWatchBookmarks").as_deref(), Some("true")) {
        lines.push(
            json!({"type": "BOOKMARK", "object": {
                "kind": kind.name(), "apiVersion": kind.api_version(),
                "metadata": {"resourceVersion": store.resource_version.to_string()}}})
            .to_string(),
        );
    }
    drop(store);
    let replay = futures_util::stream::iter(lines);
    let changes = futures_util::stream::unfold(live, move |mut live| {
        let wanted = wanted.clone();
        async move {
            loop {
                match live.recv().await {
                    Ok(c) if wanted(c.kind, &c.object) => {
                        let line = json!({"type": c.event, "object": c.object}).to_string();
                        return Some((line, live));
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => panic!("watch lagged"),
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        }
    });
    let body = replay
        .chain(changes)
        .map(|line| Ok::<_, std::io::Error>(Bytes::from(line + "\n")));
    (
        [("content-type", "application/json")],
        Body::from_stream(body),
    )
        .into_response()
}

/// A pod in the API's shape, annotated with `annotations` (a JSON object text): namespace
/// `default`, two containers (`app` on 9080, `istio-proxy` on 15090).
pub fn pod(name: &str, annotations: &str, ip: &str) -> Value {
    let annotations: Value = serde_json::from_str(annotations).expect("annotations JSON");
    let mut pod = PodBuilder::new("default", name, ip)
        .label("app", name)
        .container("app", "app:1", &[(None, 9080)])
        .container(
            "istio-proxy",
            "proxyv2:1.14.3",
            &[(Some("http-envoy-prom"), 15090)],
        );
    for (key, value) in annotations.as_object().expect("annotations object") {
        pod = pod.annotation(key, value.as_str().expect("annotation text"));
    }
    pod.build()
}

/// A pod as the API server returns it, built field by field: containers with ports (and their
/// statuses with container IDs), init containers, labels, annotations, phase, the `Ready`
/// condition, the host IP and a controlling owner reference.
pub struct PodBuilder {
    namespace: String,
    name: String,
    ip: String,
    labels: serde_json::Map<String, Value>,
    annotations: serde_json::Map<String, Value>,
    containers: Vec<Value>,
    init_containers: Vec<Value>,
    phase: String,
    ready: bool,
    owner: Option<(String, String)>,
}

fn container(name: &str, image: &str, ports: &[(Option<&str>, u16)]) -> Value {
    let ports: Vec<Value> = ports
        .iter()
        .map(|(port_name, number)| match port_name {
            Some(port_name) => {
                json!({"name": port_name, "containerPort": number, "protocol": "TCP"})
            }
            None => json!({"containerPort": number, "protocol": "TCP"}),
        })
        .collect();
    let mut container = json!({"name": name, "image": image});
    if !ports.is_empty() {
        container["ports"] = json!(ports);
    }
    container
}

fn statuses(containers: &[Value]) -> Vec<Value> {
    containers
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap();
            json!({"name": name, "image": c["image"], "imageID": "", "ready": true,
                "restartCount": 0, "containerID": format!("containerd://{name}-0123abcd")})
        })
        .collect()
}

impl PodBuilder {
    /// A running, ready pod on `node-1` (host IP 192.168.0.1) with no containers yet.
    pub fn new(namespace: &str, name: &str, ip: &str) -> PodBuilder {
        PodBuilder {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            ip: ip.to_owned(),
            labels: serde_json::Map::new(),
            annotations: serde_json::Map::new(),
            containers: Vec::new(),
            init_containers: Vec::new(),
            phase: "Running".to_owned(),
            ready: true,
            owner: None,
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> PodBuilder {
        self.labels.insert(key.to_owned(), json!(value));
        self
    }

    pub fn annotation(mut self, key: &str, value: &str) -> PodBuilder {
        self.annotations.insert(key.to_owned(), json!(value));
        self
    }

    /// A container with `(port name, number)` ports (none: a container without ports).
    pub fn container(
        mut self,
        name: &str,
        image: &str,
        ports: &[(Option<&str>, u16)],
    ) -> PodBuilder {
        self.containers.push(container(name, image, ports));
        self
    }

    pub fn init_container(mut self, name: &str, image: &str) -> PodBuilder {
        self.init_containers.push(container(name, image, &[]));
        self
    }

    pub fn phase(mut self, phase: &str) -> PodBuilder {
        self.phase = phase.to_owned();
        self
    }

    pub fn ready(mut self, ready: bool) -> PodBuilder {
        self.ready = ready;
        self
    }

    /// The controlling owner reference (`ReplicaSet`, `DaemonSet`, `Job`, …).
    pub fn owner(mut self, kind: &str, name: &str) -> PodBuilder {
        self.owner = Some((kind.to_owned(), name.to_owned()));
        self
    }

    /// The pod's uid: `uid-<name>`.
    pub fn uid(name: &str) -> String {
        format!("uid-{name}")
    }

    pub fn build(self) -> Value {
        let mut metadata = json!({"name": self.name, "namespace": self.namespace,
            "uid": PodBuilder::uid(&self.name), "labels": self.labels,
            "annotations": self.annotations});
        if let Some((kind, name)) = &self.owner {
            metadata["ownerReferences"] = json!([{"apiVersion": "apps/v1", "kind": kind,
                "name": name, "uid": format!("uid-{name}"), "controller": true,
                "blockOwnerDeletion": true}]);
        }
        let ready = if self.ready { "True" } else { "False" };
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": metadata,
            "spec": {"nodeName": "node-1", "containers": self.containers,
                "initContainers": self.init_containers},
            "status": {"phase": self.phase, "podIP": self.ip, "podIPs": [{"ip": self.ip}],
                "hostIP": "192.168.0.1",
                "conditions": [{"type": "Ready", "status": ready}],
                "containerStatuses": statuses(&self.containers),
                "initContainerStatuses": statuses(&self.init_containers)}
        })
    }
}

/// The EndpointSlice of headless Service `service` in `namespace` with one ready endpoint per
/// `(pod name, address)`, as the EndpointSlice controller writes it.
pub fn endpoint_slice(namespace: &str, service: &str, members: &[(&str, &str)]) -> Value {
    let endpoints: Vec<Value> = members
        .iter()
        .map(|(name, ip)| {
            json!({
                "addresses": [ip],
                "conditions": {"ready": true, "serving": true, "terminating": false},
                "targetRef": {"kind": "Pod", "namespace": namespace, "name": name, "uid": format!("uid-{name}")},
                "nodeName": "node-1"
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x7k2p"), "namespace": namespace,
            "generateName": format!("{service}-"),
            "labels": {"kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"},
            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service,
                "uid": "uid-svc", "controller": true, "blockOwnerDeletion": true}]},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http-reports", "port": 9091, "protocol": "TCP", "appProtocol": "http"}]
    })
}
