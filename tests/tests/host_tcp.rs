//! TCP connections in the host, checked with the recording guest: Envoy's callback order and
//! arguments, the chunk each data callback reads through buffer types 2 and 3, peer filter
//! state readable from the first data on, a connection that stays open while time passes and
//! ticks fire, and bypass without a NETWORK plugin.

mod recorder;

use std::time::Duration;

use meshtap_tests::host::{
    Clock, Direction, HostError, PeerType, Phase, PluginSpec, Properties, PropertyValue, Proxy,
    ProxyConfig, TcpConnection, TcpConnectionSpec, Traffic,
};
use recorder::{code, drain, Event};

/// Main (HTTP) plugin config "a" (ticks every 1 s), NETWORK plugin config "abc" (every 3 s).
fn two_plugin_proxy(workers: usize) -> Proxy {
    let config = ProxyConfig {
        plugin_config: "a".into(),
        extra_plugins: vec![PluginSpec {
            root_id: "tcp".into(),
            plugin_name: "tcp".into(),
            plugin_config: "abc".into(),
            traffic: Traffic::Network,
        }],
        workers,
        clock: Clock::manual_now(),
        ..ProxyConfig::default()
    };
    Proxy::start(recorder::module(), config).unwrap()
}

const NOT_FOUND: u32 = 1;

#[test]
fn a_connection_runs_in_envoys_order_and_each_data_callback_reads_its_chunk() {
    let mut proxy = two_plugin_proxy(1);
    drain(&proxy);
    // The metadata exchange's peer comes with the first bytes.
    let mut properties = Properties::new();
    properties.set(
        &["filter_state", "downstream_peer"],
        PropertyValue::Bytes(b"peer".to_vec()),
        Phase::Response,
    );
    let connection = TcpConnection {
        spec: TcpConnectionSpec { properties },
        chunks: vec![
            (Direction::Downstream, b"hello".to_vec(), false),
            (Direction::Upstream, b"world!".to_vec(), false),
            (Direction::Downstream, b"bye".to_vec(), true),
            (Direction::Upstream, b"ok".to_vec(), true),
        ],
        closed_by: PeerType::Remote,
    };
    let outcome = proxy.run_tcp_connection(0, &connection).unwrap();
    assert!(
        !outcome.bypassed && outcome.trapped.is_none(),
        "{outcome:?}"
    );
    // Roots are contexts 1 (HTTP) and 2 (NETWORK); the connection is context 3 under root 2.
    assert_eq!(
        drain(&proxy),
        vec![
            Event::call(code::CONTEXT_CREATE, 3, 2, 0),
            Event::call(code::NEW_CONNECTION, 3, 0, 0),
            Event::read(NOT_FOUND, code::DOWNSTREAM_PEER, b""),
            Event::call(code::DOWNSTREAM_DATA, 3, 5, 0),
            Event::read(0, 2, b"hello"),
            Event::read(0, code::DOWNSTREAM_PEER, b"peer"),
            Event::call(code::UPSTREAM_DATA, 3, 6, 0),
            Event::read(0, 3, b"world!"),
            Event::read(0, 3, b"rld!"),
            Event::call(code::DOWNSTREAM_DATA, 3, 3, 1),
            Event::read(0, 2, b"bye"),
            Event::read(0, code::DOWNSTREAM_PEER, b"peer"),
            Event::call(code::UPSTREAM_DATA, 3, 2, 1),
            Event::read(0, 3, b"ok"),
            Event::read(0, 3, b""),
            // End of stream from upstream is Envoy's upstream close, peer type Unknown.
            Event::call(code::UPSTREAM_CLOSE, 3, 0, 0),
            Event::call(code::DOWNSTREAM_CLOSE, 3, PeerType::Remote as u32, 0),
            Event::call(code::DONE, 3, 0, 0),
            Event::call(code::LOG, 3, 0, 0),
            Event::read(NOT_FOUND, code::GRPC_STATS, b""),
            Event::call(code::DELETE, 3, 0, 0),
        ]
    );
}

#[test]
fn a_connection_stays_open_across_ticks_of_both_roots() {
    let mut proxy = two_plugin_proxy(1);
    drain(&proxy);
    let (handle, outcome) = proxy.open_tcp(0, &TcpConnectionSpec::default()).unwrap();
    assert!(!outcome.bypassed);
    proxy.advance(Duration::from_secs(3));
    proxy
        .tcp_data(&handle, Direction::Downstream, b"late", false)
        .unwrap();
    assert!(matches!(
        proxy.replace_vm(0, Duration::from_secs(1)),
        Err(HostError::OpenConnections { worker: 0, open: 1 })
    ));
    proxy.close_tcp(handle, PeerType::Local).unwrap();
    let events = drain(&proxy);
    let ticks = |root: u32| {
        events
            .iter()
            .filter(|e| e.code == code::TICK && e.ctx == root)
            .count()
    };
    assert_eq!((ticks(1), ticks(2)), (3, 1));
    let tail: Vec<u32> = events
        .iter()
        .filter(|e| e.ctx == 3 && e.code != code::READ)
        .map(|e| e.code)
        .collect();
    assert_eq!(
        tail,
        vec![
            code::CONTEXT_CREATE,
            code::NEW_CONNECTION,
            code::DOWNSTREAM_DATA,
            code::DOWNSTREAM_CLOSE,
            code::DONE,
            code::LOG,
            code::DELETE
        ]
    );
    let close = events.iter().find(|e| e.code == code::DOWNSTREAM_CLOSE);
    assert_eq!(close.unwrap().a, PeerType::Local as u32);
    proxy.replace_vm(0, Duration::from_secs(1)).unwrap();
}

#[test]
fn without_a_network_plugin_connections_bypass_the_vm() {
    let config = ProxyConfig {
        clock: Clock::manual_now(),
        ..ProxyConfig::default()
    };
    let mut proxy = Proxy::start(recorder::module(), config).unwrap();
    drain(&proxy);
    let spec = TcpConnectionSpec {
        properties: Properties::new(),
    };
    let (handle, opened) = proxy.open_tcp(0, &spec).unwrap();
    let data = proxy
        .tcp_data(&handle, Direction::Downstream, b"x", true)
        .unwrap();
    let closed = proxy.close_tcp(handle, PeerType::Remote).unwrap();
    assert!(opened.bypassed && data.bypassed && closed.bypassed);
    assert_eq!(drain(&proxy), Vec::new());
    assert!(matches!(
        proxy.open_tcp(4, &spec),
        Err(HostError::NoSuchWorker(4))
    ));
}
