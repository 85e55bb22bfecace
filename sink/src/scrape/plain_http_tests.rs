//! The plain-HTTP scrape client against scripted loopback servers: one kept-alive connection
//! for every scrape, a connection closed by the target replaced without a failed scrape, chunked
//! and length-less bodies, gzip undone (and a cut gzip stream refused), the size limit,
//! redirects left to the general client.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::*;

#[derive(Default)]
struct Collected {
    content_type: Option<String>,
    bytes: Vec<u8>,
}

impl BodySink for Collected {
    fn content_type(&mut self, content_type: Option<&str>) {
        self.content_type = content_type.map(str::to_owned);
    }
    fn chunk(&mut self, chunk: &[u8]) {
        self.bytes.extend_from_slice(chunk);
    }
}

/// What the scripted server sends for the `n`-th request on its `c`-th connection (both from
/// 0); `None` closes that connection without an answer, and so does an answer with
/// `connection: close` after it is written.
type Script = fn(c: usize, n: usize) -> Option<Vec<u8>>;

/// A loopback server answering by `script`; counts the connections it accepted.
async fn serve(script: Script) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let c = count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(answer(stream, c, script));
        }
    });
    (addr, accepted)
}

async fn answer(mut stream: TcpStream, c: usize, script: Script) {
    let mut head = Vec::new();
    for n in 0.. {
        head.clear();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if stream.read(&mut byte).await.unwrap_or(0) == 0 {
                return;
            }
            head.push(byte[0]);
        }
        let Some(response) = script(c, n) else {
            return;
        };
        stream.write_all(&response).await.unwrap();
        if response.windows(17).any(|w| w == b"connection: close") {
            return;
        }
    }
}

fn response(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut bytes = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\n{headers}content-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

const BODY: &[u8] = b"envoy_server_live 1\n";

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

async fn get(addr: SocketAddr, limit: usize) -> (Result<PlainOutcome, FetchError>, Collected) {
    let client = PlainHttpClient::new("meshtap/test");
    get_with(&client, addr, limit).await
}

async fn get_with(
    client: &PlainHttpClient,
    addr: SocketAddr,
    limit: usize,
) -> (Result<PlainOutcome, FetchError>, Collected) {
    let mut body = Collected::default();
    let url = format!("http://{addr}/stats/prometheus");
    let outcome = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        client.get(&PlainUrl::parse(&url).unwrap(), &[], limit, &mut body),
    )
    .await
    .expect("the scrape ends within 10 s");
    (outcome, body)
}

/// Scrapes `addr` `scrapes` times through one client: each must give [`BODY`], and the server
/// must have accepted `connections` connections for them all. Returns the last scrape's body.
async fn expect_scrapes_over(
    addr: SocketAddr,
    accepted: &AtomicUsize,
    scrapes: usize,
    connections: usize,
) -> Collected {
    let client = PlainHttpClient::new("meshtap/test");
    let mut last = Collected::default();
    for _ in 0..scrapes {
        let (outcome, body) = get_with(&client, addr, 1 << 20).await;
        assert!(matches!(outcome, Ok(PlainOutcome::Done)));
        assert_eq!(body.bytes, BODY);
        last = body;
    }
    assert_eq!(accepted.load(Ordering::SeqCst), connections);
    last
}

#[tokio::test]
async fn one_kept_alive_connection_serves_every_scrape() {
    let (addr, accepted) = serve(|_, _| Some(response("", BODY))).await;
    let body = expect_scrapes_over(addr, &accepted, 3, 1).await;
    assert_eq!(
        body.content_type.as_deref(),
        Some("text/plain; version=0.0.4")
    );
}

/// Informational answers before the response are passed over, the body that follows them in
/// the same read is the body, and the kept connection serves the next scrape.
#[tokio::test]
async fn informational_answers_are_skipped_and_the_body_after_them_kept() {
    let (addr, accepted) = serve(|_, _| {
        let mut bytes =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n".to_vec();
        bytes.extend_from_slice(&response("", BODY));
        Some(bytes)
    })
    .await;
    expect_scrapes_over(addr, &accepted, 2, 1).await;
}

#[test]
fn only_plain_http_urls_without_credentials_are_fetched_here() {
    let plain = PlainUrl::parse("http://10.1.2.3:15020/stats/prometheus?x=1").unwrap();
    assert_eq!(plain.authority, "10.1.2.3:15020");
    assert_eq!(plain.path, "/stats/prometheus?x=1");
    assert_eq!(
        PlainUrl::parse("http://pod/metrics").unwrap().authority,
        "pod:80"
    );
    for other in [
        "https://10.1.2.3:15020/metrics",
        "http://user:secret@10.1.2.3/metrics",
        "not a url",
    ] {
        assert!(PlainUrl::parse(other).is_none(), "{other}");
    }
}

#[tokio::test]
async fn a_connection_the_target_drops_at_the_next_request_is_replaced() {
    // The first connection answers once and then closes when the second request arrives.
    let (addr, accepted) = serve(|c, n| (c > 0 || n == 0).then(|| response("", BODY))).await;
    let client = PlainHttpClient::new("meshtap/test");
    for _ in 0..2 {
        let (outcome, body) = get_with(&client, addr, 1 << 20).await;
        assert!(
            matches!(outcome, Ok(PlainOutcome::Done)),
            "{:?}",
            outcome.err()
        );
        assert_eq!(body.bytes, BODY, "the body once, not twice");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn gzip_is_undone_and_a_cut_stream_is_refused() {
    let (whole, _) = serve(|_, _| Some(response("content-encoding: gzip\r\n", &gzip(BODY)))).await;
    let (outcome, body) = get(whole, 1 << 20).await;
    assert!(matches!(outcome, Ok(PlainOutcome::Done)));
    assert_eq!(body.bytes, BODY);

    let (cut, _) = serve(|_, _| {
        let zipped = gzip(BODY);
        Some(response(
            "content-encoding: gzip\r\n",
            &zipped[..zipped.len() - 6],
        ))
    })
    .await;
    let (outcome, _) = get(cut, 1 << 20).await;
    expect_request_error(outcome, "gzip");
}

#[tokio::test]
async fn bodies_over_the_limit_are_refused_plain_or_gzip() {
    let (plain, _) = serve(|_, _| Some(response("", BODY))).await;
    let (zipped, _) = serve(|_, _| Some(response("content-encoding: gzip\r\n", &gzip(BODY)))).await;
    for addr in [plain, zipped] {
        let (outcome, body) = get(addr, BODY.len() - 1).await;
        assert!(matches!(outcome, Err(FetchError::TooLarge(_))));
        assert!(body.bytes.len() < BODY.len());
    }
    let (outcome, _) = get(plain, BODY.len()).await;
    assert!(
        matches!(outcome, Ok(PlainOutcome::Done)),
        "exactly the limit is allowed"
    );
}

#[tokio::test]
async fn redirects_and_errors_are_told_apart() {
    let (moved, _) = serve(|_, _| {
        Some(b"HTTP/1.1 301 Moved Permanently\r\nlocation: https://elsewhere/\r\ncontent-length: 0\r\n\r\n".to_vec())
    })
    .await;
    assert!(matches!(
        get(moved, 1024).await.0,
        Ok(PlainOutcome::General)
    ));
    let (failing, _) = serve(|_, _| {
        Some(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n".to_vec())
    })
    .await;
    assert!(matches!(
        get(failing, 1024).await.0,
        Err(FetchError::Status(503))
    ));
}

#[tokio::test]
async fn chunked_bodies_keep_the_connection_and_length_less_ones_close_it() {
    let (chunked, accepted) = serve(|_, _| {
        Some(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n7\r\nenvoy_s\r\nd\r\nerver_live 1\n\r\n0\r\n\r\n".to_vec())
    })
    .await;
    expect_scrapes_over(chunked, &accepted, 2, 1).await;

    // No length: the body ends when the server closes, and the connection is not kept.
    let (until_close, accepted) = serve(|_, n| {
        (n == 0)
            .then(|| b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nenvoy_server_live 1\n".to_vec())
    })
    .await;
    expect_scrapes_over(until_close, &accepted, 2, 2).await;
}

#[tokio::test]
async fn a_body_cut_short_fails_the_scrape() {
    let (cut, _) = serve(|_, n| {
        (n == 0).then(|| {
            b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\nenvoy_server_live 1\n".to_vec()
        })
    })
    .await;
    // The server sends 20 of the 100 bytes it announced and closes.
    let (outcome, _) = get(cut, 1 << 20).await;
    expect_request_error(outcome, "cut short");
}

#[tokio::test]
async fn a_header_value_with_a_line_break_is_refused_before_sending() {
    let (addr, accepted) = serve(|_, _| Some(response("", BODY))).await;
    let client = PlainHttpClient::new("meshtap/test");
    let mut body = Collected::default();
    let url = format!("http://{addr}/stats/prometheus");
    let headers = [("authorization", "Bearer token\r\nx-injected: 1".to_owned())];
    expect_request_error(
        client
            .get(&PlainUrl::parse(&url).unwrap(), &headers, 1024, &mut body)
            .await,
        "line break",
    );
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "nothing was sent");
}

/// `outcome` must be a request error whose text names `word`.
fn expect_request_error(outcome: Result<PlainOutcome, FetchError>, word: &str) {
    match outcome {
        Err(FetchError::Request(text)) => assert!(text.contains(word), "{text}"),
        Ok(_) => panic!("expected an error naming {word:?}, the scrape succeeded"),
        Err(other) => panic!("expected an error naming {word:?}, got {other}"),
    }
}
