//! A loopback listener for the test receivers that counts the connections still open, so a
//! test can wait until every request a killed sink had sent is answered and recorded.
//!
//! A sink killed right after sending a request leaves it in the receiver's socket buffer; the
//! receiver's handler may run only later, after the test has switched the receiver from
//! refusing to accepting, and would then record as accepted a request whose answer nobody
//! read (the sink, restarted, rightly sends it again). The kernel closes a dead process's
//! connections, so once none is open here every such request has been handled, under the
//! answer in force while the sink lived. Owns the counting only; what is answered belongs to
//! the receivers.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// Connections accepted and not yet closed.
#[derive(Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

impl OpenConnections {
    /// Waits (at most 10 s, panicking past it) until no connection is open.
    pub async fn wait_until_none(&self) {
        let start = Instant::now();
        while self.0.load(Ordering::SeqCst) > 0 {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{} connection(s) to the receiver still open",
                self.0.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A TCP listener whose connections are counted in [`OpenConnections`].
pub struct CountedListener {
    listener: TcpListener,
    open: OpenConnections,
}

impl CountedListener {
    /// Binds 127.0.0.1 on a port of the system's choosing.
    pub async fn bind() -> (CountedListener, OpenConnections) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = OpenConnections::default();
        let counted = CountedListener {
            listener,
            open: open.clone(),
        };
        (counted, open)
    }
}

impl axum::serve::Listener for CountedListener {
    type Io = CountedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (CountedStream, SocketAddr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.listener).await;
        self.open.0.fetch_add(1, Ordering::SeqCst);
        let stream = CountedStream {
            stream,
            open: self.open.clone(),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

/// An accepted connection; dropping it (the server is done with it) uncounts it.
pub struct CountedStream {
    stream: TcpStream,
    open: OpenConnections,
}

impl Drop for CountedStream {
    fn drop(&mut self) {
        self.open.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
