//! smol's TCP stream as the `redis` crate's connections take it (tokio's I/O traits), for
//! [`Runtime::connect_tcp`](dramatiq_sentinel_supervisor::Runtime::connect_tcp).

use dramatiq_sentinel_supervisor::RedisStream;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Connects to `host:port` (resolved by smol), as the `redis` crate's smol support does.
pub(crate) async fn connect(host: String, port: u16) -> io::Result<RedisStream> {
    let stream = smol::net::TcpStream::connect((host.as_str(), port)).await?;
    Ok(Box::pin(TokioIo(stream)))
}

/// A smol (`futures-io`) stream seen through tokio's `AsyncRead` / `AsyncWrite`.
struct TokioIo<T>(T);

impl<T: smol::io::AsyncRead + Unpin> AsyncRead for TokioIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let n = ready!(Pin::new(&mut self.0).poll_read(cx, buf.initialize_unfilled()))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl<T: smol::io::AsyncWrite + Unpin> AsyncWrite for TokioIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}
