//! A fault-injecting TCP proxy on loopback, to test how cip copes with a flaky registry.
//!
//! [`FaultProxy::start`] listens on `127.0.0.1:0` and serves each accepted connection with the next
//! fault of its list; once the list is used up, connections are forwarded to the target unchanged,
//! both ways. Faults:
//! - [`Fault::Reset`]: read the request head, then reset the connection (`SO_LINGER` 0, so the
//!   client gets a TCP RST rather than an orderly close).
//! - [`Fault::Status503`]: read the request head, answer `503 Service Unavailable` and close.
//! - [`Fault::ResetAfter`]: forward the connection, but reset it once the client has sent that many
//!   bytes (e.g. in the middle of an upload's body).
//! - [`Fault::StallAfter`]: forward the connection until the client has sent that many bytes, then
//!   stop taking its bytes and answering, with the connection left open (a registry that hangs
//!   midway through an upload).
//!
//! "Reading the request head" waits for the blank line ending an HTTP head; data that is not HTTP
//! (a TLS ClientHello) is taken as it comes once the client pauses. When the target refuses the
//! connection, the client's connection is reset, as a registry that is down would do.
//!
//! Only loopback is used. Dropping the proxy stops the listener and every connection's threads and
//! waits for them.
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked threads look whether the proxy was dropped.
const POLL: Duration = Duration::from_millis(20);
/// How long a client may pause while sending a request head.
const HEAD_PAUSE: Duration = Duration::from_millis(300);
/// Largest request head read before a fault is applied anyway.
const HEAD_MAX: usize = 64 << 10;

/// What happens to one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Read the request head, then close with a TCP RST.
    Reset,
    /// Read the request head, answer `HTTP/1.1 503 Service Unavailable` (no body) and close.
    Status503,
    /// Forward transparently until the client has sent this many bytes, then reset both sides.
    ResetAfter(usize),
    /// No fault for this connection (not counted as one): lets the faults skip a connection.
    Pass,
    /// Read the request head, then never answer: the connection stays open until the client closes
    /// it or the proxy stops.
    Stall,
    /// Forward transparently until the client has sent this many bytes, then stop reading from it
    /// and forwarding, leaving the connection open until the proxy stops.
    StallAfter(usize),
}

struct Shared {
    target: String,
    faults: Mutex<Vec<Fault>>,
    applied: AtomicUsize,
    connections: AtomicUsize,
    stop: AtomicBool,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn spawn(self: &Arc<Self>, f: impl FnOnce() + Send + 'static) {
        let handle = thread::spawn(f);
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        threads.retain(|t| !t.is_finished());
        threads.push(handle);
    }
}

/// A running proxy; see the module documentation.
pub struct FaultProxy {
    addr: String,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Proxies to `target` (`127.0.0.1:PORT`), applying `faults` to the first connections in order.
    pub fn start(target: &str, faults: Vec<Fault>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        listener
            .set_nonblocking(true)
            .expect("make the proxy listener non-blocking");
        let addr = listener.local_addr().expect("proxy address").to_string();
        let mut faults = faults;
        faults.reverse(); // popped from the end
        let shared = Arc::new(Shared {
            target: target.to_string(),
            faults: Mutex::new(faults),
            applied: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            threads: Mutex::new(Vec::new()),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::spawn(move || accept_loop(listener, shared))
        };
        FaultProxy {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// `127.0.0.1:PORT`, where clients connect.
    pub fn addr(&self) -> String {
        self.addr.clone()
    }

    /// How many faults were applied so far (connections that got one).
    pub fn fault_count(&self) -> usize {
        self.shared.applied.load(Ordering::SeqCst)
    }

    /// How many connections were accepted so far, faulty or not.
    pub fn connection_count(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Faults still waiting for a connection.
    pub fn faults_left(&self) -> usize {
        self.shared
            .faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        // The acceptor has stopped, so no thread is added any more.
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for t in threads {
            let _ = t.join();
        }
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    while !shared.stopped() {
        match listener.accept() {
            Ok((client, _)) => {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let fault = shared
                    .faults
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop();
                if fault.is_some_and(|f| f != Fault::Pass) {
                    shared.applied.fetch_add(1, Ordering::SeqCst);
                }
                let s = shared.clone();
                shared.spawn(move || serve(client, fault, s));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => thread::sleep(POLL),
        }
    }
}

fn serve(client: TcpStream, fault: Option<Fault>, shared: Arc<Shared>) {
    // Accepted sockets do not inherit the listener's non-blocking mode on Linux; make sure.
    let _ = client.set_nonblocking(false);
    let _ = client.set_nodelay(true);
    match fault {
        Some(Fault::Reset) => {
            read_head(&client, &shared);
            reset(client);
        }
        Some(Fault::Status503) => {
            read_head(&client, &shared);
            let mut c = &client;
            let _ = c.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            let _ = c.flush();
            let _ = client.shutdown(Shutdown::Write);
            // Let the client read the answer before the socket goes away.
            drain(&client, &shared, Duration::from_secs(2));
        }
        Some(Fault::Stall) => {
            read_head(&client, &shared);
            drain(&client, &shared, Duration::from_secs(3600));
        }
        Some(Fault::ResetAfter(limit)) => forward(client, Some((limit, AtLimit::Reset)), &shared),
        Some(Fault::StallAfter(limit)) => forward(client, Some((limit, AtLimit::Stall)), &shared),
        Some(Fault::Pass) | None => forward(client, None, &shared),
    }
}

/// Reads (and discards) a request head: up to the blank line, or whatever came before the client
/// paused, or `HEAD_MAX` bytes, or the end of the stream.
fn read_head(stream: &TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(POLL));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    let mut last_data = Instant::now();
    let mut s = stream;
    while !shared.stopped() && head.len() < HEAD_MAX {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                head.extend_from_slice(&buf[..n]);
                last_data = Instant::now();
                if head.windows(4).any(|w| w == b"\r\n\r\n") {
                    return;
                }
            }
            Err(e) if is_timeout(&e) => {
                if !head.is_empty() && last_data.elapsed() >= HEAD_PAUSE {
                    return;
                }
                if head.is_empty() && last_data.elapsed() >= Duration::from_secs(10) {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Reads until the peer closes, the proxy stops, or `limit` passes.
fn drain(stream: &TcpStream, shared: &Shared, limit: Duration) {
    let _ = stream.set_read_timeout(Some(POLL));
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    let mut s = stream;
    while !shared.stopped() && started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return,
        }
    }
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// Makes closing `stream` send a TCP RST (`SO_LINGER` on with a zero timeout).
fn set_linger_zero(stream: &TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: the descriptor is open (owned by `stream`), and the option value is a valid `linger`
    // of the size passed.
    unsafe {
        libc::setsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

/// Closes `stream` with a TCP RST.
fn reset(stream: TcpStream) {
    set_linger_zero(&stream);
    drop(stream);
}

/// What happens once the client sent the limit of a [`forward`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AtLimit {
    Reset,
    Stall,
}

/// Forwards both ways until both sides are done; with `limit`, resets the client (or stalls) once
/// it sent that many bytes.
fn forward(client: TcpStream, limit: Option<(usize, AtLimit)>, shared: &Arc<Shared>) {
    let upstream = match TcpStream::connect(&shared.target) {
        Ok(u) => u,
        Err(_) => {
            // The target is down: the client sees its connection reset.
            reset(client);
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let aborted = Arc::new(AtomicBool::new(false));
    let (Ok(c2), Ok(u2)) = (client.try_clone(), upstream.try_clone()) else {
        reset(client);
        return;
    };
    let back = {
        let shared = shared.clone();
        let aborted = aborted.clone();
        thread::spawn(move || {
            pump(&u2, &c2, None, &shared, &aborted);
        })
    };
    pump(&client, &upstream, limit, shared, &aborted);
    let _ = back.join();
    if aborted.load(Ordering::SeqCst) {
        let _ = upstream.shutdown(Shutdown::Both);
        reset(client);
    }
}

/// Copies `from` to `to` until `from` ends (then half-closes `to`), the proxy stops, or the
/// connection is aborted. With `limit`, aborts the connection once that many bytes went through.
fn pump(
    from: &TcpStream,
    to: &TcpStream,
    limit: Option<(usize, AtLimit)>,
    shared: &Shared,
    aborted: &AtomicBool,
) {
    let _ = from.set_read_timeout(Some(POLL));
    let mut buf = vec![0u8; 64 << 10];
    let mut sent = 0usize;
    let (mut r, mut w) = (from, to);
    while !shared.stopped() && !aborted.load(Ordering::SeqCst) {
        match r.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if let Some((limit, at_limit)) = limit {
                    if sent + n >= limit {
                        let _ = w.write_all(&buf[..limit - sent]);
                        if at_limit == AtLimit::Stall {
                            while !shared.stopped() {
                                thread::sleep(POLL);
                            }
                            return;
                        }
                        // `forward` resets the client once the other direction has stopped.
                        aborted.store(true, Ordering::SeqCst);
                        return;
                    }
                }
                if w.write_all(&buf[..n]).is_err() {
                    break;
                }
                sent += n;
            }
            Err(e) if is_timeout(&e) || e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if !aborted.load(Ordering::SeqCst) {
        // Stopped, or a side failed: end both directions.
        let _ = to.shutdown(Shutdown::Both);
        let _ = from.shutdown(Shutdown::Both);
    }
}
