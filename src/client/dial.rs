//! Making a TCP connection and asking the kernel about it: RFC 8305's
//! Happy Eyeballs over a name's addresses, and how much of what was sent
//! the peer acknowledged (what tells a request the server cannot have read
//! from one it may have).

use std::time::Duration;

use tokio::net::TcpStream;

/// How long an attempt to connect has before the next address is tried
/// beside it (RFC 8305's recommended 250 ms).
pub(super) const ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Connect to the first of `addrs` that answers, as RFC 8305 (Happy
/// Eyeballs) has it: the families taken in turn, IPv6 first; each attempt
/// started when the one before fails, or after [`ATTEMPT_DELAY`] beside
/// it. A black-holed address costs 250 ms, not the connect timeout.
pub(super) async fn happy_eyeballs(addrs: Vec<std::net::SocketAddr>) -> std::io::Result<TcpStream> {
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let (v6, v4): (Vec<_>, Vec<_>) = addrs.into_iter().partition(|a| a.is_ipv6());
    let mut order = Vec::with_capacity(v6.len() + v4.len());
    let (mut a, mut b) = (v6.into_iter(), v4.into_iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => order.extend(x.into_iter().chain(y)),
        }
    }
    let mut next = order.into_iter();
    let Some(first) = next.next() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            "the name has no address",
        ));
    };
    let mut attempts = FuturesUnordered::new();
    attempts.push(TcpStream::connect(first));
    let mut last = None;
    loop {
        let more = next.len() > 0;
        tokio::select! {
            done = attempts.next(), if !attempts.is_empty() => match done {
                Some(Ok(io)) => return Ok(io),
                Some(Err(e)) => {
                    last = Some(e);
                    match next.next() {
                        Some(addr) => attempts.push(TcpStream::connect(addr)),
                        None if attempts.is_empty() => break,
                        None => {}
                    }
                }
                None => break,
            },
            _ = tokio::time::sleep(ATTEMPT_DELAY), if more => {
                if let Some(addr) = next.next() {
                    attempts.push(TcpStream::connect(addr));
                }
            }
        }
    }
    Err(last.unwrap_or_else(|| std::io::ErrorKind::NotConnected.into()))
}

/// Bytes this connection sent that the peer's TCP acknowledged, so far:
/// Linux's `TCP_INFO` `tcpi_bytes_acked` (RFC 4898's
/// tcpEStatsAppHCThruOctetsAcked); None elsewhere, or on a kernel before
/// 4.1.
pub(super) fn bytes_acked(io: &TcpStream) -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // struct tcp_info up to tcpi_bytes_acked: 8 bytes of u8 fields,
        // 24 u32s, then u64s: pacing_rate, max_pacing_rate, bytes_acked.
        const AT: usize = 8 + 24 * 4 + 2 * 8;
        let mut buf = [0u64; 32];
        let mut len = std::mem::size_of_val(&buf) as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `buf`.
        let rc = unsafe {
            libc::getsockopt(
                io.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_INFO,
                buf.as_mut_ptr().cast(),
                &mut len,
            )
        };
        (rc == 0 && len as usize >= AT + 8).then_some(buf[AT / 8])
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = io;
        None
    }
}
