//! A loopback HTTPS server for the TLS tests: certificates made for the test (a CA, a server
//! certificate for 127.0.0.1 and a client certificate, written as PEM files), rustls with or
//! without client-certificate checks, and plain HTTP/1.1 with one request per connection.
//!
//! It records every request and every failed handshake; what it answers comes from the test.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// PEM files of a test CA and the certificates it signed.
pub struct Pki {
    pub ca_file: PathBuf,
    pub client_cert_file: PathBuf,
    pub client_key_file: PathBuf,
    ca_der: CertificateDer<'static>,
    server_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl Pki {
    /// Makes the certificates and writes the CA and the client's files into `dir`.
    pub fn new(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).unwrap();
        let ca_key = KeyPair::generate().unwrap();
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "meshtap test CA");
        let ca = ca_params.self_signed(&ca_key).unwrap();

        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        server_params
            .subject_alt_names
            .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        let server = server_params.signed_by(&server_key, &ca, &ca_key).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut client_params = CertificateParams::new(vec!["meshtap-sink".to_owned()]).unwrap();
        client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let client = client_params.signed_by(&client_key, &ca, &ca_key).unwrap();

        let pki = Pki {
            ca_file: dir.join("ca.pem"),
            client_cert_file: dir.join("client.pem"),
            client_key_file: dir.join("client-key.pem"),
            ca_der: ca.der().clone(),
            server_der: server.der().clone(),
            server_key_der: server_key.serialize_der(),
        };
        std::fs::write(&pki.ca_file, ca.pem()).unwrap();
        std::fs::write(&pki.client_cert_file, client.pem()).unwrap();
        std::fs::write(&pki.client_key_file, client_key.serialize_pem()).unwrap();
        pki
    }
}

/// One request as the server read it.
#[derive(Clone, Debug)]
pub struct TlsRequest {
    pub method: String,
    pub path: String,
    /// Names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl TlsRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// The answer to a request: status, content type, body.
pub type Answer = (u16, &'static str, Vec<u8>);

#[derive(Default)]
struct Seen {
    requests: Vec<TlsRequest>,
    failed_handshakes: Vec<String>,
}

pub struct TlsServer {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl TlsServer {
    /// Serves on 127.0.0.1 with the server certificate of `pki`; with `require_client_cert`
    /// a client must present a certificate signed by the CA.
    pub async fn start(
        pki: &Pki,
        require_client_cert: bool,
        answer: impl Fn(&TlsRequest) -> Answer + Send + Sync + 'static,
    ) -> TlsServer {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap();
        let builder = if require_client_cert {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(pki.ca_der.clone()).unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        } else {
            builder.with_no_client_auth()
        };
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone()));
        let mut config = builder
            .with_single_cert(vec![pki.server_der.clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let answer = Arc::new(answer);
        let task = {
            let seen = seen.clone();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    let (acceptor, seen, answer) = (acceptor.clone(), seen.clone(), answer.clone());
                    tokio::spawn(async move {
                        match acceptor.accept(stream).await {
                            Ok(tls) => serve_one(tls, &seen, &*answer).await,
                            Err(e) => seen.lock().unwrap().failed_handshakes.push(e.to_string()),
                        }
                    });
                }
            })
        };
        TlsServer { addr, seen, task }
    }

    pub fn requests(&self) -> Vec<TlsRequest> {
        self.seen.lock().unwrap().requests.clone()
    }

    /// Why handshakes failed, as the server saw it.
    pub fn failed_handshakes(&self) -> Vec<String> {
        self.seen.lock().unwrap().failed_handshakes.clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP/1.1 request (headers, then a `Content-Length` body), records it and writes
/// the answer with `Connection: close`.
async fn serve_one<S>(
    mut stream: S,
    seen: &Mutex<Seen>,
    answer: &(dyn Fn(&TlsRequest) -> Answer + Sync),
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default().to_owned();
    let path = request_line.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < length {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    let request = TlsRequest {
        method,
        path,
        headers,
        body,
    };
    let (status, content_type, response_body) = answer(&request);
    seen.lock().unwrap().requests.push(request);
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response_body.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(&response_body).await;
    let _ = stream.shutdown().await;
}
