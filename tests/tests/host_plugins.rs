//! Two plugins in the same worker VMs and HTTP bodies, checked with the recording guest:
//! Envoy's start sequence per root, each root's own configuration and tick period, which root
//! HTTP streams and TCP connections go to, a rejected plugin bypassed without the other, body
//! chunks read by each body callback, and the grpc_stats filter state.

mod recorder;

use std::time::Duration;

use meshtap_tests::host::grpc_frames::{frames, split};
use meshtap_tests::host::{
    Clock, HttpExchange, PeerType, PluginSpec, Proxy, ProxyConfig, ResponseSpec, TcpConnectionSpec,
    Traffic, VmStatus,
};
use recorder::{code, drain, Event};

fn proxy(main_traffic: Traffic, workers: usize) -> Proxy {
    proxy_with_second_config(main_traffic, workers, "abc")
}

fn proxy_with_second_config(main_traffic: Traffic, workers: usize, second: &str) -> Proxy {
    let extra = match main_traffic {
        Traffic::Http => Traffic::Network,
        Traffic::Network => Traffic::Http,
    };
    let config = ProxyConfig {
        plugin_config: "a".into(),
        traffic: main_traffic,
        extra_plugins: vec![PluginSpec {
            root_id: "second".into(),
            plugin_name: "second".into(),
            plugin_config: second.into(),
            traffic: extra,
        }],
        workers,
        clock: Clock::manual_now(),
        ..ProxyConfig::default()
    };
    Proxy::start(recorder::module(), config).unwrap()
}

#[test]
fn each_plugin_starts_as_its_own_root_with_its_own_configuration() {
    let proxy = proxy(Traffic::Http, 1);
    assert_eq!(
        drain(&proxy),
        vec![
            Event::call(code::CONTEXT_CREATE, 1, 0, 0),
            Event::call(code::VM_START, 1, 0, 0),
            Event::call(code::CONFIGURE, 1, 1, 0),
            Event::read(0, 7, b"a"),
            Event::call(code::CONTEXT_CREATE, 2, 0, 0),
            Event::call(code::VM_START, 2, 0, 0),
            Event::call(code::CONFIGURE, 2, 3, 0),
            Event::read(0, 7, b"abc"),
        ]
    );
}

#[test]
fn tick_periods_are_per_root_in_every_worker() {
    let mut proxy = proxy(Traffic::Http, 2);
    drain(&proxy);
    proxy.advance(Duration::from_secs(6));
    let events = drain(&proxy);
    let ticks = |root: u32| {
        events
            .iter()
            .filter(|e| e.code == code::TICK && e.ctx == root)
            .count()
    };
    // Root 1 every second, root 2 every 3 s, in each of the 2 workers.
    assert_eq!((ticks(1), ticks(2)), (2 * 6, 2 * 2));
    assert_eq!(events.len(), ticks(1) + ticks(2));
}

#[test]
fn streams_and_connections_go_to_the_root_that_handles_them() {
    for (main, http_root, tcp_root) in [(Traffic::Http, 1, 2), (Traffic::Network, 2, 1)] {
        let mut proxy = proxy(main, 1);
        drain(&proxy);
        proxy.run_http_stream(0, &HttpExchange::default());
        let (handle, _) = proxy.open_tcp(0, &TcpConnectionSpec::default()).unwrap();
        let creates: Vec<(u32, u32)> = drain(&proxy)
            .iter()
            .filter(|e| e.code == code::CONTEXT_CREATE)
            .map(|e| (e.ctx, e.a))
            .collect();
        assert_eq!(creates, vec![(3, http_root), (4, tcp_root)], "{main:?}");
        proxy.close_tcp(handle, PeerType::Remote).unwrap();
    }
}

#[test]
fn a_rejected_plugin_is_bypassed_alone() {
    // The recorder refuses an empty configuration: the NETWORK plugin is rejected.
    let mut proxy = proxy_with_second_config(Traffic::Http, 1, "");
    let VmStatus::Rejected(reason) = &proxy.vm_statuses()[0] else {
        panic!("{:?}", proxy.vm_statuses());
    };
    assert!(
        reason.contains("proxy_on_configure") && reason.contains("second"),
        "{reason}"
    );
    drain(&proxy);
    let (handle, opened) = proxy.open_tcp(0, &TcpConnectionSpec::default()).unwrap();
    assert!(opened.bypassed);
    proxy.close_tcp(handle, PeerType::Remote).unwrap();
    let stream = proxy.run_http_stream(0, &HttpExchange::default());
    assert!(!stream.bypassed);
    proxy.advance(Duration::from_secs(2));
    let events = drain(&proxy);
    assert_eq!(events[0], Event::call(code::CONTEXT_CREATE, 3, 1, 0));
    let ticks: Vec<u32> = events
        .iter()
        .filter(|e| e.code == code::TICK)
        .map(|e| e.ctx)
        .collect();
    assert_eq!(ticks, vec![1, 1]);
}

fn grpc_exchange(grpc_stats_filter: bool) -> (HttpExchange, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let grpc = |status: &str| {
        vec![
            (":status".to_string(), status.to_string()),
            ("content-type".to_string(), "application/grpc".to_string()),
        ]
    };
    // Two request messages over three chunks (a frame straddles two), three response
    // messages over two.
    let request = split(&frames(&[3, 10]), 3);
    let response = split(&frames(&[7, 0, 2]), 2);
    let exchange = HttpExchange {
        request_headers: vec![
            (":method".into(), "POST".into()),
            (":path".into(), "/pkg.Svc/Call".into()),
            ("content-type".into(), "application/grpc".into()),
        ],
        request_body: request.clone(),
        response: Some(ResponseSpec {
            headers: grpc("200"),
            body: response.clone(),
            trailers: Some(vec![("grpc-status".into(), "0".into())]),
        }),
        grpc_stats_filter,
        ..HttpExchange::default()
    };
    (exchange, request, response)
}

#[test]
fn body_callbacks_read_their_chunk_and_grpc_stats_counts_messages() {
    let mut proxy = proxy(Traffic::Http, 1);
    drain(&proxy);
    let (exchange, request, response) = grpc_exchange(true);
    proxy.run_http_stream(0, &exchange);
    let len = |chunk: &Vec<u8>| chunk.len() as u32;
    let mut expected = vec![
        Event::call(code::CONTEXT_CREATE, 3, 1, 0),
        Event::call(code::REQUEST_HEADERS, 3, 3, 0),
    ];
    for (i, chunk) in request.iter().enumerate() {
        // No request trailers: the last chunk ends the request.
        let eos = u32::from(i + 1 == request.len());
        expected.push(Event::call(code::REQUEST_BODY, 3, len(chunk), eos));
        expected.push(Event::read(0, 0, chunk));
    }
    expected.push(Event::call(code::RESPONSE_HEADERS, 3, 2, 0));
    for chunk in &response {
        // Trailers follow: no body chunk ends the response.
        expected.push(Event::call(code::RESPONSE_BODY, 3, len(chunk), 0));
        expected.push(Event::read(0, 1, chunk));
    }
    expected.extend([
        Event::call(code::DONE, 3, 0, 0),
        Event::call(code::LOG, 3, 0, 0),
        // Envoy's GrpcStatsObject::serializeAsString: "<request>,<response>" messages.
        Event::read(0, code::GRPC_STATS, b"2,3"),
        Event::call(code::DELETE, 3, 0, 0),
    ]);
    assert_eq!(drain(&proxy), expected);

    let (without_filter, _, _) = grpc_exchange(false);
    proxy.run_http_stream(0, &without_filter);
    let events = drain(&proxy);
    assert!(
        events.contains(&Event::read(1, code::GRPC_STATS, b"")),
        "{events:?}"
    );
}
