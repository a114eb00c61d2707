//! A load balancer for tests: one loopback address in front of several servers, as a TCP
//! proxy that hands each new connection to the next server in turn, skipping one that
//! refuses (it is down). A connection stays with its server until either side closes it,
//! as with an L4 balancer; a client whose server died connects again and lands on another.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The balancer's address; it runs until the test process ends.
pub struct Balancer {
    pub url: String,
}

impl Balancer {
    /// Balances over the servers at `urls` (`http://127.0.0.1:PORT`).
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
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let next = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let backends = backends.clone();
                let next = Arc::clone(&next);
                std::thread::spawn(move || forward(client, &backends, &next));
            }
        });
        Balancer { url }
    }
}

/// Connects `client` to the next server that accepts, and copies both ways until one side
/// closes.
fn forward(client: TcpStream, backends: &[SocketAddr], next: &AtomicUsize) {
    let start = next.fetch_add(1, Ordering::SeqCst);
    let server = (0..backends.len())
        .map(|i| backends[(start + i) % backends.len()])
        .find_map(|address| TcpStream::connect(address).ok());
    let Some(server) = server else {
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let (Ok(client_reader), Ok(server_reader)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let upstream = std::thread::spawn(move || copy(client_reader, server));
    copy(server_reader, client);
    let _ = upstream.join();
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
