//! The service the lab runs in the upstream and in every VM (`netvm lab
//! serve NAME --port P…`): on each port, HTTP over TCP answering `NAME
//! saw PEER` (so a probe learns which address its connection came from,
//! e.g. the uplink's after NAT), and a UDP echo. Runs until killed; each
//! connection gets 2 s.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

fn answer(mut stream: TcpStream, name: &str) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let mut request = [0u8; 1024];
    let _ = stream.read(&mut request);
    let body = format!("{name} saw {peer}\n");
    let _ = write!(
        stream,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// Serves `ports` as `name` until the process is killed.
pub fn serve(name: &str, ports: &[u16]) -> std::io::Result<()> {
    let mut threads = Vec::new();
    for port in ports {
        let tcp = TcpListener::bind(("0.0.0.0", *port))?;
        let udp = UdpSocket::bind(("0.0.0.0", *port))?;
        let owned = name.to_owned();
        threads.push(std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                let name = owned.clone();
                std::thread::spawn(move || answer(stream, &name));
            }
        }));
        threads.push(std::thread::spawn(move || {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = udp.recv_from(&mut buf) {
                let _ = udp.send_to(&buf[..n], from);
            }
        }));
    }
    println!("serving {name} on {ports:?}");
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
