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

#[cfg(test)]
mod tests {
    use super::*;
    use redis::aio::MultiplexedConnection;
    use redis::{AsyncConnectionConfig, RedisConnectionInfo};
    use std::io::{Read, Write};

    /// A server that answers `+PONG` to each read (one command per read here).
    fn pong_server() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().expect("accept");
            let mut buf = [0_u8; 1024];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 || stream.write_all(b"+PONG\r\n").is_err() {
                    break;
                }
            }
        });
        port
    }

    /// The `redis` crate's multiplexed connection works over the adapter, driven on smol.
    #[test]
    fn a_redis_connection_runs_over_the_stream() {
        let port = pong_server();
        let reply: String = smol::block_on(async {
            let stream = connect("127.0.0.1".to_owned(), port)
                .await
                .expect("connected");
            let info = RedisConnectionInfo::default().set_skip_set_lib_name();
            let (mut conn, driver) =
                MultiplexedConnection::new_with_config(&info, stream, AsyncConnectionConfig::new())
                    .await
                    .expect("set up");
            smol::spawn(driver).detach();
            redis::cmd("PING")
                .query_async(&mut conn)
                .await
                .expect("reply")
        });
        assert_eq!(reply, "PONG");
    }
}
