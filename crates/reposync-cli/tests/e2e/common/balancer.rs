//! A load balancer for tests: one loopback address in front of several servers, as a TCP
//! proxy that hands each new connection to the next server in turn, skipping one that
//! refuses (it is down). A connection stays with its server until either side closes it,
//! as with an L4 balancer; a client whose server died connects again and lands on another.
//! With one server it is a proxy the test can cut ([`Balancer::cut`]), as a network would.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The balancer's address; it runs until the test process ends.
pub struct Balancer {
    pub url: String,
    /// Its `host:port`.
    pub address: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    next: AtomicUsize,
    /// While set, every connection is closed at once and none is forwarded.
    cut: AtomicBool,
    /// Both ends of every connection being forwarded, by connection, to close them all at a
    /// cut.
    open: Mutex<std::collections::HashMap<usize, [TcpStream; 2]>>,
}

impl Balancer {
    /// Balances over the servers at `urls` (`http://127.0.0.1:PORT`, or `127.0.0.1:PORT`).
    pub fn start(urls: &[&str]) -> Balancer {
        let backends: Vec<SocketAddr> = urls
            .iter()
            .map(|url| {
                url.trim_start_matches("http://")
                    .trim_end_matches('/')
                    .parse()
                    .expect("a loopback server address")
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the balancer");
        let address = listener.local_addr().expect("address");
        let state = Arc::new(State::default());
        let accepting = Arc::clone(&state);
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let backends = backends.clone();
                let state = Arc::clone(&accepting);
                std::thread::spawn(move || forward(client, &backends, &state));
            }
        });
        Balancer {
            url: format!("http://{address}"),
            address,
            state,
        }
    }

    /// Cuts every connection and refuses new ones (`true`), or lets them through again.
    pub fn cut(&self, cut: bool) {
        self.state.cut.store(cut, Ordering::SeqCst);
        if cut {
            for ends in self.state.open.lock().expect("open").values() {
                for end in ends {
                    let _ = end.shutdown(Shutdown::Both);
                }
            }
        }
    }
}

/// Connects `client` to the next server that accepts, and copies both ways until one side
/// closes.
fn forward(client: TcpStream, backends: &[SocketAddr], state: &State) {
    if state.cut.load(Ordering::SeqCst) {
        let _ = client.shutdown(Shutdown::Both);
        return;
    }
    let start = state.next.fetch_add(1, Ordering::SeqCst);
    let server = (0..backends.len())
        .map(|i| backends[(start + i) % backends.len()])
        .find_map(|address| TcpStream::connect(address).ok());
    let Some(server) = server else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_reader), Ok(server_reader), Ok(client_end), Ok(server_end)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    state
        .open
        .lock()
        .expect("open")
        .insert(start, [client_end, server_end]);
    let upstream = std::thread::spawn(move || copy(client_reader, server));
    copy(server_reader, client);
    let _ = upstream.join();
    state.open.lock().expect("open").remove(&start);
}

fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
