//! A Loki push receiver on 127.0.0.1 for the log tests of the sink and the end-to-end tests: it
//! decodes snappy-block bodies with its own `logproto` message set (declared here from Loki's
//! published field numbers, independent of `meshtap_logformat`'s), records headers and
//! requests, and answers from a script (then 204).
//!
//! Runs on the caller's tokio runtime; it stores what it got and checks nothing itself.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use prost::Message;

use crate::counted_listener::{CountedListener, OpenConnections};

#[derive(Clone, PartialEq, Message)]
pub struct RecvPushRequest {
    #[prost(message, repeated, tag = "1")]
    pub streams: Vec<RecvStream>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvStream {
    #[prost(string, tag = "1")]
    pub labels: String,
    #[prost(message, repeated, tag = "2")]
    pub entries: Vec<RecvEntry>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvEntry {
    #[prost(message, optional, tag = "1")]
    pub timestamp: Option<RecvTimestamp>,
    #[prost(string, tag = "2")]
    pub line: String,
    #[prost(message, repeated, tag = "3")]
    pub structured_metadata: Vec<RecvPair>,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvTimestamp {
    #[prost(int64, tag = "1")]
    pub seconds: i64,
    #[prost(int32, tag = "2")]
    pub nanos: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct RecvPair {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

impl RecvEntry {
    pub fn timestamp_ns(&self) -> i64 {
        let t = self.timestamp.clone().unwrap_or_default();
        t.seconds * 1_000_000_000 + i64::from(t.nanos)
    }

    pub fn metadata(&self, name: &str) -> Option<&str> {
        self.structured_metadata
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }
}

/// One push the receiver saw.
#[derive(Clone, Debug)]
pub struct Push {
    pub headers: HeaderMap,
    pub request: RecvPushRequest,
    pub status: u16,
}

/// A scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<&'static str>,
    pub body: &'static str,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            retry_after: None,
            body: "",
        }
    }
}

#[derive(Default)]
struct LokiState {
    script: Mutex<VecDeque<Reply>>,
    /// While set, every push is answered with this status (after the script).
    refusing: Mutex<Option<u16>>,
    pushes: Mutex<Vec<Push>>,
}

pub struct LokiReceiver {
    pub addr: SocketAddr,
    state: Arc<LokiState>,
    open: OpenConnections,
    server: tokio::task::JoinHandle<()>,
}

async fn push(State(state): State<Arc<LokiState>>, headers: HeaderMap, body: Bytes) -> Response {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(&body)
        .expect("body is snappy block data");
    let request = RecvPushRequest::decode(raw.as_slice()).expect("body is a PushRequest");
    let reply = state
        .script
        .lock()
        .unwrap()
        .pop_front()
        .or_else(|| state.refusing.lock().unwrap().map(Reply::status))
        .unwrap_or_else(|| Reply::status(204));
    state.pushes.lock().unwrap().push(Push {
        headers,
        request,
        status: reply.status,
    });
    let mut response = (StatusCode::from_u16(reply.status).unwrap(), reply.body).into_response();
    if let Some(after) = reply.retry_after {
        response
            .headers_mut()
            .insert("retry-after", after.parse().unwrap());
    }
    response
}

impl LokiReceiver {
    pub async fn start(script: Vec<Reply>) -> LokiReceiver {
        let state = Arc::new(LokiState {
            script: Mutex::new(script.into()),
            refusing: Mutex::default(),
            pushes: Mutex::default(),
        });
        let app = Router::new()
            .route("/loki/api/v1/push", post(push))
            .with_state(state.clone());
        let (listener, open) = CountedListener::bind().await;
        let addr = axum::serve::Listener::local_addr(&listener).unwrap();
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        LokiReceiver {
            addr,
            state,
            open,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/loki/api/v1/push", self.addr)
    }

    /// Answers every push with `status` from now on (`None`: accept again).
    pub fn refuse_with(&self, status: Option<u16>) {
        *self.state.refusing.lock().unwrap() = status;
    }

    /// Waits until no connection is open: once the sinks that pushed here are dead, every
    /// push they sent has been answered and recorded (see [`crate::counted_listener`]).
    pub async fn wait_until_idle(&self) {
        self.open.wait_until_none().await;
    }

    pub fn pushes(&self) -> Vec<Push> {
        self.state.pushes.lock().unwrap().clone()
    }

    /// `(stream labels, entry)` of every acknowledged push, in arrival order.
    pub fn accepted_entries(&self) -> Vec<(String, RecvEntry)> {
        self.pushes()
            .into_iter()
            .filter(|p| p.status < 300)
            .flat_map(|p| p.request.streams)
            .flat_map(|s| {
                let labels = s.labels.clone();
                s.entries.into_iter().map(move |e| (labels.clone(), e))
            })
            .collect()
    }

    /// Lines of every acknowledged push, in arrival order.
    pub fn accepted_lines(&self) -> Vec<String> {
        self.accepted_entries()
            .into_iter()
            .map(|(_, e)| e.line)
            .collect()
    }

    pub fn stop(self) {
        self.server.abort();
    }
}
